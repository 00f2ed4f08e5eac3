--- Hooks: the token records a policy's hooks see (`Record`), their context (`ctx:run`,
-- `ctx:log`) and calling a hook, in the policy's sandbox when it came from a file.
-- Internal to `aap.rotate`, which re-exports `record` and `CHILD_ENV`.
-- @module aap.rotate.hooks
local aap = require("aap")
local envfile = require("aap.env")
local policy = require("aap.policy")
local sandbox = require("aap.sandbox")
local duration = require("aap.duration")

local M = {}

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

local function hook_ctx(run, fields)
  local c = setmetatable({ env_file = run.env_file, key = run.key, policy = run.policy.origin,
                           dry_run = run.dry_run or false, now = run.now }, Ctx)
  for k, v in pairs(fields) do c[k] = for_hook(v) end
  deadlines[c] = { at = aap.os.now() + run.policy.hook_timeout, limit = run.policy.hook_timeout }
  loggers[c] = run.log
  return c
end

--- Calls the policy's hook `name` for a run (an `aap.rotate.run` Run: its env file, key, policy,
-- dry_run, now and log make the context), with `fields` (copied) added to the context.
-- A policy file's hooks run under the sandbox's limits (`aap.sandbox.evaluate`).
-- @tparam table run
-- @tparam string name `before_rotate`, `on_rotated`, `on_error` or `on_state_saved`
-- @tparam table fields
-- @treturn boolean true (also when the policy has no such hook); or false, the reason, and
--   whether the hook failed (an error, a limit reached, a program that failed or ran too long)
--   rather than vetoed
function M.call(run, name, fields)
  local fn = run.policy[name]
  if not fn then return true end
  local ctx = hook_ctx(run, fields)
  local ok, r1, r2
  if run.policy.sandboxed then
    ok, r1, r2 = sandbox.evaluate(fn, run.policy.hook_timeout, ctx)
  else
    ok, r1, r2 = pcall(fn, ctx)
  end
  if not ok then return false, ("%s failed: %s"):format(name, sandbox.describe(r1)), true end
  if r1 == false then
    return false, ("%s vetoed: %s"):format(name, r2 ~= nil and sandbox.describe(r2) or "no reason given")
  end
  return true
end

return M
