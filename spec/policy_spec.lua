local policy = require("aap.policy")
local helper = require("helper")

local DAY = 86400

local function write(dir, name, text)
  local path = dir .. "/" .. name
  helper.writefile(path, text)
  return path
end

describe("aap.policy validate", function()
  it("normalizes durations and fills defaults", function()
    local p = assert(policy.validate({ max_age = "90d", renew_before = 3600 }))
    assert.equal(90 * DAY, p.max_age)
    assert.equal(3600, p.renew_before)
    assert.equal("recreate", p.strategy)
    assert.is_true(p.verify)
    assert.equal(0, p.grace)
    assert.is_false(p.wait_for_use)
    assert.equal(p, policy.get(p))
  end)

  it("does not change its input", function()
    local t = { max_age = "1d" }
    policy.validate(t)
    assert.same({ max_age = "1d" }, t)
  end)

  it("refuses unknown keys with a suggestion and the list of keys", function()
    local p, err = policy.validate({ max_agee = "90d" }, "x.lua")
    assert.is_nil(p)
    assert.equal("policy", err.code)
    assert.truthy(err.message:find('x.lua: unknown key "max_agee" (did you mean "max_age"?)', 1, true), err.message)
    assert.truthy(err.message:find("renew_before", 1, true))
    local _, err2 = policy.validate({ max_age = "1d", [1] = "x" })
    assert.truthy(err2.message:find("keys are names", 1, true))
    local _, err3 = policy.validate({ max_age = "1d", zzzzzzzz = 1 })
    assert.falsy(err3.message:find("did you mean", 1, true))
  end)

  it("refuses bad values naming the key", function()
    local cases = {
      { { max_age = "90x" }, "max_age: \"90x\" is not a duration" },
      { { max_age = "1d", strategy = "rotate" }, 'strategy: must be "recreate" or "refresh", not "rotate"' },
      { { max_age = "1d", verify = "yes" }, 'verify: must be true or false, not "yes"' },
      { { max_age = "1d", scope = "admin" }, "scope: must be" },
      { { max_age = "1d", grace = -1 }, "grace: -1 is not a duration" },
      { { max_age = "1d", on_rotated = "echo" }, "on_rotated: must be a function, not a string" },
      { { max_age = "1d", description = "a\nb" }, "description: must be one line" },
      { { max_age = "1d", description = ("x"):rep(201) }, "at most 200" },
      { { strategy = "recreate" }, "needs max_age or renew_before" },
      { { max_age = "1d", min_age = "2d" }, "min_age (2d) must be shorter than max_age (1d)" },
      { { max_age = "1d", max_wait = "1h" }, "max_wait only makes sense with wait_for_use" },
    }
    for _, c in ipairs(cases) do
      local p, err = policy.validate(c[1], "p.lua")
      assert.is_nil(p)
      assert.truthy(err.message:find(c[2], 1, true), err.message)
      assert.equal(err.message, tostring(err))
    end
    local _, err = policy.validate("nope", "p.lua")
    assert.truthy(err.message:find("must be a table, not a string", 1, true))
  end)
end)

