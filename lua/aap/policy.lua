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
--      on_state_saved = function(ctx) end,             -- keep a copy of the state (ctx.state)
--      hook_timeout  = "60s",      -- how long one hook call may take, programs included (max 10m)
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
-- `ctx:run{argv..., stdin =, env =, timeout =, check =}` (runs a program directly, never
-- through a shell, its output on stderr, with a clean environment; see `aap.rotate`).
-- `before_rotate` runs before anything changes; `on_rotated` after the env file holds the new
-- token and before the old one is revoked (a veto or a failure keeps the old token valid and
-- is retried by the next run; after a refresh there is nothing to keep); `on_error` on any
-- failure; `on_state_saved` after every write of the state file (`ctx.state`: the JSON text
-- written, which holds token ids and fingerprints, no secret; `ctx.state_file`: its path), for a
-- run that keeps no file between runs (deploy/k8s keeps it in a Secret): its failure or veto
-- counts as a failed state write, and the run stops there (before the create request, the
-- first write: nothing is made). A hook vetoes by returning `false, "reason"`: a vetoed `before_rotate` is a
-- decision (`aap token rotate` exits 0). A hook *fails* when it raises an error, reaches a
-- limit below, or its program exits non-zero or runs past its time: that is an error of code
-- `policy` (exit 1) whichever the hook. Hooks may run again after an interrupted run: make
-- them idempotent.
--
-- The file runs in a sandbox (`aap.sandbox`). Its globals are only these (the documented safe set):
-- `assert error ipairs next pairs pcall xpcall select tonumber tostring type rawequal
-- rawget rawlen setmetatable`, copies of `string` (without `dump`), `table`, `math`,
-- `utf8`, `os.time os.date os.clock os.difftime os.getenv`, and `print` (which writes to
-- stderr, so that stdout stays machine-readable). Reading or setting any other global is
-- an error. Hooks reach the outside world through their context (`ctx:run`, `ctx:log`).
-- Within it:
--
-- * `os.getenv` reads only `HOME USER LOGNAME HOSTNAME LANG TZ` (`ENV_READABLE` of
--   `aap.sandbox`); every other variable, aap's credentials first, reads as nil.
-- * `setmetatable` refuses a metatable with `__gc` (a finalizer runs when the collector
--   pleases, where no limit can stop it). No `coroutine`, `load`, `require` or `debug`.
-- * Strings' methods (`("x"):find`) are the sandbox's while policy code runs: no `dump`.
--   `find`, `match`, `gmatch` and `gsub` refuse a pattern whose worst case on the subject
--   exceeds `LIMITS.pattern` steps (`pattern_cost`: each `*`, `+`, `-`, `%b` or
--   back-reference may try every length, each `?` both ways), e.g. 40 `a*` on 40 bytes.
--
-- Limits (`LIMITS`), per evaluation (loading the file, or one hook call): 10 million
-- instructions (pattern matches charged their worst case), 32 MB of Lua heap growth
-- (enforced by the allocator, so one `string.rep` cannot pass it), 10 seconds to load and
-- the policy's `hook_timeout` for a hook (its programs included), a 1 MB file. Once a
-- limit is reached, every `pcall`/`xpcall` in the policy raises it again: policy code
-- cannot catch it. Hooks of a policy given as a Lua table (`rotate.run{policy = {...}}`)
-- are the caller's own code and run without these limits (their programs are still
-- time-limited).
-- @module aap.policy
local duration = require("aap.duration")
local sandbox = require("aap.sandbox")

local M = {}

-- The metatable of validated policies, so that `get` does not validate them twice.
local Normalized = { __name = "aap.Policy" }

local DEFAULTS = { strategy = "recreate", verify = true, grace = 0, wait_for_use = false, hook_timeout = 60 }

-- A value shown in a message without running any of its metamethods, and short.
local function show(v)
  if type(v) == "string" then
    return #v > 40 and ("%q..."):format(v:sub(1, 40)) or ("%q"):format(v)
  end
  if type(v) == "number" or type(v) == "boolean" or v == nil then return tostring(v) end
  return "a " .. type(v)
end

local function is_duration(v)
  if type(v) ~= "string" and type(v) ~= "number" then return nil, ("%s is not a duration"):format(show(v)) end
  if type(v) == "string" and #v > 64 then return nil, ("%s is not a duration (too long)"):format(show(v)) end
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
    return nil, ("must be %s, not %s"):format(table.concat(shown, " or "), show(v))
  end
end

