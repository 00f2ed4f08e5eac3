--- The sandbox that policy files run in (`aap.policy`): a fresh environment of the safe
-- globals, and `evaluate`, which runs policy code under the limits (`LIMITS`): an instruction
-- budget kept by a count hook, a wall-clock deadline, a heap cap enforced by the allocator
-- (`aap.os.resume`), pattern functions bounded by their worst case (`pattern_cost`), and a
-- `pcall`/`xpcall` that cannot catch a limit. What a policy file may use is described for its
-- authors in `aap.policy`. Its failures are messages (strings), which `aap.policy` makes
-- errors of code `policy`.
-- @module aap.sandbox
local duration = require("aap.duration")

local M = {}

--- The limits of policy code, per evaluation (loading a file, or one hook call).
-- `instructions`: Lua VM instructions, pattern matching charged by its worst case;
-- `memory`: bytes the Lua heap may grow by (enforced by the allocator: no single call can
-- pass it); `load_seconds`: wall clock for loading a file (a hook has its `hook_timeout`);
-- `pattern`: the most steps one pattern match may take in the worst case (see `pattern_cost`);
-- `source`: the largest policy file, in bytes.
M.LIMITS = { instructions = 10000000, memory = 32 * 1024 * 1024, load_seconds = 10, pattern = 1000000,
             source = 1024 * 1024 }

-- The count hook runs every STEP instructions: fine enough that the deadline holds even when
-- each instruction copies a large string, coarse enough to cost little.
local STEP = 100

local real_pcall, real_xpcall, real_error, real_setmetatable = pcall, xpcall, error, setmetatable
local sfind, smatch, sgmatch, sgsub, sbyte = string.find, string.match, string.gmatch, string.gsub, string.byte
local rawget_, type_, select_ = rawget, type, select

local osu -- aap.os, loaded on first use (loading this module, and validating a policy, needs no C)
local function aap_os()
  osu = osu or require("aap").os
  return osu
end

-- The evaluation running now: {used =, limit =, deadline =, spent = why it must stop}.
-- Policy code is never re-entered, so there is at most one.
local active

-- Once spent, every later check raises again, so a pcall inside the policy cannot keep it alive.
local function charge(n)
  local g = active
  if not g then return end
  g.used = g.used + n
  if not g.spent then
    if g.used > g.limit then
      g.spent = ("the policy ran too long: more than %d instructions (endless loop?)"):format(g.limit)
    elseif aap_os().now() > g.deadline then
      g.spent = ("the policy ran too long: over its time limit of %s"):format(duration.format(g.seconds))
    end
  end
  if g.spent then real_error(g.spent, 0) end
end

local function on_count() charge(STEP) end