describe("aap.policy load", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

  it("loads a file and points errors at its line", function()
    local ok = write(dir, "ok.lua", 'return { max_age = "90d", renew_before = "30d", grace = "1h" }\n')
    local p = assert(policy.load(ok))
    assert.equal(3600, p.grace)
    assert.equal(ok, p.origin)
    local bad = write(dir, "bad.lua", 'return {\n  max_age = "90d",\n  grace = "1y",\n}\n')
    local _, err = policy.load(bad)
    assert.truthy(err.message:find(bad .. ":3: grace: \"1y\" is not a duration", 1, true), err.message)
    local unk = write(dir, "unk.lua", 'return {\n  max_age = "90d",\n  ["renew"] = "1d",\n}\n')
    _, err = policy.load(unk)
    assert.truthy(err.message:find(unk .. ":3: unknown key \"renew\"", 1, true), err.message)
  end)

  it("reports syntax errors, missing files and non-table results", function()
    local _, err = policy.load(write(dir, "syn.lua", "return { max_age = }"))
    assert.truthy(err.message:find("syn.lua:1:", 1, true), err.message)
    _, err = policy.load(dir .. "/absent.lua")
    assert.truthy(err.message:find("absent.lua", 1, true), err.message)
    assert.equal("policy", err.code)
    _, err = policy.load(write(dir, "nil.lua", "local x = 1"))
    assert.truthy(err.message:find("must return a policy table (it returned nothing)", 1, true), err.message)
    _, err = policy.load(write(dir, "str.lua", "return 'x'"))
    assert.truthy(err.message:find("it returned a string", 1, true), err.message)
    _, err = policy.load(write(dir, "bin.lua", string.dump(function() return {} end)))
    assert.truthy(err.message:find("binary", 1, true), err.message)
  end)

  it("runs the file in a sandbox", function()
    local _, err = policy.load(write(dir, "io.lua", "io.open('/etc/passwd')\nreturn { max_age = '1d' }"))
    assert.truthy(err.message:find('io.lua:1: unknown global "io"', 1, true), err.message)
    _, err = policy.load(write(dir, "req.lua", "local x = require('os')\nreturn { max_age = '1d' }"))
    assert.truthy(err.message:find('unknown global "require"', 1, true), err.message)
    _, err = policy.load(write(dir, "glob.lua", "x = 1\nreturn { max_age = '1d' }"))
    assert.truthy(err.message:find('glob.lua:1: cannot set global "x"', 1, true), err.message)
    _, err = policy.load(write(dir, "exec.lua", "os.execute('true')\nreturn { max_age = '1d' }"))
    assert.truthy(err.message:find("exec.lua:1:", 1, true), err.message)
    _, err = policy.load(write(dir, "dump.lua", "string.dump(print)\nreturn { max_age = '1d' }"))
    assert.truthy(err.message:find("dump.lua:1:", 1, true), err.message)
    -- the safe set works, and the string metatable of the host is not reachable
    local p = assert(policy.load(write(dir, "safe.lua", [[
      local days = math.floor(tonumber("90.5"))
      local t = {}
      table.insert(t, string.format("%dd", days))
      assert(type(os.time()) == "number")
      return { max_age = t[1], description = ("x"):upper() }
    ]])))
    assert.equal(90 * DAY, p.max_age)
    assert.equal("X", p.description)
    _, err = policy.load(write(dir, "meta.lua", "getmetatable('').__index = nil\nreturn { max_age = '1d' }"))
    assert.truthy(err.message:find('unknown global "getmetatable"', 1, true), err.message)
    assert.equal("X", ("x"):upper())
  end)

  it("stops an endless loop", function()
    local _, err = policy.load(write(dir, "loop.lua", "while true do end"))
    assert.truthy(err.message:find("ran too long", 1, true), err.message)
  end)

  it("refuses a policy table with a metatable, and hostile values, without running their metamethods", function()
    local _, err = policy.load(write(dir, "pairs.lua",
      "return setmetatable({}, {__pairs = function() while true do end end})"))
    assert.truthy(err.message:find("must be a plain table", 1, true), err.message)
    local loop = "setmetatable({}, {__tostring = function() while true do end end})"
    _, err = policy.load(write(dir, "tostr.lua", "return { max_age = " .. loop .. " }"))
    assert.truthy(err.message:find("max_age: a table is not a duration", 1, true), err.message)
    _, err = policy.load(write(dir, "tostr2.lua", "return { max_age = '1d', verify = " .. loop .. " }"))
    assert.truthy(err.message:find("verify: must be true or false, not a table", 1, true), err.message)
    -- a key is not a pattern: a backtracking bomb as a key is only an unknown key
    _, err = policy.load(write(dir, "key.lua", "return { max_age = '1d', [string.rep('a*', 30) .. 'b'] = 1 }"))
    assert.truthy(err.message:find("unknown key", 1, true), err.message)
  end)

  it("keeps hook functions, which see only the sandbox", function()
    local p = assert(policy.load(write(dir, "hook.lua", [[
      return { max_age = "1d", before_rotate = function(ctx) return io end }
    ]])))
    assert.is_function(p.before_rotate)
    local ok, err = pcall(p.before_rotate, {})
    assert.is_false(ok)
    assert.truthy(tostring(err):find('unknown global "io"', 1, true))
  end)
end)

