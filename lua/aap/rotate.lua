--- Token rotation under a policy, and pruning of unused tokens: the engine behind
-- `aap token rotate` and `aap token prune`, usable from Lua to rotate many tokens for many
-- integrations in one run.
--
-- **Never without a working token.** A rotation creates the new token (or refreshes an
-- application token), proves it works (GET me/ with it), writes the env file atomically,
-- runs the `on_rotated` hook, and only then revokes the old token: at once, after the
-- policy's `grace`, or once the new token's `last_used` shows that the consumer picked it
-- up (`wait_for_use`). Revocations still to be done are kept in the state file beside the
-- env file (`aap.state`, ids only, no secrets) and finished by a later run.
--
-- **Crash safety.** Before it creates anything, a run writes an intent to the state file
-- (`rotations[KEY]`: a random marker that also goes into the new token's description, the
-- old token's id and a fingerprint of the value in the file); the new token's id is recorded
-- right after it is created. A later run that finds an intent resolves it before deciding
-- anything: when the env file holds the new token the rotation is finished (recorded, old
-- token scheduled for revocation); when it does not, the new token is deleted, found by id
-- or by its marker. Runs on one env file are serialized with `aap.os.lock`.
-- Fingerprints are the first 16 hex digits of the SHA-256 of a value (the gateway itself
-- stores the full unsalted SHA-256 of every token): they tell "the file holds the old token"
-- from "the file holds the new one" without keeping a secret.
--
-- **Fault injection** (for tests): with `AAP_FAULT_EXIT_AT=<step>` in the environment the
-- process exits at once (`os.exit(86)`, no cleanup) when it reaches that step. Steps, in
-- order: `intent` (intent saved), `created` (new token exists, its id not yet recorded),
-- `recorded` (id recorded), `verified` (new token proven), `written` (env file replaced),
-- `committed` (state says the file holds the new token; old token pending), `hooked`
-- (`on_rotated` done), `revoked` (old token deleted). The refresh strategy has `intent`,
-- `refreshed` (the gateway has replaced the token; nothing written yet), `written` and
-- `committed`.
--
-- Errors are tables `{code =, message =}` (or an `aap.Error` from the C core) and never
-- hold a secret; codes: `policy` (bad policy, hook failure), `usage` (bad arguments or env
-- file), `busy` (another run holds the lock), `io` (cannot write a file), `local`, and the C
-- core's codes (`auth`, `forbidden`, `not_found`, `invalid`, `expired`, `connect`, ...).
-- @module aap.rotate
local aap = require("aap")
local envfile = require("aap.env")
local policy = require("aap.policy")
local duration = require("aap.duration")
local state = require("aap.state")
local workflow = require("aap.workflow")

local M = {}

--- The exit code of a process stopped by AAP_FAULT_EXIT_AT.
M.FAULT_EXIT = 86

--- The fault-injection steps, in the order a rotation reaches them.
M.STEPS = { "intent", "created", "recorded", "refreshed", "verified", "written", "committed", "hooked", "revoked" }

local MARKER = "aap-rotate:"

local function fault(step)
  if os.getenv("AAP_FAULT_EXIT_AT") == step then
    io.stderr:write("aap: AAP_FAULT_EXIT_AT=", step, ": exiting now\n")
    os.exit(M.FAULT_EXIT, false)
  end
end

-- Errors: aap.errors (printed as the message alone); message(e) is one line for any error.
local errors = require("aap.errors")

local function err(code, fmt, ...)
  return errors.new(code, select("#", ...) > 0 and fmt:format(...) or fmt, { plain = true })
end

local message = errors.message
M.message = message

--- The fingerprint of a secret value: 16 hex digits of its SHA-256 (see the module's notes).
-- @tparam string value
-- @treturn string
M.fingerprint = state.fingerprint
local fp = M.fingerprint

local function random_id() return state.random_hex(8) end

-- Token records for hooks ------------------------------------------------------------------

local secrets = setmetatable({}, { __mode = "k" })

--- A token as hooks see it: `id`, `kind`, `scope`, `application`, `user`, `description`,
-- `created`, `expires`, `last_used` (epoch seconds), `key` (the env key). Secret values are
-- not fields: call `rec:secret()` (and `rec:refresh_secret()`), which return nil when the
-- value is not known (an old token whose value has left the file).
-- @type Record
local RecordMethods = {}
-- The metatable is not reachable from a record (`rec.__index` is nil): policy code cannot
-- change the methods, or add a `__gc`, for records made later.
local Record = { __index = RecordMethods, __name = "aap.rotate.Record" }
Record.__tostring = function(r)
  return ("aap.rotate.Record(id=%s, %s, scope=%s)"):format(tostring(r.id), tostring(r.kind), tostring(r.scope))
end
--- The token's value, or nil.
function RecordMethods:secret() return secrets[self] and secrets[self].token end
--- The refresh token's value, or nil.
function RecordMethods:refresh_secret() return secrets[self] and secrets[self].refresh end

local RECORD_FIELDS = { "id", "kind", "scope", "application", "user", "description", "created", "expires",
                        "last_used", "key" }

local function record(tok, key, token_value, refresh_value)
  if not tok then return nil end
  local r = setmetatable({
    id = tok.id, kind = tok.kind, scope = tok.scope, application = tok.application, user = tok.user,
    description = tok.description, created = tok.created, expires = tok.expires, last_used = tok.last_used,
    key = key,
  }, Record)
  if token_value or refresh_value then secrets[r] = { token = token_value, refresh = refresh_value } end
  return r
end
M.record = record

-- Hooks -------------------------------------------------------------------------------------

--- The environment of a program started by `ctx:run`: these variables of aap's own
-- environment, and nothing else unless the hook names it (`env = {...}`). No `AAP_*`
-- credential reaches a hook's program by default.
M.CHILD_ENV = { "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR",
                "TERM" }

local CtxMethods = {}
local Ctx = { __index = CtxMethods, __name = "aap.rotate.Context" }
local deadlines = setmetatable({}, { __mode = "k" }) -- ctx -> {at = aap.os.now() deadline, limit = seconds}

local loggers = setmetatable({}, { __mode = "k" }) -- ctx -> function(policy, msg) (opts.log)

--- Writes a line to stderr, prefixed with the policy's name (or hands it to opts.log).
function CtxMethods:log(msg)
  local log = loggers[self]
  if log then return log(self.policy, tostring(msg)) end
  io.stderr:write(self.policy, ": ", tostring(msg), "\n")
end

local RUN_OPTS = { stdin = true, env = true, timeout = true, check = true }

local function env_name(name, i)
  if type(name) ~= "string" or not envfile.valid_key(name) then
    error(("ctx:run: env entry %s is not a variable name"):format(tostring(i)), 3)
  end
  return name
end

-- "NAME=value" strings: CHILD_ENV from aap's environment, then the names the hook lists
-- (copied from aap's environment), then the NAME = value pairs it gives.
local function child_env(spec)
  local vars = {}
  for _, name in ipairs(M.CHILD_ENV) do vars[name] = os.getenv(name) end
  if spec ~= nil and type(spec) ~= "table" then error("ctx:run: env must be a table", 3) end
  for i, name in ipairs(spec or {}) do vars[env_name(name, i)] = os.getenv(name) end
  for k, v in pairs(spec or {}) do
    if type(k) ~= "number" then
      if type(v) ~= "string" then error(("ctx:run: env.%s must be a string"):format(env_name(k, k)), 3) end
      vars[env_name(k, k)] = v
    end
  end
  local list = {}
  for k, v in pairs(vars) do list[#list + 1] = k .. "=" .. v end
  table.sort(list)
  return list
end

--- Runs a program, never through a shell: `argv` is the list of words, the first found on
-- PATH. Its standard output goes to stderr, so that aap's own output stays clean. Options, in
-- the same table (`ctx:run{"systemctl", "reload", "app", timeout = "30s"}`) or a second one:
-- `stdin` (a string written to its standard input: the way to hand it a secret, never argv),
-- `env` (its environment is `aap.rotate.CHILD_ENV` from aap's; list names to pass more of
-- aap's variables, e.g. `{"AAP_HOSTNAME"}`, and give `NAME = "value"` pairs to set others),
-- `timeout` (a duration; at most what is left of the hook's `hook_timeout`, the default),
-- `check` (default true: a non-zero exit raises; false: it is returned).
-- The program and its process group are killed when the time is up, and `ctx:run` raises.
-- @treturn boolean true when it exited 0
-- @treturn integer its exit status (128 + N when signal N ended it)
function CtxMethods:run(argv, opts)
  if type(argv) ~= "table" or type(argv[1]) ~= "string" then error("ctx:run expects a list of words", 2) end
  opts = opts or argv
  if type(opts) ~= "table" then error("ctx:run: options must be a table", 2) end
  for k in pairs(opts) do
    if type(k) ~= "number" and not RUN_OPTS[k] then error(("ctx:run: unknown option %s"):format(tostring(k)), 2) end
  end
  local words = {}
  for i = 1, #argv do
    if type(argv[i]) ~= "string" then error("ctx:run: word " .. i .. " is not a string", 2) end
    words[i] = argv[i]
  end
  if opts.stdin ~= nil and type(opts.stdin) ~= "string" then error("ctx:run: stdin must be a string", 2) end
  local dl = deadlines[self] or { at = aap.os.now() + policy.HOOK_TIMEOUT, limit = policy.HOOK_TIMEOUT }
  local left = dl.at - aap.os.now()
  local limit = ("the hook's hook_timeout of %s"):format(duration.format(dl.limit))
  if left <= 0 then error(("ctx:run: %s is spent"):format(limit), 2) end
  local timeout = left
  if opts.timeout ~= nil then
    local t, terr = duration.parse(opts.timeout)
    if not t then error("ctx:run: timeout: " .. terr, 2) end
    if t < left then timeout, limit = math.max(t, 1), ("its timeout of %s"):format(duration.format(t)) end
  end
  local status, msg, code = aap.os.spawn(words, child_env(opts.env), opts.stdin, timeout)
  if code == "timeout" then error(("ctx:run: %s ran longer than %s and was killed"):format(words[1], limit), 2) end
  if not status then error("ctx:run: " .. msg, 2) end
  if status ~= 0 and opts.check ~= false then
    error(("ctx:run: %s exited with status %d"):format(words[1], status), 2)
  end
  return status == 0, status
end

-- A copy of what a hook is given: policy code may change its copy, never the engine's.
local function for_hook(v)
  if type(v) ~= "table" then return v end
  local c = {}
  if getmetatable(v) == Record then
    for _, k in ipairs(RECORD_FIELDS) do c[k] = v[k] end
    secrets[c] = secrets[v]
    return setmetatable(c, Record)
  end
  for k, x in pairs(v) do c[k] = x end
  return c
end

local function hook_ctx(o, fields)
  local c = setmetatable({ env_file = o.env_file, key = o.key, policy = o.policy.origin,
                           dry_run = o.dry_run or false, now = o.now }, Ctx)
  for k, v in pairs(fields) do c[k] = for_hook(v) end
  deadlines[c] = { at = aap.os.now() + o.policy.hook_timeout, limit = o.policy.hook_timeout }
  loggers[c] = o.log
  return c
end

-- Calls a hook. Returns true; or false, the reason, and whether the hook failed (an error, a
-- limit reached, a program that failed or ran too long) rather than vetoed. A policy file's
-- hooks run under the sandbox's limits (`aap.policy.evaluate`).
local function call_hook(o, name, fields)
  local fn = o.policy[name]
  if not fn then return true end
  local ctx = hook_ctx(o, fields)
  local ok, r1, r2
  if o.policy.sandboxed then
    ok, r1, r2 = policy.evaluate(fn, o.policy.hook_timeout, ctx)
  else
    ok, r1, r2 = pcall(fn, ctx)
  end
  if not ok then return false, ("%s failed: %s"):format(name, policy.describe(r1)), true end
  if r1 == false then
    return false, ("%s vetoed: %s"):format(name, r2 ~= nil and policy.describe(r2) or "no reason given")
  end
  return true
end

local function report_error(o, e, fields)
  fields = fields or {}
  fields.error = { code = e.code, message = message(e) }
  local ok, why = call_hook(o, "on_error", fields)
  if not ok then o.warn(why) end
  return nil, e
end

-- Time --------------------------------------------------------------------------------------

--- The gateway's clock (see workflow.server_now).
M.server_now = workflow.server_now

-- The state ---------------------------------------------------------------------------------

-- Writes the state file, then hands the same text to the policy's `on_state_saved` (a state
-- kept elsewhere too, e.g. in the cluster by deploy/k8s): the state counts as saved only when
-- both succeed, so a run whose copy cannot be kept stops where a failed file write would.
local function save_state(o)
  local ok, e = state.save(o.env_file, o.st)
  if not ok then return nil, err("io", "cannot write the state file %s: %s", state.path(o.env_file), message(e)) end
  if o.policy.on_state_saved then
    local hok, why = call_hook(o, "on_state_saved", { state = e, state_file = state.path(o.env_file) })
    if not hok then return nil, err("policy", "the state file %s was written, but %s", state.path(o.env_file), why) end
  end
  return true
end

local function write_env(o, values)
  local doc, e = envfile.read(o.env_file)
  if not doc then return nil, e end
  local cok, cerr = workflow.check_values(doc, o.env_file, values)
  if not cok then return nil, cerr end
  for _, kv in ipairs(values) do doc:set(kv[1], kv[2]) end
  local ok, werr = aap.os.write_atomic(o.env_file, doc:serialize(), envfile.MODE_PRIVATE)
  if not ok then return nil, err("io", "cannot write %s: %s", o.env_file, tostring(werr)) end
  o.doc = doc
  return true
end

local function known_ids(st)
  local ids = {}
  for _, r in pairs(st.keys) do if r.id then ids[r.id] = true end end
  for _, e in ipairs(st.pending) do ids[e.id] = true end
  for _, it in pairs(st.rotations) do
    if it.old_id then ids[it.old_id] = true end
    if it.new_id then ids[it.new_id] = true end
  end
  return ids
end

-- Deletes a token by id; a token already gone counts as deleted.
local function delete(s, id)
  local ok, e = s:delete_token(id)
  if ok or (e and e.code == "not_found") then return true end
  return nil, e
end

-- Finds and deletes the tokens whose description holds the marker (an interrupted create).
local sweep_marker = workflow.sweep_marker

-- Records that the env file now holds `new` (a Token or state record) in place of the
-- intent's old token, which goes on the pending list.
local function commit(o, it, new, new_fp)
  local st = o.st
  st.keys[o.key] = state.record(new, { refresh_key = new.kind == "application" and o.refresh_key or nil,
                                       fp = new_fp })
  if it.old_id and it.strategy == "recreate" then
    -- Times are whole seconds, rounded towards "later": the state file's JSON keeps only 14
    -- significant digits, and a bound rounded down could count aap's own check as the
    -- consumer's use.
    local ceil = math.ceil
    st.pending[#st.pending + 1] = {
      id = it.old_id, key = o.key, kind = it.kind, rotated_at = it.started, new_id = new.id,
      created = it.old_created, user = it.old_user, application = it.old_application,
      not_before = ceil(it.started + (it.grace or 0)), hooks_done = false,
      wait_for_use = it.wait_for_use and { id = new.id, after = ceil(it.use_baseline or new.last_used or new.created
                                           or it.started) } or nil,
      max_wait_until = it.max_wait and ceil(it.started + it.max_wait) or nil,
    }
  end
  st.rotations[o.key] = nil
  return save_state(o)
end

-- Resolves an intent left by an interrupted run. Returns a note for the report.
local function recover(o)
  local it = o.st.rotations[o.key]
  local s = o.s
  local value = o.doc:get(o.key) or ""
  local file_fp = fp(value)
  if it.strategy == "refresh" then
    if file_fp ~= it.old_fp then
      -- The refreshed pair reached the file: identify the token by its value and record it.
      local tok = workflow.identify(o.conn_for_identify, value)
      local rec = tok or { kind = "application", application = it.application, user = it.user }
      local ok, e = commit(o, it, rec, file_fp)
      if not ok then return nil, e end
      return ("finished an interrupted refresh of %s (new token id=%s)"):format(o.key, tostring(rec.id or "?"))
    end
    local old, oerr = s:token(it.old_id)
    if old then
      o.st.rotations[o.key] = nil
      local ok, e = save_state(o)
      if not ok then return nil, e end
      return ("an interrupted refresh of %s never reached the gateway; nothing to undo"):format(o.key)
    end
    if oerr.code == "auth" and o.self_service then
      -- aap authenticates with the token in the file, and the gateway has deleted it.
      return nil, err("auth", "an interrupted refresh of %s lost the new token and the old one no longer works; "
        .. "run again with admin credentials (AAP_PASSWORD or AAP_TOKEN) to delete the orphan and create a new "
        .. "token", o.key)
    end
    if oerr.code ~= "not_found" then return nil, oerr end
    -- The gateway replaced the token but the new pair was lost. Its new token has no marker
    -- (a refresh keeps no description) and nothing proves which one it is: list the likely
    -- ones for the operator, delete none.
    local known, likely = known_ids(o.st), {}
    for tok, e in s:each_token({ application = it.application, user = it.user }) do
      if not tok then return nil, e end
      if not known[tok.id] and tok.id > (it.old_id or 0) and (it.user == nil or tok.user == it.user)
        and (tok.description or "") == "" and (tok.created or 0) >= it.started - 1 then
        likely[#likely + 1] = tok.id
      end
    end
    o.st.rotations[o.key] = nil
    o.lost = true
    local ok, e = save_state(o)
    if not ok then return nil, e end
    return ("an interrupted refresh of %s lost the new token; the token in the file no longer works%s"):format(o.key,
      #likely > 0 and ("; the lost one is likely among id " .. table.concat(likely, ", ") ..
        " (not deleted: nothing proves which; revoke it with `aap token revoke ID`)") or "")
  end
  -- recreate
  if it.new_id and file_fp == it.new_fp then
    local tok, terr = s:token(it.new_id)
    if not tok and terr.code ~= "not_found" then return nil, terr end
    local ok, e = commit(o, it, tok or { id = it.new_id, kind = it.kind }, file_fp)
    if not ok then return nil, e end
    return ("finished an interrupted rotation of %s (new token id=%d; old token id=%s pending revocation)")
      :format(o.key, it.new_id, tostring(it.old_id))
  end
  -- The new token (it.new_id too) is deleted by its marker, which proves aap made it: an id
  -- alone, read from a file, proves nothing.
  local deleted, serr = sweep_marker(s, it.marker)
  if not deleted then return nil, serr end
  if file_fp ~= it.old_fp then
    -- Someone else changed the file meanwhile: what the state says about the key is stale.
    o.st.keys[o.key] = nil
    o.warn(("%s in %s changed outside aap during an interrupted rotation; its record was dropped")
      :format(o.key, o.env_file))
  end
  o.st.rotations[o.key] = nil
  local ok, e = save_state(o)
  if not ok then return nil, e end
  return ("rolled back an interrupted rotation of %s%s"):format(o.key,
    #deleted > 0 and (" (deleted the unused new token id=" .. table.concat(deleted, ", ") .. ")") or
    " (no new token had been created)")
end

-- Pending revocations -----------------------------------------------------------------------

local function current_record(o)
  local r = o.st.keys[o.key] or {}
  return record({ id = r.id, kind = r.kind, scope = r.scope, application = r.application, user = r.user,
                  created = r.created, expires = r.expires }, o.key, o.doc:get(o.key),
                r.refresh_key and o.doc:get(r.refresh_key) or nil)
end

-- Revokes the old token of a pending entry once the gateway's token with that id is proven
-- to be the one recorded when it was rotated out: same created time, user and application.
-- Returns true (revoked or already gone), false and why (not that token: nothing revoked),
-- or nil and an error.
local function revoke_pending(s, e)
  local tok, terr = s:token(e.id)
  if not tok then
    if terr.code == "not_found" then return true end
    return nil, terr
  end
  if not e.created then
    return false, ("nothing recorded proves that token id=%d is the one rotated out; it was not revoked "
      .. "(check it with `aap token show %d`, then `aap token revoke %d`)"):format(e.id, e.id, e.id)
  end
  if aap.format_time(tok.created or 0) ~= e.created or tok.user ~= e.user or tok.application ~= e.application then
    return false, ("token id=%d is not the one rotated out (created %s, user %s, application %s recorded; the "
      .. "gateway has created %s, user %s, application %s); it was not revoked"):format(e.id, e.created,
      tostring(e.user), tostring(e.application), tok.created and aap.format_time(tok.created) or "?",
      tostring(tok.user), tostring(tok.application))
  end
  return delete(s, e.id)
end

-- Works through the pending revocations of this key. Returns a list of notes.
local function process_pending(o)
  local s, notes, keep = o.s, {}, {}
  local changed = false
  -- The file must still hold the token the rotation put there: otherwise (restored from a
  -- backup; or, in a pod, rebuilt from a Secret that on_rotated never updated) the old token
  -- may be what the consumer uses again, and neither the hook nor the revocation may run.
  local rec = o.st.keys[o.key]
  local drifted = rec and rec.fp and rec.fp ~= fp(o.doc:get(o.key) or "")
  for _, e in ipairs(o.st.pending) do
    if e.key ~= o.key then
      keep[#keep + 1] = e
    elseif drifted and not e.hooks_done then
      -- The switch never reached the consumer: it did not happen. The new token is left live
      -- (aap cannot prove that nothing picked it up from the file meanwhile): named, not deleted.
      o.warn(("%s in %s no longer holds the new token id=%s of an earlier rotation, whose on_rotated never "
        .. "succeeded: the rotation is dropped, the old token id=%d is not revoked, and token id=%s is left live "
        .. "(`aap token revoke %s` when nothing uses it)"):format(o.key, o.env_file, tostring(e.new_id), e.id,
        tostring(e.new_id), tostring(e.new_id)))
      o.st.keys[o.key] = nil
      changed = true
    elseif drifted then
      keep[#keep + 1] = e
      local why = ("%s in %s no longer holds the token id=%s it was switched to"):format(o.key, o.env_file,
        tostring(rec.id))
      notes[#notes + 1] = ("old token id=%d stays valid: %s"):format(e.id, why)
      o.waiting[#o.waiting + 1] = { id = e.id, reason = why }
    else
      local done = false
      if not e.hooks_done then
        if o.dry_run then
          notes[#notes + 1] = ("would run on_rotated for the switch from token id=%d"):format(e.id)
        else
          local ok, why = call_hook(o, "on_rotated", {
            old = record({ id = e.id, kind = e.kind }, o.key, o.old_values[e.id]), new = current_record(o),
            decision = o.decision or { action = "rotate", code = "pending",
                                       reason = "finishing an earlier rotation" } })
          if ok then
            e.hooks_done, changed = true, true
            local sok, serr = save_state(o)
            if not sok then return nil, serr end
            fault("hooked")
          else
            o.held = why
            notes[#notes + 1] = ("old token id=%d stays valid: %s"):format(e.id, why)
          end
        end
      end
      if e.hooks_done or (o.dry_run and not o.held) then
        local due, why = o.now >= (e.not_before or 0), nil
        if not due then
          why = ("grace period until %s"):format(aap.format_time(e.not_before))
        elseif e.wait_for_use then
          local new, nerr = s:token(e.wait_for_use.id)
          if not new and nerr.code ~= "not_found" then return nil, nerr end
          local used = new and new.last_used and new.last_used > (e.wait_for_use.after or 0) or false
          local gone_why
          if not new then
            -- The token the consumer was to pick up is gone (deleted outside aap): revoking the
            -- old one now could cut off a consumer still on it. Wait for the key's current token.
            local cur = o.st.keys[e.key or o.key]
            if cur and cur.id and cur.id ~= e.wait_for_use.id then
              gone_why = ("the new token id=%d is gone; waiting for the consumer to use token id=%d instead")
                :format(e.wait_for_use.id, cur.id)
              if not o.dry_run then
                e.wait_for_use = { id = cur.id, after = math.ceil(o.now) }
                changed = true
              end
            else
              gone_why = ("the new token id=%d no longer exists; the old token id=%d is kept until a new one "
                .. "is in use (run a rotation)"):format(e.wait_for_use.id, e.id)
            end
            o.warn(gone_why)
          end
          if not used and e.max_wait_until and o.now >= e.max_wait_until then
            used = true
            o.warn(("the consumer never used token id=%d; revoking the old token id=%d anyway (max_wait)")
              :format(e.wait_for_use.id, e.id))
          end
          due = used
          if not used then
            why = gone_why or ("waiting for the consumer to use the new token id=%d"):format(e.wait_for_use.id)
          end
        end
        if due and o.dry_run then
          notes[#notes + 1] = ("would revoke the old token id=%d"):format(e.id)
        elseif due then
          local ok, derr = revoke_pending(s, e)
          if ok == nil then return nil, derr end
          done, changed = true, true
          if ok then
            o.revoked[#o.revoked + 1] = e.id
            notes[#notes + 1] = ("revoked the old token id=%d"):format(e.id)
          else
            o.warn(derr)
          end
        else
          notes[#notes + 1] = ("old token id=%d stays valid: %s"):format(e.id, why)
          o.waiting[#o.waiting + 1] = { id = e.id, reason = why }
        end
      end
      if not done then keep[#keep + 1] = e end
    end
  end
  if changed then
    o.st.pending = keep
    local ok, serr = save_state(o)
    if not ok then return nil, serr end
    if #o.revoked > 0 then fault("revoked") end
  end
  return notes
end

-- The current token -------------------------------------------------------------------------

-- Finds the metadata of the token the file holds: by the id recorded in the state file,
-- else from its value. Returns the Token, or nil with a note when it is gone.
local function current_token(o)
  local value = o.doc:get(o.key)
  local rec = o.st.keys[o.key]
  local id, how, used = workflow.prove_id(o.conn_for_identify, value, rec)
  if used then return used end   -- identified by use: its metadata came with the proof
  if not id then
    local e = how
    if e and e.code == "auth" then
      return nil, nil, ("the token in %s (%s) does not work: %s"):format(o.env_file, o.key, message(e))
    end
    return nil, err(e and e.code or "not_found", "cannot prove which token %s in %s is (%s); nothing was changed",
      o.key, o.env_file, message(e))
  end
  local tok, e = o.s:token(id)
  if tok then return tok end
  if e.code ~= "not_found" then return nil, e end
  return nil, nil, ("token id=%d recorded for %s is gone from the gateway"):format(id, o.key)
end

-- Strategies --------------------------------------------------------------------------------

local function has_admin(conn)
  return (conn.password ~= nil and conn.password ~= "") or (conn.token ~= nil and conn.token ~= "")
end

local function description_for(o, old)
  local base = o.policy.description
  if not base then
    base = old and old.description or ""
    base = base:gsub("%s*aap%-%a+:%x+", "") -- this module's markers and token create's
    if base == "" then base = "aap " .. o.key end
  end
  return base
end

local CLIENT_ID_KEY = "AAP_CLIENT_ID"

-- The client id to record beside a recreated application token (so that `aap token refresh`
-- and the refresh strategy find it): the application's, when the env file holds none. A file
-- holding another one keeps it, with a warning (a rotation is not held up by what only a later
-- refresh needs, and the client secret beside it would no longer match); a failed lookup only
-- warns too.
local function client_id_to_record(o, s, application)
  local have = o.doc:get(CLIENT_ID_KEY)
  local a, e = s:application(application)
  if not a or type(a.client_id) ~= "string" or a.client_id == "" then
    if not have or have == "" then
      o.warn(("%s was not recorded in %s: the application id=%s could not be read (%s)"):format(CLIENT_ID_KEY,
        o.env_file, tostring(application), a and "no client_id" or message(e)))
    end
    return nil
  end
  if not have or have == "" then return a.client_id end
  if have ~= a.client_id then
    o.warn(("%s holds the %s of another application, not of id=%s whose token %s is: kept; `aap token refresh` "
      .. "needs that application's client id (and secret)"):format(o.env_file, CLIENT_ID_KEY, tostring(application),
      o.key))
  end
  return nil
end

local function recreate(o, old)
  local s, p = o.s, o.policy
  local oldrec = o.st.keys[o.key] or {}
  local kind = old and old.kind or oldrec.kind or (o.doc:get(o.refresh_key) and "application") or "personal"
  local application = old and old.application or oldrec.application
  if kind == "application" and not application then
    return nil, err("usage", "cannot recreate %s: the application of the old token is unknown", o.key)
  end
  local client_id = kind == "application" and client_id_to_record(o, s, application) or nil
  if old then o.old_values[old.id] = o.doc:get(o.key) end
  local marker = MARKER .. random_id()
  local it = {
    strategy = "recreate", marker = marker, started = math.floor(o.now), old_fp = fp(o.doc:get(o.key)),
    old_id = old and old.id or nil, kind = kind, user = old and old.user or oldrec.user,
    grace = p.grace, wait_for_use = p.wait_for_use or nil, max_wait = p.max_wait,
    -- what proves, when the old token is revoked, that the id is still that token
    old_created = old and old.created and aap.format_time(old.created) or nil,
    old_user = old and old.user or nil, old_application = old and old.application or nil,
  }
  o.st.rotations[o.key] = it
  local ok, e = save_state(o)
  if not ok then return nil, e end
  fault("intent")
  local desc = description_for(o, old)
  desc = desc:sub(1, 200 - #marker - 1) .. " " .. marker
  local new, cerr, warning = workflow.create_marked(s, { application = kind == "application" and application or nil,
    description = desc, scope = p.scope or (old and old.scope) or nil }, marker)
  if warning then o.warn(warning) end
  local function undo(why, new_id)
    local deleted = new_id and delete(s, new_id)
    -- Without an id, a create that failed without a clear answer may still have made a token.
    local unknown = not new_id and (why.resent or why.status == nil or why.status >= 500)
    local swept = not unknown or sweep_marker(s, marker)
    -- A request whose answer was lost may still be finished by the gateway after the sweep:
    -- the intent (and so the marker) stays recorded until a later run sweeps again.
    local late = unknown and type(swept) == "table" and #swept == 0
    if (new_id == nil or deleted) and swept and not late then
      o.st.rotations[o.key] = nil
      save_state(o)
    else
      why = err(why.code, "%s (an unused new token may be left; the next run will delete it)", message(why))
    end
    return nil, why
  end
  if not new then return undo(cerr) end
  fault("created")
  local odd = workflow.odd_answer(new, kind == "application")
  if odd then
    return undo(err("bad_response", "the gateway's answer to the create is not usable (%s)", odd),
      math.type(new.id) == "integer" and new.id or nil)
  end
  it.new_id, it.new_fp, it.user = new.id, fp(new.token), new.user
  ok, e = save_state(o)
  if not ok then return undo(e, new.id) end
  fault("recorded")
  if p.verify then
    local me, verr = workflow.verify(o.conn_for_identify, new.token)
    if not me then
      return undo(err(verr.code or "auth", "the new token did not work (%s); it was deleted", message(verr)), new.id)
    end
    if p.wait_for_use then
      -- The check above used the token: its use by the consumer must come later than this.
      local fresh = s:token(new.id)
      it.use_baseline = fresh and fresh.last_used or nil
    end
  end
  fault("verified")
  local values = { { o.key, new.token } }
  if new.refresh_token then values[2] = { o.refresh_key, new.refresh_token } end
  if client_id then values[#values + 1] = { CLIENT_ID_KEY, client_id } end
  ok, e = write_env(o, values)
  if not ok then return undo(e, new.id) end
  fault("written")
  ok, e = commit(o, it, new, it.new_fp)
  if not ok then return nil, e end
  fault("committed")
  return new
end

local function refresh(o, old)
  local p = o.policy
  local rt = o.doc:get(o.refresh_key)
  if not rt or rt == "" then
    return nil, err("usage", "%s holds no %s: strategy \"refresh\" needs the application token's refresh token",
      o.env_file, o.refresh_key)
  end
  local client = o.client
  if not client then
    local c, cerr = require("aap.config").client(o.doc)
    if not c then return nil, cerr end
    client = c
  end
  -- The gateway deletes the old token the moment it answers: make sure the file can be replaced.
  local ok, e = workflow.preflight(o.env_file, o.doc)
  if not ok then return nil, e end
  local oldrec = o.st.keys[o.key] or {}
  local it = { strategy = "refresh", started = math.floor(o.now), old_fp = fp(o.doc:get(o.key)),
               old_id = old and old.id or oldrec.id, kind = "application",
               application = old and old.application or oldrec.application, user = old and old.user or oldrec.user }
  o.st.rotations[o.key] = it
  ok, e = save_state(o)
  if not ok then return nil, e end
  fault("intent")
  local new, rerr = workflow.refresh(o.conn, { refresh_token = rt, client_id = client.client_id,
                                             client_secret = client.client_secret, scope = p.scope })
  if not new then
    if rerr.refreshed then
      -- Replaced on the gateway, but the answer cannot be used: only a new token cures it.
      o.st.rotations[o.key] = nil
      local sok, serr = save_state(o)
      if not sok then return nil, serr end
      return nil, rerr, true
    end
    if rerr.status and rerr.status >= 400 and rerr.status < 500 then
      -- A definite answer: nothing changed on the gateway.
      o.st.rotations[o.key] = nil
      save_state(o)
      -- invalid_grant (a spent or revoked refresh token) and an expired refresh token can be
      -- cured by creating a new token (API doc §16.12); a bad client cannot.
      local curable = rerr.code == "expired" or
        (rerr.code == "invalid" and (rerr.oauth_error == nil or rerr.oauth_error == "invalid_grant"))
      return nil, rerr, curable
    end
    if workflow.refresh_spent(o.conn_for_identify, rerr, o.doc:get(o.key)) then
      -- The real gateway answers 500 to a refresh whose access token was deleted (API doc §17),
      -- every time: the refresh token is spent, and only a new token cures it.
      o.st.rotations[o.key] = nil
      local sok, serr = save_state(o)
      if not sok then return nil, serr end
      return nil, err("expired", "the gateway failed the refresh (%s) and the access token in %s no longer works: "
        .. "the refresh token is spent", message(rerr), o.env_file), true
    end
    return nil, err(rerr.code or "connect", "the refresh's outcome is unknown (%s); the next run will settle it",
      message(rerr))
  end
  fault("refreshed")
  local values = { { o.key, new.token } }
  if new.refresh_token then values[2] = { o.refresh_key, new.refresh_token } end
  ok, e = write_env(o, values)
  if not ok then
    return nil, err("io", "refreshed, but could not write %s (%s); the old token no longer works", o.env_file,
      message(e))
  end
  fault("written")
  if o.self_service then
    -- The session used the old access token, which the gateway has just deleted.
    local s2 = aap.connect(workflow.bearer(o.conn, new.token))
    if s2 then o.s:close() o.s = s2 end
  end
  local found, ierr = workflow.identify(o.conn_for_identify, new.token)
  if found then
    new.id, new.created, new.user, new.last_used = found.id, found.created, found.user, found.last_used
    new.application = found.application or it.application
  elseif p.verify then
    o.warn("the refreshed token was saved but did not pass the check: " .. message(ierr))
  end
  new.kind = "application"
  ok, e = commit(o, it, new, fp(new.token))
  if not ok then return nil, e end
  fault("committed")
  return new
end

-- The run -----------------------------------------------------------------------------------

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

local OPTS = { conn = true, env_file = true, key = true, refresh_key = true, policy = true, dry_run = true,
               now = true, client = true, warn = true, log = true }

--- Rotates the token in one env file if its policy says it is due.
-- @tparam table opts
--   `conn` (options for `aap.connect`: url, credentials, TLS; without username/password or
--   token, the token in the file authenticates — a PAT rotating itself),
--   `env_file` (path), `key` (default: the key the state file records, else AAP_TOKEN if
--   present, else AAP_PAT), `refresh_key` (default: recorded, else REFRESH_TOKEN),
--   `policy` (a file name, loaded in the sandbox of `aap.policy`; or a table, validated the
--   same way, whose hooks run as the caller's ordinary Lua), `dry_run` (decide and report only: no write request,
--   no file written), `now` (epoch seconds; default the gateway's clock),
--   `client` ({client_id =, client_secret =} for refresh; default AAP_CLIENT_ID /
--   AAP_CLIENT_SECRET or the same keys in the env file), `warn` (function(msg) for warnings;
--   default: stderr), `log` (function(policy, msg) for the hooks' ctx:log; default: stderr)
-- @treturn table `{decision = "keep"|"rotate"|"vetoed", code =, reason =, rotated = bool,
--   strategy =, fallback = bool, old = Record, new = Record, revoked = {ids},
--   waiting = {{id =, reason =}}, notes = {strings}, dry_run = bool, held = why an old token
--   stays valid because `on_rotated` vetoed or failed (it is retried by the next run),
--   hook_failed = why `on_rotated` vetoed or failed after a refresh (not retried)}`,
--   or nil and an error
-- @usage
-- local rotate = require("aap.rotate")
-- for _, it in ipairs(integrations) do
--   local res, err = rotate.run{ conn = { url = URL, username = "admin", password = PW },
--                                env_file = it.env, policy = "policies/yearly.lua" }
--   print(it.env, res and (res.decision .. ": " .. res.reason) or tostring(err))
-- end
function M.run(opts)
  if type(opts) ~= "table" then error("rotate.run expects a table of options", 2) end
  for k in pairs(opts) do
    if not OPTS[k] then error(("rotate.run: unknown option %q"):format(tostring(k)), 2) end
  end
  if type(opts.conn) ~= "table" then error("rotate.run: conn (aap.connect options) is required", 2) end
  if type(opts.env_file) ~= "string" then error("rotate.run: env_file is required", 2) end
  local p, perr = policy.get(opts.policy)
  if not p then return nil, perr end
  local o = { env_file = opts.env_file, policy = p, dry_run = opts.dry_run or false, client = opts.client,
              revoked = {}, waiting = {}, notes = {}, old_values = {},
              warn = opts.warn or function(m) io.stderr:write("aap: warning: ", m, "\n") end, log = opts.log }
  local lock
  if not o.dry_run then
    local lerr
    lock, lerr = state.lock(o.env_file)
    if not lock then return nil, err(lerr.code, lerr.message) end
  end
  local res, e = M._run(o, opts)
  if lock then lock:unlock() end
  return res, e
end

function M._run(o, opts)
  local doc, derr = envfile.read(o.env_file)
  if not doc then return nil, derr end
  if not doc.exists then return nil, err("usage", "%s does not exist: create a token first", o.env_file) end
  local st, serr = state.load(o.env_file)
  if not st then return nil, err(serr.code, serr.message) end
  o.doc, o.st = doc, st
  o.key = opts.key or guess_key(st, doc)
  if not envfile.valid_key(o.key) then return nil, err("usage", "%q is not a valid env key", o.key) end
  local rec = st.keys[o.key] or {}
  o.refresh_key = opts.refresh_key or rec.refresh_key or workflow.KEYS.refresh
  if not envfile.valid_key(o.refresh_key) then return nil, err("usage", "%q is not a valid env key", o.refresh_key) end
  -- A line the rotation would rewrite that not every reader can read (export): refused now,
  -- before anything is done on the gateway.
  local owned_ok, owned_err = doc:check_owned({ o.key, o.refresh_key }, o.env_file)
  if not owned_ok then return nil, err(owned_err.code, owned_err.message) end
  local value = doc:get(o.key)
  if (not value or value == "") and not st.rotations[o.key] then
    return nil, err("usage", "%s holds no %s to rotate", o.env_file, o.key)
  end
  local conn, self_service = {}, false
  for k, v in pairs(opts.conn) do conn[k] = v end
  if not has_admin(conn) then
    self_service = true
    conn.token = value
    if o.policy.wait_for_use then
      return nil, err("usage", "wait_for_use cannot work when aap authenticates with the token it rotates " ..
        "(its own use would count as the consumer's); give admin credentials")
    end
  end
  o.conn, o.conn_for_identify, o.self_service = conn, opts.conn, self_service
  local s, cerr = aap.connect(conn)
  if not s then return nil, cerr end
  o.s = s
  local res, e = M._with_session(o, opts, self_service, has_admin(opts.conn))
  o.s:close()
  return res, e
end

function M._with_session(o, opts, self_service, admin)
  local p = o.policy
  o.now = opts.now or M.server_now(o.s)
  local result = { key = o.key, env_file = o.env_file, dry_run = o.dry_run, notes = o.notes,
                   revoked = o.revoked, waiting = o.waiting, rotated = false }
  if o.st.rotations[o.key] then
    if o.dry_run then
      o.notes[#o.notes + 1] = ("an interrupted rotation of %s would be resolved first"):format(o.key)
      result.decision, result.code = "recover", "interrupted"
      result.reason = "an interrupted rotation must be resolved first (run without --dry-run)"
      return result
    end
    local note, rerr = recover(o)
    if not note then return report_error(o, rerr) end
    o.notes[#o.notes + 1] = note
  end
  local notes, nerr = process_pending(o)
  if not notes then return report_error(o, nerr) end
  for _, n in ipairs(notes) do o.notes[#o.notes + 1] = n end
  result.held = o.held

  local old, terr, gone = current_token(o)
  if not old and terr and terr.code == "auth" and self_service then
    terr = err("auth", "the token in %s (%s) no longer works, and without admin credentials (AAP_PASSWORD or "
      .. "AAP_TOKEN) it cannot be replaced (%s)", o.env_file, o.key, message(terr))
  end
  if not old and terr then return report_error(o, terr) end
  if gone then o.notes[#o.notes + 1] = gone end
  if o.lost then old = nil end
  local d = policy.decide(p, old, o.now)
  if d.code == "missing" and gone then d.reason = gone end
  result.decision, result.code, result.reason = d.action, d.code, d.reason
  local oldrec = o.st.keys[o.key] or {}
  result.old = record(old or { id = oldrec.id, kind = oldrec.kind }, o.key, o.doc:get(o.key),
                      o.doc:get(o.refresh_key))
  if d.action == "keep" or o.dry_run then return result end

  local ok, why, failed = call_hook(o, "before_rotate", { old = result.old, decision = d })
  if failed then
    -- not a veto: nothing was changed, but the rotation the policy asked for did not happen
    return report_error(o, err("policy", why), { old = result.old })
  end
  if not ok then
    result.decision, result.vetoed = "vetoed", why
    return result
  end
  local kind = old and old.kind or oldrec.kind
  local strategy = p.strategy
  if strategy == "refresh" and kind == "personal" then
    return report_error(o, err("policy", "%s: strategy \"refresh\" needs an application token; %s holds a "
      .. "personal access token (use strategy \"recreate\")", p.origin, o.key), { old = result.old })
  end
  if strategy == "recreate" and self_service and kind == "application" then
    return report_error(o, err("usage", "recreating an application token needs admin credentials " ..
      "(AAP_PASSWORD or AAP_TOKEN)"), { old = result.old })
  end
  o.decision = d
  local new, e, curable
  if strategy == "refresh" then
    new, e, curable = refresh(o, old)
    if not new and curable and admin then
      o.warn(("refresh failed (%s); creating a new token instead"):format(message(e)))
      result.fallback = true
      strategy = "recreate"
      if old then
        -- the failed refresh left the access token as it was: read it again
        old = o.s:token(old.id) or nil
      end
      new, e = recreate(o, old)
    elseif not new and curable then
      e = err(e.code, "%s; without admin credentials (AAP_PASSWORD or AAP_TOKEN) no new token can be created",
        message(e))
    end
  else
    new, e = recreate(o, old)
  end
  if not new then return report_error(o, e, { old = result.old }) end
  result.rotated, result.strategy = true, strategy
  result.new = record(new, o.key, new.token, new.refresh_token)
  -- on_rotated, then the old token's revocation, through the pending list.
  o.held = nil
  local pn, perr2 = process_pending(o)
  if not pn then return report_error(o, perr2, { old = result.old, new = result.new }) end
  for _, n in ipairs(pn) do o.notes[#o.notes + 1] = n end
  if strategy == "refresh" then
    local hok, hwhy = call_hook(o, "on_rotated", { old = result.old, new = result.new, decision = d })
    if not hok then
      result.hook_failed = hwhy .. " (the refresh has already replaced the token; nothing was undone)"
    end
  end
  result.held = o.held
  return result
end

-- Prune ---------------------------------------------------------------------------------------

local PRUNE_OPTS = { conn = true, unused_for = true, expired = true, description_like = true, kind = true,
                     user = true, all_users = true, dry_run = true, keep_ids = true, keep_env_files = true, now = true,
                     progress = true, confirm = true }

-- The ids an env file's tokens have: recorded in its state file (current, pending, in flight),
-- and every token value in it proven (workflow.prove_id: by its recorded fingerprint, else by
-- using it). A value that works but cannot be told apart is an error: prune cannot promise to
-- spare a token it cannot name.
local function env_file_ids(path, conn, ids)
  local doc, e = envfile.read(path)
  if not doc then return nil, e end
  local st, serr = state.load(path)
  if not st then return nil, err(serr.code, serr.message) end
  for id in pairs(known_ids(st)) do ids[id] = path end
  local keys, seen = {}, {}
  for _, k in ipairs({ workflow.KEYS.token, workflow.KEYS.pat }) do keys[#keys + 1] = k end
  for k in pairs(st.keys) do keys[#keys + 1] = k end
  for _, k in ipairs(keys) do
    local v = doc:get(k)
    if v and v ~= "" and not seen[k] then
      seen[k] = true
      local id, how = workflow.prove_id(conn, v, st.keys[k])
      if id then
        ids[id] = path
      elseif how and how.code ~= "auth" then
        return nil, err(how.code or "not_found", "cannot prove which token %s in %s is (%s), so prune cannot be "
          .. "sure to keep it; nothing was revoked", k, path, message(how))
      end
    end
  end
  return true
end

--- Finds tokens nobody used for a while (or expired) and revokes them.
-- Never touches the token the connection is authenticated with, nor the tokens recorded in
-- `keep_env_files` (their current, pending and in-flight tokens).
-- @tparam table opts `conn` (aap.connect options), `unused_for` (duration: last used that
--   long ago, or never used and created that long ago; default 90d unless `expired` is
--   given), `expired` (bool: also tokens past their expiry), `description_like` (substring,
--   case-insensitive), `kind` ("personal"|"application"), `user` (id; default: the caller's
--   own tokens), `all_users` (every user's tokens; superusers only), `dry_run`,
--   `keep_ids` (list), `keep_env_files` (list of paths), `now` (default: the gateway's clock),
--   `progress` (function(phase, done, total) called while scanning ("scan") and revoking
--   ("revoke")), `confirm` (function(candidates) → bool, asked before revoking)
-- @treturn table `{candidates = {Token with .why}, revoked = {ids}, failed = {{id =, error =}},
--   scanned = N, kept = {[id] = why}, confirmed = bool}`, or nil and an error
-- @usage local res = rotate.prune{ conn = c, unused_for = "180d", dry_run = true }
function M.prune(opts)
  if type(opts) ~= "table" then error("rotate.prune expects a table of options", 2) end
  for k in pairs(opts) do
    if not PRUNE_OPTS[k] then error(("rotate.prune: unknown option %q"):format(tostring(k)), 2) end
  end
  if type(opts.conn) ~= "table" then error("rotate.prune: conn (aap.connect options) is required", 2) end
  local unused_for
  if opts.unused_for ~= nil then
    local n, why = duration.parse(opts.unused_for)
    if not n then return nil, err("usage", "unused_for: %s", why) end
    unused_for = n
  elseif not opts.expired then
    unused_for = 90 * 86400
  end
  local like = opts.description_like and tostring(opts.description_like):lower()
  local s, cerr = aap.connect(opts.conn)
  if not s then return nil, cerr end
  local function fail(e) s:close() return nil, e end
  local keep = {}
  for _, id in ipairs(opts.keep_ids or {}) do keep[id] = "kept by request" end
  if opts.conn.token then
    local raw, ierr = workflow.identify(opts.conn, opts.conn.token)
    if not raw then
      return fail(err(ierr and ierr.code or "auth", "cannot find the id of the token aap is authenticated with "
        .. "(%s), so prune cannot be sure to spare it", message(ierr)))
    end
    keep[raw.id] = "aap is authenticated with it"
  end
  for _, path in ipairs(opts.keep_env_files or {}) do
    local ids = {}
    local ok, e = env_file_ids(path, opts.conn, ids)
    if not ok then return fail(e) end
    for id in pairs(ids) do keep[id] = "recorded in " .. path end
  end
  if unused_for then
    local flavor = s:flavor()
    if flavor == "controller" then
      return fail(err("usage", "the controller does not report last_used; use --expired there"))
    end
  end
  local now = opts.now or M.server_now(s)
  -- Whose tokens: a gateway lists every user's tokens to anyone (API doc §17), and only a
  -- superuser may delete another user's.
  local me, merr = s:me()
  if not me then return fail(merr) end
  if (opts.all_users or (opts.user and tonumber(opts.user) ~= me.id)) and not me.is_superuser then
    return fail(err("forbidden", "only a superuser may prune other users' tokens (%s is not one)",
      tostring(me.username)))
  end
  local filters = {}
  if opts.user then filters.user = opts.user elseif not opts.all_users then filters.user = me.id end
  if opts.kind == "personal" then filters.application__isnull = "true" end
  if opts.kind == "application" then filters.application__isnull = "false" end
  local res = { candidates = {}, revoked = {}, failed = {}, scanned = 0, kept = {} }
  for tok, e in s:each_token(filters) do
    if not tok then return fail(e) end
    if filters.user and tok.user and tok.user ~= tonumber(filters.user) then goto continue end
    res.scanned = res.scanned + 1
    if opts.progress then opts.progress("scan", res.scanned) end
    local why
    if opts.expired and tok.expires and tok.expires <= now then
      why = "expired " .. duration.format(now - tok.expires) .. " ago"
    elseif unused_for then
      if tok.last_used and now - tok.last_used >= unused_for then
        why = "last used " .. duration.format(now - tok.last_used) .. " ago"
      elseif not tok.last_used and tok.created and now - tok.created >= unused_for then
        why = "never used, created " .. duration.format(now - tok.created) .. " ago"
      end
    end
    if why and like and not (tok.description or ""):lower():find(like, 1, true) then why = nil end
    if why and keep[tok.id] then
      res.kept[tok.id] = keep[tok.id]
      why = nil
    end
    if why then
      tok.why = why
      res.candidates[#res.candidates + 1] = tok
    end
    ::continue::
  end
  if opts.dry_run or #res.candidates == 0 then s:close() return res end
  if opts.confirm and not opts.confirm(res.candidates) then
    res.confirmed = false
    s:close()
    return res
  end
  res.confirmed = true
  for i, tok in ipairs(res.candidates) do
    local ok, e = delete(s, tok.id)
    if ok then
      res.revoked[#res.revoked + 1] = tok.id
    else
      res.failed[#res.failed + 1] = { id = tok.id, error = e }
      if e.code == "connect" or e.code == "timeout" or e.code == "tls" then
        for j = i + 1, #res.candidates do res.failed[#res.failed + 1] = { id = res.candidates[j].id, error = e } end
        break
      end
    end
    if opts.progress then opts.progress("revoke", i, #res.candidates) end
  end
  s:close()
  return res
end

return M
