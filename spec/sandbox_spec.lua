-- aap.sandbox: the environment policy files run in and the limits of policy code, through
-- aap.policy.load (how files reach it) and directly; and the aap.os primitives it stands on.
local sandbox = require("aap.sandbox")
local policy = require("aap.policy")
local helper = require("helper")

local DAY = 86400

local function write(dir, name, text) return helper.writefile(dir .. "/" .. name, text) end

describe("aap.sandbox: a policy file's environment", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

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

  it("runs a file: true, what it returned and its text; or false and a message naming the file", function()
    local text = "return 1 + 1\n"
    assert.same({ true, 2, text }, { sandbox.run_file(write(dir, "two.lua", text)) })
    local ok, msg = sandbox.run_file(write(dir, "boom.lua", "error({})"))
    assert.is_false(ok)
    assert.equal(dir .. "/boom.lua: (a table)", msg)
  end)

  it("stops an endless loop", function()
    local _, err = policy.load(write(dir, "loop.lua", "while true do end"))
    assert.truthy(err.message:find("ran too long", 1, true), err.message)
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

describe("aap.sandbox limits (issue #11)", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

  local function load_err(text)
    local p, err = policy.load(write(dir, "p.lua", text))
    assert.is_nil(p)
    return err.message
  end

  -- A hook as the engine runs it: under sandbox.evaluate, with the policy's hook_timeout.
  local function run_hook(body)
    local p = assert(policy.load(write(dir, "h.lua", "return { max_age = '1d', before_rotate = function(ctx)\n"
      .. body .. "\nend }")))
    return sandbox.evaluate(p.before_rotate, p.hook_timeout, {})
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
    local saved = sandbox.LIMITS.load_seconds
    sandbox.LIMITS.load_seconds = 0
    local ok, msg = pcall(load_err, "while true do pcall(function() while true do end end) end")
    sandbox.LIMITS.load_seconds = saved
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
    assert.is_true(sandbox.pattern_cost(("a*"):rep(40) .. "b", 40) > sandbox.LIMITS.pattern)
    assert.is_true(sandbox.pattern_cost("^(%d+)(%a)$", 100) < 1e5)
    assert.is_true(sandbox.pattern_cost("[*+-?]", 1000) < 1e4) -- quantifiers inside a set are literal
    assert.is_true(sandbox.pattern_cost("%*%+%-%?", 1000) < 1e4)
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