local function too_much_memory()
  return ("the policy used too much memory: more than %d MB"):format(M.LIMITS.memory // 1048576)
end

-- After a pcall/xpcall inside the policy: a spent budget or a refused allocation is not
-- the policy's to catch.
local function rethrow(...)
  local g = active
  if g and not g.spent and aap_os().heap_hit() then g.spent = too_much_memory() end
  if g and g.spent then real_error(g.spent, 0) end
  return ...
end

local function safe_pcall(f, ...) return rethrow(real_pcall(f, ...)) end
-- The message handler runs before the stack unwinds: for an error the count hook raised, with
-- hooks still off. So a spent budget never reaches the policy's handler.
local function safe_xpcall(f, h, ...)
  if type_(h) ~= "function" then real_error("bad argument #2 to 'xpcall' (function expected)", 2) end
  local function handler(e)
    if active and active.spent then return e end
    return h(e)
  end
  return rethrow(real_xpcall(f, handler, ...))
end

-- Index of the `]` closing the set that opens at i (Lua's classEnd), or #p when it does not close.
local function set_end(p, i)
  local n = #p
  i = i + 1
  if sbyte(p, i) == 94 then i = i + 1 end -- ^
  repeat
    if i > n then return n end
    if sbyte(p, i) == 37 then i = i + 1 end -- %x
    i = i + 1
  until i > n or sbyte(p, i) == 93 -- ]
  return math.min(i, n)
end

--- An upper bound on the steps Lua's matcher may take for pattern `p` on `n` bytes: every
-- `*`, `+`, `-`, `%b` and back-reference may try each of n+1 lengths, every `?` two, and an
-- unanchored pattern every start position.
-- @tparam string p the pattern
-- @tparam integer n the subject's length
-- @tparam ?boolean unanchored true for gmatch, where `^` is no anchor
-- @treturn number
function M.pattern_cost(p, n, unanchored)
  local i, len, wide, opt = 1, #p, 0, 0
  local anchored = not unanchored and sbyte(p, 1) == 94
  if anchored then i = 2 end
  while i <= len do
    local c, last = sbyte(p, i), nil
    if c == 37 then -- %
      local d = sbyte(p, i + 1)
      if d == 98 then wide, i = wide + 1, i + 4 -- %bxy
      elseif d == 102 then i = set_end(p, i + 2) + 1 -- %f[set]
      elseif d and d >= 48 and d <= 57 then wide, i = wide + 1, i + 2 -- %1
      else last = i + 1 end
    elseif c == 91 then last = set_end(p, i) -- [set]
    elseif c == 40 or c == 41 then i = i + 1 -- ( )
    else last = i end
    if last then
      local q = sbyte(p, last + 1)
      if q == 42 or q == 43 or q == 45 then wide, i = wide + 1, last + 2 -- * + -
      elseif q == 63 then opt, i = opt + 1, last + 2 -- ?
      else i = last + 1 end
    end
  end
  return (n + 1.0) ^ (wide + (anchored and 0 or 1)) * 2.0 ^ opt * math.max(len, 1)
end

-- Pattern functions that refuse a match whose worst case exceeds LIMITS.pattern, and charge
-- the worst case to the instruction budget (a match is one C call: no hook runs inside it).
local function check_pattern(fname, s, p, unanchored)
  if (type_(s) ~= "string" and type_(s) ~= "number") or (type_(p) ~= "string" and type_(p) ~= "number") then
    return -- the real function raises its own error
  end
  local cost = M.pattern_cost(tostring(p), #tostring(s), unanchored)
  if cost > M.LIMITS.pattern then
    real_error(("string.%s: pattern too complex for a subject of %d bytes (the policy sandbox allows at most %d "
      .. "steps of backtracking; use fewer repetitions or a shorter subject)"):format(fname, #tostring(s),
      M.LIMITS.pattern), 3)
  end
  charge(math.ceil(cost))
end

local SANDBOX_STRING = {}
for k, v in pairs(string) do
  if k ~= "dump" then SANDBOX_STRING[k] = v end
end
function SANDBOX_STRING.find(s, p, init, plain)
  check_pattern("find", s, p)
  return sfind(s, p, init, plain)
end
function SANDBOX_STRING.match(s, p, init)
  check_pattern("match", s, p)
  return smatch(s, p, init)
end
function SANDBOX_STRING.gmatch(s, p, init)
  check_pattern("gmatch", s, p, true)
  return sgmatch(s, p, init)
end
function SANDBOX_STRING.gsub(s, p, repl, n)
  check_pattern("gsub", s, p)
  return sgsub(s, p, repl, n)
end

-- setmetatable without __gc: a finalizer runs whenever the collector pleases, with hooks
-- off, so no budget could stop it.
local function safe_setmetatable(t, mt)
  if type_(mt) == "table" and rawget_(mt, "__gc") ~= nil then
    real_error("setmetatable: __gc is not available to policies (a finalizer cannot be time-limited)", 2)
  end
  return real_setmetatable(t, mt)
end

--- Environment variables a policy may read (`os.getenv`); anything else reads as nil, so that
-- the credentials aap runs with (AAP_PASSWORD, AAP_TOKEN, AAP_CLIENT_SECRET, ...) stay out.
M.ENV_READABLE = { HOME = true, USER = true, LOGNAME = true, HOSTNAME = true, LANG = true, TZ = true }

local function safe_getenv(name)
  if type_(name) == "string" and M.ENV_READABLE[name] then return os.getenv(name) end
  return nil
end

local SAFE_GLOBALS = {
  "assert", "error", "ipairs", "next", "pairs", "select", "tonumber", "tostring",
  "type", "rawequal", "rawget", "rawlen",
}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

--- A fresh sandbox environment for a policy file (see `aap.policy` for what it holds).
-- @tparam string origin the file name, for messages about unknown globals
-- @treturn table
function M.env(origin)
  local env = {}
  for _, name in ipairs(SAFE_GLOBALS) do env[name] = _G[name] end
  env.pcall, env.xpcall, env.setmetatable = safe_pcall, safe_xpcall, safe_setmetatable
  env.string = copy(SANDBOX_STRING)
  env.table = copy(table)
  env.math = copy(math)
  env.utf8 = copy(utf8)
  env.os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime, getenv = safe_getenv }
  env.print = function(...)
    local parts = {}
    for i = 1, select_("#", ...) do parts[i] = tostring((select_(i, ...))) end
    io.stderr:write(origin, ": ", table.concat(parts, "\t"), "\n")
  end
  env._G = env
  return real_setmetatable(env, {
    __index = function(_, k)
      error(("unknown global %q (policies run in a sandbox; see `aap.policy` for what is available)")
        :format(tostring(k)), 2)
    end,
    __newindex = function(_, k)
      error(("cannot set global %q (policies run in a sandbox; use local variables)"):format(tostring(k)), 2)
    end,
  })
end

--- A value from policy code as text, without running its metamethods (a `__tostring` could
-- loop outside every limit), and at most 500 bytes long.
-- @param v
-- @treturn string
function M.describe(v)
  local t = type_(v)
  if t == "string" then return #v > 500 and v:sub(1, 500) .. "..." or v end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  return "(a " .. t .. ")"
end

--- Runs policy code under the limits (`LIMITS`): a fresh coroutine with a count hook, the Lua
-- heap capped by the allocator, and the string methods of every string (`("").x`) pointing
-- at the sandbox's string table while it runs. Hooks call it; `load` too.
-- @tparam function fn policy code
-- @tparam number seconds wall-clock limit
-- @param ... arguments
-- @treturn boolean true, and fn's results; or false and a message
function M.evaluate(fn, seconds, ...)
  if type(fn) ~= "function" or type(seconds) ~= "number" then error("policy.evaluate(fn, seconds, ...)", 2) end
  if active then return false, "policy code cannot run while policy code runs" end
  local os_ = aap_os()
  local co = coroutine.create(fn)
  local g = { used = 0, limit = M.LIMITS.instructions, seconds = seconds, deadline = os_.now() + seconds }
  debug.sethook(co, on_count, "", STEP)
  local smeta = getmetatable("")
  local index = smeta.__index
  active, smeta.__index = g, SANDBOX_STRING
  -- whatever happens, the string methods and `active` are restored before returning
  local called, res = real_pcall(function(...) return table.pack(os_.resume(co, M.LIMITS.memory, ...)) end, ...)
  active, smeta.__index = nil, index
  if not called then return false, M.describe(res) end
  if res[1] then
    if coroutine.status(co) ~= "dead" then return false, "the policy yielded" end
    return table.unpack(res, 1, res.n)
  end
  if g.spent then return false, g.spent end
  if res[3] then return false, too_much_memory() end
  return false, M.describe(res[2])
end

--- Reads a policy file and runs it in a fresh sandbox (`env`) under the limits, with
-- `LIMITS.load_seconds`.
-- @tparam string path the file
-- @treturn[1] boolean true
-- @treturn[1] any what the file returned
-- @treturn[1] string the file's text
-- @treturn[2] boolean false
-- @treturn[2] string a message: the file cannot be read, is too large, does not compile, or
--   failed or reached a limit while it ran (prefixed with the path when it does not name it)
-- @usage local ok, res, source = sandbox.run_file("examples/policies/yearly-recreate.lua")
function M.run_file(path)
  local f, oerr = io.open(path, "rb")
  if not f then return false, "cannot read policy " .. tostring(oerr) end
  local source = f:read(M.LIMITS.source + 1)
  f:close()
  source = source or ""
  if #source > M.LIMITS.source then
    return false, ("%s: a policy file must be at most %d bytes"):format(path, M.LIMITS.source)
  end
  local chunk, lerr = load(source, "@" .. path, "t", M.env(path))
  if not chunk then return false, tostring(lerr) end
  local ok, res = M.evaluate(chunk, M.LIMITS.load_seconds)
  if not ok then
    local msg = res
    if not msg:find(path, 1, true) then msg = path .. ": " .. msg end
    return false, msg
  end
  return true, res, source
end

return M