local function boolean(v)
  if type(v) == "boolean" then return v end
  return nil, ("must be true or false, not %s"):format(show(v))
end

local function func(v)
  if type(v) == "function" then return v end
  return nil, "must be a function, not a " .. type(v)
end

local function text(v)
  if type(v) ~= "string" then return nil, "must be a string, not a " .. type(v) end
  if #v > 200 then return nil, "must be at most 200 characters" end
  if v:find("[%z\r\n]") then return nil, "must be one line" end
  return v
end

--- The longest time a hook may take (`hook_timeout`), and the default.
M.MAX_HOOK_TIMEOUT = 600
M.HOOK_TIMEOUT = 60

local function hook_timeout(v)
  local n, why = is_duration(v)
  if not n then return nil, why end
  if n < 1 or n > M.MAX_HOOK_TIMEOUT then
    return nil, ("must be 1s to %s, not %s"):format(duration.format(M.MAX_HOOK_TIMEOUT), duration.format(n))
  end
  return n
end

--- The keys a policy may hold, each with its checker (value → normalized value | nil, why).
M.SCHEMA = {
  max_age = is_duration, renew_before = is_duration, min_age = is_duration,
  strategy = one_of("recreate", "refresh"),
  verify = boolean, scope = one_of("read", "write"), description = text,
  grace = is_duration, wait_for_use = boolean, max_wait = is_duration,
  before_rotate = func, on_rotated = func, on_error = func, on_state_saved = func, hook_timeout = hook_timeout,
}

local KNOWN = {}
for k in pairs(M.SCHEMA) do KNOWN[#KNOWN + 1] = k end
table.sort(KNOWN)

--- A policy error: an `aap.Error` (`aap.errors`) with code "policy", printed as its message
-- alone (`plain`).
local function perr(message)
  return require("aap.errors").new("policy", message, { plain = true })
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
  if #key > 40 then return nil end
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
  key = key:gsub("%p", "%%%0") -- a key is not a pattern
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do
    if line:find("%f[%w_]" .. key .. "%s*=") or line:find("%[%s*[\"']" .. key .. "[\"']%s*%]%s*=") then
      return n
    end
    n = n + 1
  end
end

local function where(origin, source, key)
  local line = key and #key <= 64 and line_of(source, key)
  if line then return ("%s:%d: "):format(origin, line) end
  return origin .. ": "
end

--- Validates a policy table and returns a normalized copy (durations in seconds, defaults
-- filled in). The input is not changed.
-- @tparam table t the policy
-- @tparam ?string origin where it came from, for messages (a file name; default "policy")
-- @tparam ?string source the file's text, to point messages at the right line
-- @treturn table the normalized policy, or nil and an `aap.Error` (`aap.errors`) of code "policy"
-- @usage local p, err = policy.validate({ max_age = "90d" }, "inline")
function M.validate(t, origin, source)
  origin = origin or "policy"
  if type(t) ~= "table" then
    return nil, perr(("%s: a policy must be a table, not a %s"):format(origin, type(t)))
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      return nil, perr(("%s: policy keys are names; found a %s key (%s)"):format(origin, type(k), show(k)))
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

-- The sandbox's limits, `evaluate`, `describe` and `pattern_cost`, as `aap.policy` has always
-- offered them: see `aap.sandbox`.
--- `aap.sandbox.LIMITS`.
M.LIMITS = sandbox.LIMITS
--- `aap.sandbox.evaluate`.
M.evaluate = sandbox.evaluate
--- `aap.sandbox.describe`.
M.describe = sandbox.describe
--- `aap.sandbox.pattern_cost`.
M.pattern_cost = sandbox.pattern_cost

--- Loads a policy file in the sandbox (`aap.sandbox`) and validates it.
-- @tparam string path the file
-- @treturn table the normalized policy, or nil and an `aap.Error` (`aap.errors`) of code "policy"
-- @usage local p = assert(policy.load("examples/policies/yearly-recreate.lua"))
function M.load(path)
  if type(path) ~= "string" then error("policy.load: path must be a string", 2) end
  local ok, res, source = sandbox.run_file(path)
  if not ok then return nil, perr(res) end
  if type(res) ~= "table" then
    return nil, perr(("%s: the file must return a policy table (it returned %s)"):format(path,
      res == nil and "nothing" or ("a " .. type(res))))
  end
  if getmetatable(res) ~= nil then
    return nil, perr(("%s: the policy table must be a plain table (it has a metatable)"):format(path))
  end
  local p, verr = M.validate(res, path, source)
  if p then p.sandboxed = true end
  return p, verr
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
