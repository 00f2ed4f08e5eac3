--- Rotation policies: Lua files (or tables) that say when a token is due and how to
-- replace it, loaded in a sandbox and validated strictly, and the pure decision function.
--
-- A policy file returns a table:
--
--    return {
--      max_age      = "365d",      -- rotate a token this old (age = now - created)
--      renew_before = "30d",       -- rotate when it expires within this window
--      min_age      = "1d",        -- never rotate a younger token (unless it expired)
--      strategy     = "recreate",  -- or "refresh" (application tokens: /o/token/)
--      verify       = true,        -- prove the new token works (GET me/) before writing it
--      scope        = "write",     -- the new token's scope (default: the old token's)
--      description  = "ci deploy", -- the new token's description (a marker is appended)
--      grace        = "1h",        -- keep the old token valid this long after the switch
--      wait_for_use = true,        -- ... and until the consumer has used the new one
--      max_wait     = "7d",        -- ... but revoke the old one anyway after this long
--      before_rotate = function(ctx) return true end,  -- may veto: return false, "reason"
--      on_rotated    = function(ctx) end,              -- may veto the old token's revocation
--      on_error      = function(ctx) end,              -- told about failures; return ignored
--    }
--
-- Durations are strings in `s`, `m`, `h`, `d` (`"1d12h"`) or numbers of seconds
-- (`aap.duration`). At least one of `max_age` and `renew_before` is required. Any other
-- key, or a value of the wrong kind, is refused with a message naming the file, the line
-- and the key.
--
-- Hooks get one argument, a context `ctx` with: `key` and `env_file` (what is rotated),
-- `policy` (the file name), `dry_run`, `now` (the gateway's clock, epoch seconds), `decision`
-- (`{action, code, reason}`), `old` and `new` (token records: `id`, `kind`, `scope`,
-- `application`, `user`, `description`, `created`, `expires`, `last_used`; the values only
-- through `ctx.new:secret()`, `ctx.new:refresh_secret()`, nil when unknown), `error`
-- (`{code, message}`, for `on_error`), `ctx:log(msg)` (a line on stderr) and
-- `ctx:run(argv, {stdin =})` (runs a program without a shell, its output on stderr; returns
-- true when it exited 0, and the exit status). `before_rotate` runs before anything changes;
-- `on_rotated` after the env file holds the new token and before the old one is revoked (a
-- veto or an error keeps the old token valid and is retried by the next run; after a
-- refresh there is nothing to keep); `on_error` on any failure. A hook vetoes by returning
-- `false, "reason"`; an error raised in it counts as a veto. Hooks may run again after an
-- interrupted run: make them idempotent.
--
-- The file runs in a sandbox. Its globals are only these (the documented safe set):
-- `assert error ipairs next pairs pcall xpcall select tonumber tostring type rawequal
-- rawget rawlen setmetatable`, copies of `string` (without `dump`), `table`, `math`,
-- `utf8`, `os.time os.date os.clock os.difftime os.getenv`, and `print` (which writes to
-- stderr, so that stdout stays machine-readable). Reading or setting any other global is
-- an error. Hooks reach the outside world through their context (`ctx:run`, `ctx:log`).
-- @module aap.policy
local duration = require("aap.duration")

local M = {}

-- The metatable of validated policies, so that `get` does not validate them twice.
local Normalized = { __name = "aap.Policy" }

local DEFAULTS = { strategy = "recreate", verify = true, grace = 0, wait_for_use = false }

local function is_duration(v)
  local n, err = duration.parse(v)
  if not n then return nil, err end
  return n
end

local function one_of(...)
  local set, list = {}, { ... }
  for _, v in ipairs(list) do set[v] = true end
  return function(v)
    if set[v] then return v end
    local shown = {}
    for i, w in ipairs(list) do shown[i] = ("%q"):format(w) end
    return nil, ("must be %s, not %s"):format(table.concat(shown, " or "),
      type(v) == "string" and ("%q"):format(v) or tostring(v))
  end
end

local function boolean(v)
  if type(v) == "boolean" then return v end
  return nil, ("must be true or false, not %s"):format(type(v) == "string" and ("%q"):format(v) or tostring(v))
end

local function func(v)
  if type(v) == "function" then return v end
  return nil, "must be a function, not a " .. type(v)
end

local function text(v)
  if type(v) ~= "string" then return nil, "must be a string, not a " .. type(v) end
  if v:find("[%z\r\n]") then return nil, "must be one line" end
  if #v > 200 then return nil, "must be at most 200 characters" end
  return v
end

--- The keys a policy may hold, each with its checker (value → normalized value | nil, why).
M.SCHEMA = {
  max_age = is_duration, renew_before = is_duration, min_age = is_duration,
  strategy = one_of("recreate", "refresh"),
  verify = boolean, scope = one_of("read", "write"), description = text,
  grace = is_duration, wait_for_use = boolean, max_wait = is_duration,
  before_rotate = func, on_rotated = func, on_error = func,
}

local KNOWN = {}
for k in pairs(M.SCHEMA) do KNOWN[#KNOWN + 1] = k end
table.sort(KNOWN)

--- A policy error: a table {code = "policy", message =}, printable.
local PolicyError = { __tostring = function(e) return e.message end }

local function perr(message)
  return setmetatable({ code = "policy", message = message }, PolicyError)
end
M.error = perr

-- Levenshtein distance, for "did you mean" on misspelt keys.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function suggest(key)
  local best, bd = nil, 3
  for _, k in ipairs(KNOWN) do
    local d = distance(key:lower(), k)
    if d < bd then best, bd = k, d end
  end
  return best
end

-- The line where `key = ` first appears in the source, to point the operator at it.
local function line_of(source, key)
  if not source then return nil end
  local n = 1
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do
    if line:find("%f[%w_]" .. key .. "%s*=") or line:find("%[%s*[\"']" .. key .. "[\"']%s*%]%s*=") then
      return n
    end
    n = n + 1
  end
end

local function where(origin, source, key)
  local line = key and line_of(source, key)
  if line then return ("%s:%d: "):format(origin, line) end
  return origin .. ": "
end

--- Validates a policy table and returns a normalized copy (durations in seconds, defaults
-- filled in). The input is not changed.
-- @tparam table t the policy
-- @tparam ?string origin where it came from, for messages (a file name; default "policy")
-- @tparam ?string source the file's text, to point messages at the right line
-- @treturn table the normalized policy, or nil and an error {code = "policy", message}
-- @usage local p, err = policy.validate({ max_age = "90d" }, "inline")
function M.validate(t, origin, source)
  origin = origin or "policy"
  if type(t) ~= "table" then
    return nil, perr(("%s: a policy must be a table, not a %s"):format(origin, type(t)))
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      return nil, perr(("%s: policy keys are names; found a %s key (%s)"):format(origin, type(k), tostring(k)))
    end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local p = {}
  for _, k in ipairs(keys) do
    local check = M.SCHEMA[k]
    if not check then
      local hint = suggest(k)
      return nil, perr(("%sunknown key %q%s; a policy may hold: %s"):format(where(origin, source, k), k,
        hint and (" (did you mean %q?)"):format(hint) or "", table.concat(KNOWN, ", ")))
    end
    local v, why = check(t[k])
    if v == nil then
      return nil, perr(("%s%s: %s"):format(where(origin, source, k), k, why))
    end
    p[k] = v
  end
  for k, v in pairs(DEFAULTS) do
    if p[k] == nil then p[k] = v end
  end
  if not p.max_age and not p.renew_before then
    return nil, perr(origin .. ": a policy needs max_age or renew_before (or both); without them it never rotates")
  end
  if p.min_age and p.max_age and p.min_age >= p.max_age then
    return nil, perr(("%smin_age (%s) must be shorter than max_age (%s)"):format(where(origin, source, "min_age"),
      duration.format(p.min_age), duration.format(p.max_age)))
  end
  if p.max_wait and not p.wait_for_use then
    return nil, perr(("%smax_wait only makes sense with wait_for_use = true"):format(
      where(origin, source, "max_wait")))
  end
  p.origin = origin
  return setmetatable(p, Normalized)
end

local SAFE_GLOBALS = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "select", "tonumber", "tostring",
  "type", "rawequal", "rawget", "rawlen", "setmetatable",
}

local function copy(t, except)
  local c = {}
  for k, v in pairs(t) do
    if not (except and except[k]) then c[k] = v end
  end
  return c
end

--- A fresh sandbox environment for a policy file (see the module's description).
-- @tparam string origin the file name, for messages about unknown globals
-- @treturn table
function M.sandbox(origin)
  local env = {}
  for _, name in ipairs(SAFE_GLOBALS) do env[name] = _G[name] end
  env.string = copy(string, { dump = true })
  env.table = copy(table)
  env.math = copy(math)
  env.utf8 = copy(utf8)
  env.os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime, getenv = os.getenv }
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    io.stderr:write(origin, ": ", table.concat(parts, "\t"), "\n")
  end
  env._G = env
  return setmetatable(env, {
    __index = function(_, k)
      error(("unknown global %q (policies run in a sandbox; see `aap.policy` for what is available)")
        :format(tostring(k)), 2)
    end,
    __newindex = function(_, k)
      error(("cannot set global %q (policies run in a sandbox; use local variables)"):format(tostring(k)), 2)
    end,
  })
end

-- Instructions a policy file may run while loading: enough for any table of settings,
-- small enough that an accidental endless loop ends with a message.
M.LOAD_BUDGET = 10000000

--- Loads a policy file in the sandbox and validates it.
-- @tparam string path the file
-- @treturn table the normalized policy, or nil and an error {code = "policy", message}
-- @usage local p = assert(policy.load("examples/policies/yearly-recreate.lua"))
function M.load(path)
  if type(path) ~= "string" then error("policy.load: path must be a string", 2) end
  local f, oerr = io.open(path, "rb")
  if not f then return nil, perr("cannot read policy " .. tostring(oerr)) end
  local source = f:read("a")
  f:close()
  local chunk, lerr = load(source, "@" .. path, "t", M.sandbox(path))
  if not chunk then return nil, perr(tostring(lerr)) end
  local co = coroutine.create(chunk)
  debug.sethook(co, function() error("the policy file runs too long while loading (endless loop?)", 2) end,
    "", M.LOAD_BUDGET)
  local ok, res = coroutine.resume(co)
  if not ok then
    local msg = tostring(res)
    if not msg:find(path, 1, true) then msg = path .. ": " .. msg end
    return nil, perr(msg)
  end
  if coroutine.status(co) ~= "dead" then
    return nil, perr(path .. ": the policy file yielded; it must return a table")
  end
  if type(res) ~= "table" then
    return nil, perr(("%s: the file must return a policy table (it returned %s)"):format(path,
      res == nil and "nothing" or ("a " .. type(res))))
  end
  return M.validate(res, path, source)
end

--- A policy from a table (validated) or a file name (loaded).
-- @tparam table|string p
-- @treturn table the normalized policy, or nil, err
function M.get(p)
  if type(p) == "string" then return M.load(p) end
  if getmetatable(p) == Normalized then return p end
  return M.validate(p, "policy")
end

local fmt = duration.format

--- Decides whether a token is due for rotation. Pure: no I/O, no clock.
-- @tparam table p a normalized policy (from `validate`, `load` or `get`)
-- @tparam ?table tok the token's metadata: `created`, `expires`, `last_used` (epoch seconds
--   or nil); nil (or `tok.missing = true`) when the token no longer exists on the server
-- @tparam number now the current time, epoch seconds (the gateway's clock)
-- @treturn table `{action = "rotate"|"keep", code =, reason =, age =, expires_in =}` where
--   code is `missing`, `expired`, `too_young`, `max_age`, `renew_window` or `not_due`
-- @usage policy.decide(p, { created = t0, expires = t0 + 365 * 86400 }, now)
function M.decide(p, tok, now)
  if type(p) ~= "table" or type(now) ~= "number" then error("policy.decide(policy, token, now)", 2) end
  if tok == nil or tok.missing then
    return { action = "rotate", code = "missing",
             reason = "the token no longer exists on the gateway (revoked or deleted)" }
  end
  -- Clocks differ by a little (the gateway's `created` vs the `now` aap reads): never negative.
  local age = tok.created and math.max(0, now - tok.created) or nil
  local left = tok.expires and (tok.expires - now) or nil
  local d = { age = age, expires_in = left }
  local function out(action, code, reason)
    d.action, d.code, d.reason = action, code, reason
    return d
  end
  if left and left <= 0 then
    return out("rotate", "expired", ("expired %s ago"):format(fmt(-left)))
  end
  if p.min_age and age and age < p.min_age then
    return out("keep", "too_young", ("too young: age %s < min_age %s"):format(fmt(age), fmt(p.min_age)))
  end
  if p.max_age and age and age >= p.max_age then
    return out("rotate", "max_age", ("max age reached: age %s >= max_age %s"):format(fmt(age), fmt(p.max_age)))
  end
  if p.renew_before and left and left <= p.renew_before then
    return out("rotate", "renew_window", ("inside the renew window: expires in %s <= renew_before %s"):format(
      fmt(left), fmt(p.renew_before)))
  end
  local parts = {}
  if p.max_age then
    parts[#parts + 1] = age and ("age %s < max_age %s"):format(fmt(age), fmt(p.max_age)) or "age unknown"
  end
  if p.renew_before then
    parts[#parts + 1] = left and ("expires in %s > renew_before %s"):format(fmt(left), fmt(p.renew_before))
      or "no expiry"
  end
  return out("keep", "not_due", "not due: " .. table.concat(parts, "; "))
end

return M
