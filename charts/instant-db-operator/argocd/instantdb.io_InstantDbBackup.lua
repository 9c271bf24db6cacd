-- Argo CD health of an InstantDbBackup, from its phase and its Complete/Failed conditions
-- (docs/operator.md, "Backups"). Lua 5.1 (Argo CD runs gopher-lua).
local hs = {}

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then return c end
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to start the backup"
  return hs
end
local complete = condition("Complete")
local failed = condition("Failed")
if status.phase == "Failed" or (failed ~= nil and failed.status == "True") then
  hs.status = "Degraded"
  hs.message = "backup failed: " .. (status.error or (failed and failed.message) or "see kubectl describe")
    .. "; fix the cause and create a new InstantDbBackup"
  return hs
end
if status.phase == "Completed" or (complete ~= nil and complete.status == "True") then
  hs.status = "Healthy"
  hs.message = "backup completed"
  if status.location ~= nil then hs.message = hs.message .. ": " .. status.location end
  return hs
end
hs.status = "Progressing"
hs.message = status.phase
if status.message ~= nil and status.message ~= "" then
  hs.message = hs.message .. ": " .. status.message
end
return hs
