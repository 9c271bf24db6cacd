-- Argo CD health of an InstantDbBackupPolicy, from its Ready and BackupHealthy conditions
-- (docs/operator.md, "Scheduled backups and retention"). Lua 5.1 (Argo CD runs gopher-lua).
local hs = {}

local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then return c end
  end
  return nil
end

local function say(c)
  local m = c.reason or ""
  if c.message ~= nil and c.message ~= "" then m = m .. ": " .. c.message end
  return m
end

local generation = obj.metadata.generation
local status = obj.status
local ready = condition("Ready")
if status == nil or status.observedGeneration == nil or ready == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to schedule the policy"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "the operator has not yet seen generation " .. generation
  return hs
end
if ready.status ~= "True" and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = say(ready)
  return hs
end
-- InvalidSpec (fix the spec) or NoInstances (the named instance is missing, the selector
-- matches none).
if ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = say(ready)
  return hs
end
-- LastBackupFailed, NoRecentBackup. NoBackups (Unknown) is a policy that has not run yet.
local backups = condition("BackupHealthy")
if backups ~= nil and backups.status == "False" then
  hs.status = "Degraded"
  hs.message = say(backups)
  return hs
end
hs.status = "Healthy"
hs.message = say(ready)
return hs
