-- Argo CD health of an InstantDb, from the conditions the operator writes (docs/operator.md,
-- "Conditions and what to do"). Lua 5.1 (Argo CD runs gopher-lua).
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
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to reconcile the instance"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "the operator has not yet seen generation " .. generation
  return hs
end

local ready = condition("Ready")
local degraded = condition("Degraded")
local reconciling = condition("Reconciling")
local stalled = condition("Stalled")
local recovering = condition("Recovering")

-- No progress without a change by the user: invalid spec, name conflict, rejected apply,
-- missing Secret, failed integrity check without autoRestore.
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = say(stalled)
  return hs
end
if ready ~= nil and ready.status == "False" and ready.reason == "Suspended" then
  hs.status = "Suspended"
  hs.message = say(ready)
  return hs
end
-- The operator's automatic restore runs after a failed integrity check.
if recovering ~= nil and recovering.status == "True" then
  hs.status = "Progressing"
  hs.message = say(recovering)
  return hs
end
-- Causes a normal first start passes through stay Progressing while the operator works on them
-- (Reconciling=True), so a sync wave waits instead of failing: a WaitForFirstConsumer claim is
-- Pending until the pod is scheduled, an autoscaler adds a node, the engine loads its model
-- before it reports ready, autoRestore restores a backup. Every other cause (CrashLoopBackOff,
-- ImagePullBackOff, HealthCheckFailed, ModelNotLoaded, EngineUnhealthy...) is Degraded, as
-- Argo CD's own Pod check calls a crash-looping or unpullable pod Degraded.
local passing = {VolumePending = true, Unschedulable = true, ProbeFailing = true, IntegrityFailed = true}
if degraded ~= nil and degraded.status == "True" then
  if reconciling ~= nil and reconciling.status == "True" and passing[degraded.reason] then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = say(degraded)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = say(reconciling)
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = say(ready)
  local backups = condition("BackupHealthy")
  if backups ~= nil and backups.status == "False" then
    -- The instance serves; the failing backup is the InstantDbBackup's (Degraded) health.
    hs.message = hs.message .. "; BackupHealthy=False " .. say(backups)
  end
  local archive = condition("ContinuousArchiving")
  if archive ~= nil and archive.status == "False" then
    -- Serving goes on; changes wait on the volume until the destination answers.
    hs.message = hs.message .. "; ContinuousArchiving=False " .. say(archive)
  end
  return hs
end
hs.status = "Progressing"
if ready ~= nil then
  hs.message = say(ready)
else
  hs.message = "waiting for the engine"
end
return hs