describe("aap.policy sandbox limits (issue #11)", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

  local function load_err(text)
    local p, err = policy.load(write(dir, "p.lua", text))
    assert.is_nil(p)
    return err.message
  end

  -- A hook as the engine runs it: under policy.evaluate, with the policy's hook_timeout.
  local function run_hook(body)
    local p = assert(policy.load(write(dir, "h.lua", "return { max_age = '1d', before_rotate = function(ctx)\n"
      .. body .. "\nend }")))
    return policy.evaluate(p.before_rotate, p.hook_timeout, {})
  end

  it("an endless loop inside pcall cannot escape the instruction budget", function()
    local msg = load_err("while true do pcall(function() while true do end end) end")
    assert.truthy(msg:find("ran too long", 1, true), msg)
    msg = load_err("while true do xpcall(function() while true do end end, function() while true do end end) end")
    assert.truthy(msg:find("ran too long", 1, true), msg)
    local ok, why = run_hook("while true do pcall(function() while true do end end) end")
    assert.is_false(ok)
    assert.truthy(why:find("ran too long", 1, true), why)
  end)

  it("stops policy code at its wall-clock deadline too", function()
    local saved = policy.LIMITS.load_seconds
    policy.LIMITS.load_seconds = 0
    local ok, msg = pcall(load_err, "while true do pcall(function() while true do end end) end")
    policy.LIMITS.load_seconds = saved
    assert.is_true(ok, msg)
    assert.truthy(msg:find("over its time limit of 0s", 1, true), msg)
  end)

  it("a hook that loops forever is stopped", function()
    local ok, why = run_hook("while true do end")
    assert.is_false(ok)
    assert.truthy(why:find("ran too long", 1, true), why)
  end)

  it("refuses pattern bombs, called as functions or as string methods", function()
    local msg = load_err([[string.find(string.rep("a", 40), string.rep("a*", 40) .. "b")]])
    assert.truthy(msg:find("pattern too complex", 1, true), msg)
    msg = load_err([[local s = ("a"):rep(40) return s:match(("a-"):rep(40) .. "b")]])
    assert.truthy(msg:find("pattern too complex", 1, true), msg)
    msg = load_err([[for _ in ("a"):rep(5000):gmatch("%b()" .. ("a*"):rep(3)) do end]])
    assert.truthy(msg:find("pattern too complex", 1, true), msg)
    -- ordinary patterns on ordinary strings work
    local p = assert(policy.load(write(dir, "ok.lua", [[
      local n, u = ("90d"):match("^(%d+)(%a)$")
      local words = {}
      for w in ("a b c"):gmatch("%S+") do words[#words + 1] = w end
      return { max_age = n .. u, description = (("x-y"):gsub("%-", " ")) .. #words }
    ]])))
    assert.equal("x y3", p.description)
    -- outside policy code, strings have their own methods back
    assert.equal(string.find, ("").find)
    assert.equal(string.dump, ("").dump)
  end)

  it("bounds the worst case of a pattern, not its typical case", function()
    assert.is_true(policy.pattern_cost(("a*"):rep(40) .. "b", 40) > policy.LIMITS.pattern)
    assert.is_true(policy.pattern_cost("^(%d+)(%a)$", 100) < 1e5)
    assert.is_true(policy.pattern_cost("[*+-?]", 1000) < 1e4) -- quantifiers inside a set are literal
    assert.is_true(policy.pattern_cost("%*%+%-%?", 1000) < 1e4)
  end)

  it("refuses __gc: a finalizer would run outside every limit", function()
    local msg = load_err("setmetatable({}, {__gc = function() while true do end end})\nreturn { max_age = '1d' }")
    assert.truthy(msg:find("__gc is not available", 1, true), msg)
    collectgarbage()
    collectgarbage()
    local p = assert(policy.load(write(dir, "mt.lua", [[
      local t = setmetatable({}, { __index = function() return "1d" end })
      return { max_age = t.anything }
    ]])))
    assert.equal(86400, p.max_age)
  end)

  it("caps the memory policy code may use, even in one call and under pcall", function()
    for _, code in ipairs({
      "local s = string.rep('x', 1e9)",
      "local s = ('x'):rep(1024) while true do s = s .. s end",
      "local t = {} for i = 1, 1e8 do t[i] = i end",
      "local t = {} while true do pcall(function() t[#t + 1] = ('x'):rep(1e6) .. #t end) end",
      "local t = {} for i = 1, 64 do t[i] = ('x'):rep(1e6) end local s = table.concat(t)",
    }) do
      local msg = load_err(code)
      assert.truthy(msg:find("too much memory", 1, true) or msg:find("not enough memory", 1, true), code .. ": " .. msg)
    end
    -- the cap is lifted afterwards
    assert.equal(50 * 1024 * 1024, #("x"):rep(50 * 1024 * 1024))
  end)

  it("gives no environment secrets and no string.dump", function()
    assert.is_string(os.getenv("PATH"))
    local p = assert(policy.load(write(dir, "env.lua", [[
      return { max_age = "1d", description = table.concat({ tostring(os.getenv("PATH")),
        tostring(os.getenv("AAP_PASSWORD")), tostring(string.dump), tostring(("").dump),
        tostring(rawget(_G, "load")), tostring(rawget(_G, "getmetatable")) }, " ") }
    ]])))
    assert.equal("nil nil nil nil nil nil", p.description)
    assert.equal(os.getenv("HOME"), select(3, run_hook("return true, os.getenv('HOME')")))
  end)

  it("turns error values into text without running their metamethods", function()
    local ok, why = run_hook("error(setmetatable({}, { __tostring = function() while true do end end }))")
    assert.is_false(ok)
    assert.equal("(a table)", why)
  end)
end)

describe("aap.policy hook_timeout", function()
  it("defaults to a minute, and may be set up to the maximum", function()
    assert.equal(60, assert(policy.validate({ max_age = "1d" })).hook_timeout)
    assert.equal(5, assert(policy.validate({ max_age = "1d", hook_timeout = "5s" })).hook_timeout)
    local _, err = policy.validate({ max_age = "1d", hook_timeout = "1h" })
    assert.truthy(err.message:find("hook_timeout: must be 1s to 10m", 1, true), err.message)
    _, err = policy.validate({ max_age = "1d", hook_timeout = 0 })
    assert.truthy(err.message:find("hook_timeout: must be 1s", 1, true), err.message)
  end)
end)

describe("aap.os.spawn and aap.os.resume (the sandbox's primitives)", function()
  local osu = require("aap").os
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

  it("runs argv without a shell, with exactly the environment given", function()
    local out = dir .. "/out"
    assert.equal(0, osu.spawn({ "sh", "-c", 'env > "$1"; echo "$2" >> "$1"', "sh", out, "$HOME;x" },
      { "PATH=" .. os.getenv("PATH"), "ONLY=this" }))
    local text = helper.readfile(out)
    assert.truthy(text:find("ONLY=this\n", 1, true), text)
    assert.truthy(text:find("$HOME;x\n", 1, true), text)
    assert.falsy(text:find("HOME=", 1, true), text)
    -- a shell builtin is no program
    local st, msg, code = osu.spawn({ "exit" }, { "PATH=" .. os.getenv("PATH") })
    assert.is_nil(st)
    assert.equal("spawn", code)
    assert.truthy(msg:find("cannot run exit", 1, true), msg)
  end)

  it("passes the program no descriptor but its stdin, stdout and stderr", function()
    -- what aap holds open while a hook runs: a file (an env file's lock, a state file), and
    -- the socket of a kept-alive connection to the gateway
    local held = dir .. "/held-open-by-aap"
    local f = assert(io.open(held, "w"))
    local sock = require("socket").bind("127.0.0.1", 0)
    local out = dir .. "/fds"
    -- sh lists its own descriptors (ls runs as its child, with its output redirected)
    assert.equal(0, osu.spawn({ "sh", "-c", 'ls -l /proc/$$/fd > "$1"', "sh", out }, { "PATH=" .. os.getenv("PATH") }))
    f:close()
    sock:close()
    local text = assert(helper.readfile(out))
    assert.is_nil(text:find("held-open-by-aap", 1, true), text)
    assert.is_nil(text:find("socket:", 1, true), text)
    for fd in text:gmatch(" (%d+) %->") do
      assert.is_true(tonumber(fd) <= 2 or tonumber(fd) >= 10, "descriptor " .. fd .. " reached the program:\n" .. text)
    end
  end)

  it("feeds stdin, returns the exit status, and survives a child that does not read", function()
    local out = dir .. "/in"
    assert.equal(3, osu.spawn({ "sh", "-c", 'cat > "$1"; exit 3', "sh", out }, { "PATH=" .. os.getenv("PATH") },
      "secret\n"))
    assert.equal("secret\n", helper.readfile(out))
    assert.equal(0, osu.spawn({ "true" }, { "PATH=" .. os.getenv("PATH") }, ("x"):rep(4 * 1024 * 1024)))
  end)

  it("kills the process group when the time is up", function()
    local pidfile = dir .. "/pid"
    local st, msg, code = osu.spawn({ "sh", "-c", 'sleep 30 & echo $! > "$1"; wait', "sh", pidfile },
      { "PATH=" .. os.getenv("PATH") }, nil, 1)
    assert.is_nil(st)
    assert.equal("timeout", code)
    assert.truthy(msg:find("was killed", 1, true), msg)
    local pid = assert(tonumber(helper.readfile(pidfile)))
    -- the grandchild (sleep) was killed too: gone, a zombie waiting for init to reap it, or
    -- with SIGKILL (bit 9) pending, not yet scheduled to die
    local status = helper.readfile("/proc/" .. pid .. "/status")
    local function killed()
      if not status or status:match("\nState:%s*Z") then return true end
      for mask in status:gmatch("\n%a*Pnd:%s*(%x+)") do
        if math.tointeger(tonumber(mask, 16)) & 0x100 ~= 0 then return true end
      end
      return false
    end
    assert.is_true(killed(), status)
  end)

  it("resume caps the heap while the coroutine runs, and only then", function()
    local co = coroutine.create(function() return ("x"):rep(64 * 1024 * 1024) end)
    local ok, err, hit = osu.resume(co, 16 * 1024 * 1024)
    assert.is_false(ok)
    assert.equal("not enough memory", err)
    assert.is_true(hit)
    co = coroutine.create(function(n) return n + 1, osu.heap_hit() end)
    assert.same({ true, 42, false }, { osu.resume(co, 1024 * 1024, 41) })
    assert.equal(64 * 1024 * 1024, #("x"):rep(64 * 1024 * 1024))
  end)
end)

describe("aap.policy decide", function()
  local now = 1800000000
  local p = assert(policy.validate({ max_age = "90d", renew_before = "30d", min_age = "1d" }))
  local function tok(age_days, left_days)
    return { created = now - age_days * DAY, expires = now + left_days * DAY }
  end

  it("keeps a token that is not due", function()
    local d = policy.decide(p, tok(10, 355), now)
    assert.equal("keep", d.action)
    assert.equal("not_due", d.code)
    assert.equal("not due: age 10d < max_age 90d; expires in 355d > renew_before 30d", d.reason)
    assert.equal(10 * DAY, d.age)
  end)

  it("keeps a token younger than min_age, even inside the renew window", function()
    local d = policy.decide(p, { created = now - 3600, expires = now + 2 * DAY }, now)
    assert.equal("keep", d.action)
    assert.equal("too_young", d.code)
    assert.equal("too young: age 1h < min_age 1d", d.reason)
  end)

  it("rotates inside the renew window", function()
    local d = policy.decide(p, tok(20, 30), now)
    assert.equal("rotate", d.action)
    assert.equal("renew_window", d.code)
    assert.truthy(d.reason:find("expires in 30d <= renew_before 30d", 1, true))
    assert.equal("keep", policy.decide(p, { created = now - 20 * DAY, expires = now + 30 * DAY + 1 }, now).action)
  end)

  it("rotates at max age", function()
    local d = policy.decide(p, tok(90, 300), now)
    assert.equal("max_age", d.code)
    assert.equal("max age reached: age 90d >= max_age 90d", d.reason)
    assert.equal("not_due", policy.decide(p, { created = now - 90 * DAY + 1, expires = now + 300 * DAY }, now).code)
  end)

  it("rotates an expired token whatever its age", function()
    local d = policy.decide(p, { created = now - 60, expires = now - 3600 }, now)
    assert.equal("rotate", d.action)
    assert.equal("expired", d.code)
    assert.equal("expired 1h ago", d.reason)
    assert.equal("expired", policy.decide(p, { created = now - 60, expires = now }, now).code)
  end)

  it("rotates a token that is gone", function()
    assert.equal("missing", policy.decide(p, nil, now).code)
    assert.equal("missing", policy.decide(p, { missing = true }, now).code)
  end)

  it("works with one trigger only", function()
    local only_window = assert(policy.validate({ renew_before = "7d" }))
    assert.equal("not due: expires in 8d > renew_before 7d", policy.decide(only_window, tok(1000, 8), now).reason)
    local only_age = assert(policy.validate({ max_age = "7d" }))
    assert.equal("not due: age 6d < max_age 7d", policy.decide(only_age, tok(6, 1), now).reason)
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() policy.decide(p, tok(1, 1)) end)
  end)
end)
