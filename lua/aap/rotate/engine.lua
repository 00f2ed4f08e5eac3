--- The rotation engine: one run over one env file (`aap.rotate.run`). It opens the env file and
-- its state under the lock, connects, resolves an interrupted rotation, settles what earlier
-- runs left pending, asks the policy, runs `before_rotate`, rotates with the policy's strategy
-- (`aap.rotate.strategies`) and settles the switch it made (`on_rotated`, the old token's
-- revocation: `aap.rotate.journal`). Internal to `aap.rotate`.
-- @module aap.rotate.engine
local aap = require("aap")
local envfile = require("aap.env")
local policy = require("aap.policy")
local state = require("aap.state")
local workflow = require("aap.workflow")
local common = require("aap.rotate.common")
local hooks = require("aap.rotate.hooks")
local journal = require("aap.rotate.journal")
local Run = require("aap.rotate.run")
local strategies = require("aap.rotate.strategies")

local err, message = common.err, common.message

local M = {}

local function guess_key(st, doc)
  local only
  for k in pairs(st.keys) do
    if only then only = nil break end
    only = k
  end
  if only and doc:get(only) then return only end
  if doc:get(workflow.KEYS.token) then return workflow.KEYS.token end
  return workflow.KEYS.pat
end

local function has_admin(conn)
  return (conn.password ~= nil and conn.password ~= "") or (conn.token ~= nil and conn.token ~= "")
end

local OPTS = { conn = true, env_file = true, key = true, refresh_key = true, policy = true, dry_run = true,
               now = true, client = true, warn = true, log = true }

-- Rotates (or not) with the session open: the run's steps after connecting.
local function rotate(run, opts, admin)
  local p = run.policy
  run.now = opts.now or workflow.server_now(run.s)
  local result = { key = run.key, env_file = run.env_file, dry_run = run.dry_run, notes = run.notes,
                   revoked = run.revoked, waiting = run.waiting, rotated = false }
  if run.st.rotations[run.key] then
    if run.dry_run then
      run:note(("an interrupted rotation of %s would be resolved first"):format(run.key))
      result.decision, result.code = "recover", "interrupted"
      result.reason = "an interrupted rotation must be resolved first (run without --dry-run)"
      return result
    end
    local note, rerr = journal.recover(run)
    if not note then return run:fail(rerr) end
    run:note(note)
  end
  -- What earlier runs left (a held on_rotated, a revocation not yet due), before anything else.
  local sok, serr = journal.settle(run, journal.owed(run))
  if not sok then return run:fail(serr) end
  result.held = run.held

  local old, terr, gone = strategies.current_token(run)
  if not old and terr and terr.code == "auth" and run.self_service then
    terr = err("auth", "the token in %s (%s) no longer works, and without admin credentials (AAP_PASSWORD or "
      .. "AAP_TOKEN) it cannot be replaced (%s)", run.env_file, run.key, message(terr))
  end
  if not old and terr then return run:fail(terr) end
  if gone then run:note(gone) end
  if run.lost then old = nil end
  local d = policy.decide(p, old, run.now)
  if d.code == "missing" and gone then d.reason = gone end
  result.decision, result.code, result.reason = d.action, d.code, d.reason
  local oldrec = run.st.keys[run.key] or {}
  result.old = hooks.record(old or { id = oldrec.id, kind = oldrec.kind }, run.key, run.doc:get(run.key),
                            run.doc:get(run.refresh_key))
  if d.action == "keep" or run.dry_run then return result end

  local ok, why, failed = hooks.call(run, "before_rotate", { old = result.old, decision = d })
  if failed then
    -- not a veto: nothing was changed, but the rotation the policy asked for did not happen
    return run:fail(err("policy", why), { old = result.old })
  end
  if not ok then
    result.decision, result.vetoed = "vetoed", why
    return result
  end
  local kind = old and old.kind or oldrec.kind
  local strategy = p.strategy
  if strategy == "refresh" and kind == "personal" then
    return run:fail(err("policy", "%s: strategy \"refresh\" needs an application token; %s holds a "
      .. "personal access token (use strategy \"recreate\")", p.origin, run.key), { old = result.old })
  end
  if strategy == "recreate" and run.self_service and kind == "application" then
    return run:fail(err("usage", "recreating an application token needs admin credentials " ..
      "(AAP_PASSWORD or AAP_TOKEN)"), { old = result.old })
  end
  run.decision = d
  local new, e, curable
  if strategy == "refresh" then
    new, e, curable = strategies.refresh(run, old)
    if not new and curable and admin then
      run.warn(("refresh failed (%s); creating a new token instead"):format(message(e)))
      result.fallback = true
      strategy = "recreate"
      if old then
        -- the failed refresh left the access token as it was: read it again
        old = run.s:token(old.id) or nil
      end
      new, e = strategies.recreate(run, old)
    elseif not new and curable then
      e = err(e.code, "%s; without admin credentials (AAP_PASSWORD or AAP_TOKEN) no new token can be created",
        message(e))
    end
  else
    new, e = strategies.recreate(run, old)
  end
  if not new then return run:fail(e, { old = result.old }) end
  result.rotated, result.strategy = true, strategy
  result.new = hooks.record(new, run.key, new.token, new.refresh_token)
  -- The switch this run made: on_rotated, then the old token's revocation (a recreate's, through
  -- the pending list; a refresh has nothing left to revoke).
  local switch = {}
  if strategy == "refresh" then
    switch[1] = { unheld = "the refresh has already replaced the token", hooks_done = false, old = result.old,
                  new = result.new }
  elseif run.entry then
    switch[1] = run.entry
  else
    -- No old token to revoke (gone from the gateway, or lost): the consumer is still told.
    switch[1] = { unheld = "there was no old token to keep", hooks_done = false, old = result.old,
                  new = result.new }
  end
  sok, serr = journal.settle(run, switch, d)
  if not sok then return run:fail(serr, { old = result.old, new = result.new }) end
  result.held, result.hook_failed = run.held, run.hook_failed
  return result
