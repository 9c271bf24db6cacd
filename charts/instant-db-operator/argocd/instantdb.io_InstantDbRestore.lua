-- Argo CD health of an InstantDbRestore, from its phase and its Complete/Failed conditions
-- (docs/operator.md, "Restores"). Lua 5.1 (Argo CD runs gopher-lua).
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
  hs.message = "waiting for the operator to start the restore"
  return hs
end
local complete = condition("Complete")
local failed = condition("Failed")
if status.phase == "Failed" or (failed ~= nil and failed.status == "True") then
  hs.status = "Degraded"
  local reason = ""
  if failed ~= nil and failed.reason ~= nil and failed.reason ~= "Failed" then
    reason = " (" .. failed.reason .. ")"
  end
  hs.message = "restore failed" .. reason .. ": " .. (status.error or (failed and failed.message) or "see kubectl describe")
    .. "; pick another backup and create a new InstantDbRestore"
  return hs
end
if status.phase == "Completed" or (complete ~= nil and complete.status == "True") then
  hs.status = "Healthy"
  hs.message = "restore completed"
  if status.restoredBackup ~= nil then hs.message = hs.message .. " from " .. status.restoredBackup end
  return hs
end
hs.status = "Progressing"
hs.message = status.phase
if status.message ~= nil and status.message ~= "" then
  hs.message = hs.message .. ": " .. status.message
end
return hs