end

-- Reads the env file and its state, checks the keys, connects, and rotates.
local function open(run, opts)
  local doc, derr = envfile.read(run.env_file)
  if not doc then return nil, derr end
  if not doc.exists then return nil, err("usage", "%s does not exist: create a token first", run.env_file) end
  local st, serr = state.load(run.env_file)
  if not st then return nil, err(serr.code, serr.message) end
  run.doc, run.st = doc, st
  run.key = opts.key or guess_key(st, doc)
  if not envfile.valid_key(run.key) then return nil, err("usage", "%q is not a valid env key", run.key) end
  local rec = st.keys[run.key] or {}
  run.refresh_key = opts.refresh_key or rec.refresh_key or workflow.KEYS.refresh
  if not envfile.valid_key(run.refresh_key) then
    return nil, err("usage", "%q is not a valid env key", run.refresh_key)
  end
  -- A line the rotation would rewrite that not every reader can read (export): refused now,
  -- before anything is done on the gateway.
  local owned_ok, owned_err = doc:check_owned({ run.key, run.refresh_key }, run.env_file)
  if not owned_ok then return nil, err(owned_err.code, owned_err.message) end
  local value = doc:get(run.key)
  if (not value or value == "") and not st.rotations[run.key] then
    return nil, err("usage", "%s holds no %s to rotate", run.env_file, run.key)
  end
  local conn = {}
  for k, v in pairs(opts.conn) do conn[k] = v end
  run.self_service = not has_admin(conn)
  if run.self_service then
    conn.token = value
    if run.policy.wait_for_use then
      return nil, err("usage", "wait_for_use cannot work when aap authenticates with the token it rotates " ..
        "(its own use would count as the consumer's); give admin credentials")
    end
  end
  run.conn, run.conn_for_identify = conn, opts.conn
  local s, cerr = aap.connect(conn)
  if not s then return nil, cerr end
  run.s = s
  local res, e = rotate(run, opts, not run.self_service)
  run.s:close()
  return res, e
end

--- Rotates the token in one env file if its policy says it is due: `aap.rotate.run`, whose
-- LDoc gives the options and the result.
-- @tparam table opts
-- @tparam function default_client the client when `opts.client` is nil (a function(doc))
-- @treturn ?table the result, or nil and an error
function M.run(opts, default_client)
  if type(opts) ~= "table" then error("rotate.run expects a table of options", 2) end
  for k in pairs(opts) do
    if not OPTS[k] then error(("rotate.run: unknown option %q"):format(tostring(k)), 2) end
  end
  if type(opts.conn) ~= "table" then error("rotate.run: conn (aap.connect options) is required", 2) end
  if type(opts.env_file) ~= "string" then error("rotate.run: env_file is required", 2) end
  if opts.client ~= nil and type(opts.client) ~= "table" and type(opts.client) ~= "function" then
    error("rotate.run: client must be a table or a function", 2)
  end
  local p, perr = policy.get(opts.policy)
  if not p then return nil, perr end
  local run = Run.new(opts, p, default_client)
  local lock
  if not run.dry_run then
    local lerr
    lock, lerr = state.lock(run.env_file)
    if not lock then return nil, err(lerr.code, lerr.message) end
  end
  local res, e = open(run, opts)
  if lock then lock:unlock() end
  return res, e
end

return M
