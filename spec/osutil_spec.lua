-- aap.os: atomic writes, modes, locks, signal flags, isatty.
local helper = require("helper")
local aap = require("aap")
local osu = aap.os

local shquote, readfile, writefile = helper.shquote, helper.readfile, helper.writefile

local function abs(dir) return dir:sub(1, 1) == "/" and dir or (helper.ROOT .. "/" .. dir) end
local CPATH = abs(os.getenv("AAP_CPATH") or "build") .. "/?.so"
local IS_ROOT = io.popen("id -u"):read("l") == "0"

-- A shell command running Lua 5.4 code with aap.so on its cpath.
local function lua_cmd(code)
  return ("lua5.4 -e %s"):format(shquote(("package.cpath = %q .. ';' .. package.cpath\n"):format(CPATH) .. code))
end

-- Run a command and return its stdout and whether it exited 0.
local function run(cmd)
  local p = io.popen(cmd, "r")
  local out = p:read("a")
  local ok, how, code = p:close()
  return out, ok, how, code
end

-- Run Lua code without the privilege to ignore file permissions: as root, the capabilities
-- that bypass them are dropped (otherwise a read-only directory is not read-only to us).
local function run_unprivileged(code)
  local prefix = IS_ROOT and "setpriv --bounding-set=-dac_override,-dac_read_search,-fowner -- " or ""
  return run(prefix .. lua_cmd(code))
end

local function listdir(dir)
  local names = {}
  for name in io.popen("ls -A " .. shquote(dir)):lines() do names[#names + 1] = name end
  table.sort(names)
  return names
end

local function mkfifo(path)
  assert(os.execute("mkfifo -m 600 " .. shquote(path)))
end

describe("aap.os.write_atomic", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(function() helper.cleanup() end)

  it("creates a new file with mode 0600 and exactly the data, NUL bytes included", function()
    local path = dir .. "/new.env"
    local data = "A=1\0B=2\n\255"
    assert.is_true(osu.write_atomic(path, data))
    assert.equal(data, readfile(path))
    assert.equal("600", helper.mode(path))
    assert.equal(384, osu.mode(path))
    assert.same({ "new.env" }, listdir(dir))
  end)

  it("uses a given mode exactly, whatever the umask", function()
    local path = dir .. "/m"
    local out, ok = run("umask 077; " .. lua_cmd(("print(require('aap').os.write_atomic(%q, 'x', 420))"):format(path)))
    assert.is_true(ok, out)
    assert.equal("true\n", out)
    assert.equal("644", helper.mode(path))
  end)

  it("tightens an existing 0640 file to 0600", function()
    local path = dir .. "/f"
    writefile(path, "old", tonumber("640", 8))
    assert.is_true(osu.write_atomic(path, "new"))
    assert.equal("new", readfile(path))
    assert.equal("600", helper.mode(path))
  end)

  it("keeps an existing mode that is stricter (0400), replacing the content by rename", function()
    local path = dir .. "/f"
    writefile(path, "old", tonumber("400", 8))
    assert.is_true(osu.write_atomic(path, "new"))
    assert.equal("new", readfile(path))
    assert.equal("400", helper.mode(path))
  end)

  it("never grants more than the existing file allowed (0604 asked 0640 -> 0600)", function()
    local path = dir .. "/f"
    writefile(path, "old", tonumber("604", 8))
    assert.is_true(osu.write_atomic(path, "new", tonumber("640", 8)))
    assert.equal("600", helper.mode(path))
  end)

  it("refuses a symlink: neither the link nor the file it points to changes", function()
    local target, link = dir .. "/target", dir .. "/link"
    writefile(target, "old", tonumber("644", 8))
    assert(os.execute(("ln -s target %s"):format(shquote(link))))
    local ok, err = osu.write_atomic(link, "new")
    assert.is_nil(ok)
    assert.equal("cannot replace " .. link .. ": it is a symbolic link", err)
    assert.equal("old", readfile(target))
    assert.equal("644", helper.mode(target))
    assert.equal("target", io.popen("readlink " .. shquote(link)):read("l"))
    assert.same({ "link", "target" }, listdir(dir))
  end)

  it("refuses a FIFO and a device node, leaving them as they were", function()
    mkfifo(dir .. "/fifo")
    local ok, err = osu.write_atomic(dir .. "/fifo", "new")
    assert.is_nil(ok)
    assert.equal("cannot replace " .. dir .. "/fifo: not a regular file", err)
    assert.equal("fifo", osu.stat(dir .. "/fifo").type)
    if IS_ROOT then
      assert(os.execute("mknod " .. shquote(dir .. "/null") .. " c 1 3"))
      ok, err = osu.write_atomic(dir .. "/null", "new")
      assert.is_nil(ok)
      assert.truthy(err:find("not a regular file", 1, true), err)
      assert.equal("char", osu.stat(dir .. "/null").type)
    end
  end)

  it("removes the temporary files a killed writer left, and only those", function()
    local path = dir .. "/.env" -- its temporary files are "..env.tmp-<16 hex>"
    local left = dir .. "/..env.tmp-0123456789abcdef"
    writefile(left, "AAP_TOKEN=LEFT-BEHIND\n", tonumber("600", 8))
    local keep = { "..env.tmp-0123456789ABCDEF", "..env.tmp-0123", "..env.tmp-0123456789abcdef0",
                   ".other.tmp-0123456789abcdef", ".env.tmp-0123456789abcdef" }
    for _, name in ipairs(keep) do writefile(dir .. "/" .. name, "x") end
    -- a live writer's file: it holds an flock on it until its rename
    local live = dir .. "/..env.tmp-fedcba9876543210"
    local lk = assert(osu.lock(live))
    -- another user's file of the same pattern is not ours to remove
    local theirs = dir .. "/..env.tmp-00000000000000ff"
    writefile(theirs, "x")
    if IS_ROOT then assert(os.execute("chown 65534 " .. shquote(theirs))) end
    assert.is_true(osu.write_atomic(path, "AAP_TOKEN=NEW\n"))
    lk:unlock()
    assert.is_nil(readfile(left))
    for _, name in ipairs(keep) do assert.equal("x", readfile(dir .. "/" .. name), name) end
    assert.is_string(readfile(live))
    assert.equal(IS_ROOT, readfile(theirs) ~= nil)
    assert.equal("AAP_TOKEN=NEW\n", readfile(path))
  end)

  it("keeps the owner of an existing file when it may (as root)", function()
    if not IS_ROOT then return pending("needs root to chown") end
    local path = dir .. "/owned"
    writefile(path, "old", tonumber("640", 8))
    assert(os.execute("chown 65534:65534 " .. shquote(path)))
    assert.is_true(osu.write_atomic(path, "new"))
    assert.equal("65534:65534", io.popen("stat -c %u:%g " .. shquote(path)):read("l"))
    assert.equal("600", helper.mode(path))
  end)

  it("round-trips random binary data of many sizes (seeded)", function()
    local seed = 12345
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    local path = dir .. "/blob"
    for _, size in ipairs({ 0, 1, 4095, 4096, 4097, 65536, 65537, 1048576 + 3 }) do
      local bytes = {}
      for i = 1, size % 4099 do bytes[i] = string.char(rand(256)) end
      local chunk = table.concat(bytes)
      local data = chunk:rep(size // math.max(#chunk, 1) + 1):sub(1, size)
      assert.is_true(osu.write_atomic(path, data))
      assert.equal(size, #readfile(path))
      assert.equal(data, readfile(path))
    end
    assert.same({ "blob" }, listdir(dir))
  end)

  it("writes a relative path in the current directory", function()
    local out, ok = run(("cd %s && %s"):format(shquote(dir),
      lua_cmd("print(require('aap').os.write_atomic('rel.env', 'R=1\\n'))")))
    assert.is_true(ok)
    assert.equal("true\n", out)
    assert.equal("R=1\n", readfile(dir .. "/rel.env"))
  end)

  it("fails in a read-only directory, leaving the file as it was and no temporary file", function()
    local sub = dir .. "/ro"
    assert(os.execute("mkdir " .. shquote(sub)))
    local path = sub .. "/.env"
    writefile(path, "KEEP=1\n", tonumber("600", 8))
    assert(os.execute("chmod 555 " .. shquote(sub)))
    local out, ok = run_unprivileged(([[
      local okw, err = require("aap").os.write_atomic(%q, "SECRET-DATA-123")
      io.write(tostring(okw), "\n", tostring(err), "\n")]]):format(path))
    assert(os.execute("chmod 755 " .. shquote(sub)))
    assert.is_true(ok, out)
    local res, err = out:match("^(.-)\n(.-)\n$")
    assert.equal("nil", res)
    assert.truthy(err:find(path, 1, true), err)
    assert.truthy(err:find("Permission denied", 1, true), err)
    assert.falsy(err:find("SECRET", 1, true))
    assert.equal("KEEP=1\n", readfile(path))
    assert.same({ ".env" }, listdir(sub))
  end)

  it("removes the temporary file when writing fails half-way (file size limit)", function()
    local path = dir .. "/big"
    writefile(path, "ORIGINAL\n", tonumber("600", 8))
    -- ulimit -f 1: writes past 1024 bytes fail with EFBIG (SIGXFSZ ignored).
    local out, ok = run(("trap '' XFSZ; ulimit -f 1; %s"):format(lua_cmd(([[
      local okw, err = require("aap").os.write_atomic(%q, string.rep("S", 100000))
      io.write(tostring(okw), "\n", tostring(err), "\n")]]):format(path))))
    assert.is_true(ok, out)
    local res, err = out:match("^(.-)\n(.-)\n$")
    assert.equal("nil", res)
    assert.truthy(err:find("cannot write " .. path, 1, true), err)
    assert.truthy(err:find("too large", 1, true), err)
    assert.falsy(err:find("SSS", 1, true))
    assert.equal("ORIGINAL\n", readfile(path))
    assert.same({ "big" }, listdir(dir))
  end)

  it("fails on a missing directory and on a directory path, naming the path", function()
    local ok, err = osu.write_atomic(dir .. "/missing/x.env", "data")
    assert.is_nil(ok)
    assert.truthy(err:find(dir .. "/missing/x.env", 1, true), err)
    assert.truthy(err:find("No such file or directory", 1, true), err)
    ok, err = osu.write_atomic(dir, "data")
    assert.is_nil(ok)
    assert.truthy(err:find("Is a directory", 1, true), err)
    ok, err = osu.write_atomic(dir .. "/f/", "data")
    assert.is_nil(ok)
    assert.truthy(err:find("Is a directory", 1, true), err)
    assert.same({}, listdir(dir))
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() osu.write_atomic(nil, "x") end)
    assert.has_error(function() osu.write_atomic(dir .. "/a", {}) end)
    assert.has_error(function() osu.write_atomic("", "x") end)
    assert.has_error(function() osu.write_atomic(dir .. "/a\0b", "x") end)
    assert.has_error(function() osu.write_atomic(dir .. "/a", "x", -1) end)
    assert.has_error(function() osu.write_atomic(dir .. "/a", "x", 4096) end)
    assert.has_error(function() osu.write_atomic(dir .. "/a", "x", 1.5) end)
    assert.same({}, listdir(dir))
  end)
end)

describe("aap.os.stat and aap.os.open", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(function() helper.cleanup() end)

  it("stat describes a file without following a symlink (unless asked), and gives errno", function()
    writefile(dir .. "/f", "abc", tonumber("640", 8))
    assert(os.execute(("ln -s f %s"):format(shquote(dir .. "/l"))))
    local st = assert(osu.stat(dir .. "/f"))
    assert.same({ type = "file", mode = tonumber("640", 8), uid = osu.geteuid(), size = 3, nlink = 1,
                  gid = st.gid }, st)
    assert.equal("link", osu.stat(dir .. "/l").type)
    assert.equal("file", osu.stat(dir .. "/l", true).type)
    assert.equal("directory", osu.stat(dir).type)
    local none, msg, errno = osu.stat(dir .. "/missing")
    assert.is_nil(none)
    assert.equal(dir .. "/missing: No such file or directory", msg)
    assert.equal(2, errno)
  end)

  it("open reads a regular file, with its fstat", function()
    writefile(dir .. "/f", "A=1\0\n", tonumber("600", 8))
    local f, st = assert(osu.open(dir .. "/f"))
    assert.equal("A=1\0\n", f:read("a"))
    assert.is_true(f:close())
    assert.equal("file", st.type)
    assert.equal(osu.geteuid(), st.uid)
  end)

  it("open refuses a symlink, a directory, a FIFO and a device without blocking or opening them", function()
    writefile(dir .. "/f", "x")
    assert(os.execute(("ln -s f %s"):format(shquote(dir .. "/l"))))
    mkfifo(dir .. "/fifo")
    local cases = { l = "is a symbolic link", fifo = "not a regular file", [""] = "not a regular file" }
    if IS_ROOT then
      assert(os.execute("mknod " .. shquote(dir .. "/tty") .. " c 5 0"))
      cases.tty = "not a regular file"
    end
    for name, why in pairs(cases) do
      local path = name == "" and dir or (dir .. "/" .. name)
      local f, msg = osu.open(path)
      assert.is_nil(f, name)
      assert.equal(path .. ": " .. why, msg)
    end
  end)
end)

describe("aap.os.mode", function()
  after_each(function() helper.cleanup() end)

  it("returns the permission bits, or nil and a message naming the path", function()
    local dir = helper.tmpdir()
    writefile(dir .. "/f", "x", tonumber("4751", 8))
    assert.equal(tonumber("4751", 8), osu.mode(dir .. "/f"))
    local m, err = osu.mode(dir .. "/nope")
    assert.is_nil(m)
    assert.truthy(err:find(dir .. "/nope", 1, true))
    assert.has_error(function() osu.mode({}) end)
  end)
end)

describe("aap.os.lock", function()
  local dir, lockpath
  before_each(function()
    dir = helper.tmpdir()
    lockpath = dir .. "/rotate.lock"
  end)
  after_each(function() helper.cleanup() end)

  -- Whether another process (flock(1)) can take the lock right now.
  local function free_for_others()
    local _, ok = run(("flock -n %s true"):format(shquote(lockpath)))
    return ok == true
  end

  it("holds an exclusive lock on a 0600 file until unlock; unlock is idempotent", function()
    local lk = assert(osu.lock(lockpath))
    assert.equal("600", helper.mode(lockpath))
    assert.is_true(lk:held())
    assert.equal(lockpath, lk:path())
    assert.equal(("aap.Lock(%s, held)"):format(lockpath), tostring(lk))
    assert.is_false(free_for_others())
    lk:unlock()
    assert.is_false(lk:held())
    assert.is_true(free_for_others())
    lk:unlock()
    assert.equal(("aap.Lock(%s, released)"):format(lockpath), tostring(lk))
  end)

  it("returns nil and a message while another process holds it", function()
    local fifo = dir .. "/ready"
    mkfifo(fifo)
    -- The holder prints "held" once it has the lock and keeps it until its stdin closes.
    local holder = io.popen(lua_cmd(([[
      local lk = assert(require("aap").os.lock(%q))
      print("held"); io.stdout:flush()
      io.read("a")
      lk:unlock()]]):format(lockpath)) .. " >" .. shquote(fifo), "w")
    local ready = assert(io.open(fifo, "r"))
    assert.equal("held", ready:read("l"))
    local lk, err = osu.lock(lockpath)
    assert.is_nil(lk)
    assert.equal(lockpath .. " is locked by another process", err)
    assert.is_true(holder:close())
    ready:close()
    lk = assert(osu.lock(lockpath))
    lk:unlock()
  end)

  it("conflicts with a second lock in the same process, and is released by <close>", function()
    do
      local lk <close> = assert(osu.lock(lockpath))
      assert.is_nil((osu.lock(lockpath)))
      assert.truthy(lk:held())
    end
    assert.is_true(free_for_others())
  end)

  it("is released by the garbage collector", function()
    local function take()
      local lk = assert(osu.lock(lockpath))
      assert.is_true(lk:held())
      assert.is_false(free_for_others())
    end
    take()
    collectgarbage()
    collectgarbage()
    assert.is_true(free_for_others())
  end)

  it("refuses a FIFO, a device and a symlink without blocking or creating anything", function()
    mkfifo(dir .. "/fifo")
    assert(os.execute(("ln -s elsewhere %s"):format(shquote(dir .. "/link"))))
    local cases = { fifo = "not a regular file", link = "it is a symbolic link" }
    if IS_ROOT then
      assert(os.execute("mknod " .. shquote(dir .. "/tty") .. " c 5 0"))
      cases.tty = "not a regular file"
    end
    for name, why in pairs(cases) do
      local lk, err = osu.lock(dir .. "/" .. name)
      assert.is_nil(lk, name)
      assert.equal(("cannot open lock file %s/%s: %s"):format(dir, name, why), err)
    end
    assert.is_nil(osu.stat(dir .. "/elsewhere"))
  end)

  it("fails with a message when the lock file cannot be created", function()
    local lk, err = osu.lock(dir .. "/missing/x.lock")
    assert.is_nil(lk)
    assert.truthy(err:find(dir .. "/missing/x.lock", 1, true))
    assert.has_error(function() osu.lock() end)
    assert.has_error(function() osu.lock(lockpath .. "\0x") end)
  end)

  it("methods raise on something that is not a lock", function()
    local lk = assert(osu.lock(lockpath))
    local unlock = lk.unlock
    assert.has_error(function() unlock({}) end)
    assert.has_error(function() unlock(io.stdout) end)
    lk:unlock()
  end)
end)

describe("aap.os signals", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(function() helper.cleanup() end)

  it("a process that catches SIGTERM records it and exits 0; the first signal wins", function()
    local out, ok = run(lua_cmd([[
      local o = require("aap").os
      assert(o.caught() == nil)
      assert(o.catch_signals())
      -- io.popen, not os.execute: system() ignores SIGINT while it waits.
      io.popen("kill -TERM $PPID"):close()
      io.popen("kill -INT $PPID"):close()
      print(o.caught())
      os.exit(o.caught() == 15 and 0 or 1)]]))
    assert.is_true(ok, out)
    assert.equal("15\n", out)
  end)

  it("catches SIGINT too", function()
    local out, ok = run(lua_cmd([[
      local o = require("aap").os
      o.catch_signals()
      io.popen("kill -INT $PPID"):close()
      print(o.caught())]]))
    assert.is_true(ok)
    assert.equal("2\n", out)
  end)

  it("without catch_signals the same process dies of SIGTERM", function()
    local out, ok, how, code = run(lua_cmd([[
      io.popen("kill -TERM $PPID"):close()
      print("survived")]]) .. " 2>/dev/null")
    assert.is_not_true(ok)
    assert.equal("", out)
    -- popen runs the command through sh, which reports 128 + 15.
    assert.is_true((how == "signal" and code == 15) or (how == "exit" and code == 143))
  end)

  it("interrupts a blocking read with EINTR (no SA_RESTART)", function()
    local fifo = dir .. "/stdin"
    mkfifo(fifo)
    -- timeout: a watchdog so that a restarted read fails the test instead of hanging it.
    local child = io.popen("exec timeout -s KILL 60 " .. lua_cmd([[
      local o = require("aap").os
      o.catch_signals()
      print(o.getpid()); io.stdout:flush()
      local v, _, code = io.stdin:read("a")
      print(tostring(v), tostring(code), tostring(o.caught()))]]) .. " <" .. shquote(fifo), "r")
    local writer = assert(io.open(fifo, "w"))
    local pid = child:read("l")
    assert.truthy(pid and pid:match("^%d+$"))
    -- Wait until the child sleeps (in its read) before signalling it.
    local state
    repeat
      local f = io.open("/proc/" .. pid .. "/stat", "r")
      local stat = f and f:read("a") or ""
      if f then f:close() end
      state = stat:match("%) (%a)")
    until state == "S" or state == nil
    assert(os.execute("kill -TERM " .. pid))
    local line = child:read("l")
    writer:close()
    assert.is_true((child:close()))
    assert.equal("nil\t4\t15", line)
  end)
end)

describe("aap.os.isatty, getpid, now", function()
  it("isatty is false for a pipe and a closed descriptor, true on a terminal", function()
    local out = run(lua_cmd([[
      local o = require("aap").os
      print(o.isatty(1), o.isatty(io.stdout), o.isatty(987))]]) .. " | cat")
    assert.equal("false\tfalse\tfalse\n", out)
    local tty = run("script -qec " .. shquote(lua_cmd([[
      local o = require("aap").os
      io.write(tostring(o.isatty(1)), " ", tostring(o.isatty(io.stdout)), "\n")]])) .. " /dev/null")
    assert.equal("true true", (tty:gsub("\r", ""):match("(%a+ %a+)")))
  end)

  it("isatty raises on bad arguments", function()
    assert.has_error(function() osu.isatty("one") end)
    assert.has_error(function() osu.isatty(-1) end)
    local f = io.tmpfile()
    f:close()
    assert.has_error(function() osu.isatty(f) end)
  end)

  it("getpid is the process id", function()
    local out = run("echo $$; exec " .. lua_cmd("print(require('aap').os.getpid())"))
    local shell_pid, lua_pid = out:match("^(%d+)\n(%d+)\n$")
    assert.truthy(shell_pid)
    assert.equal(shell_pid, lua_pid)
    assert.equal("integer", math.type(osu.getpid()))
  end)

  it("now is the wall clock as a float", function()
    local before = os.time()
    local now = osu.now()
    local after = os.time()
    assert.equal("float", math.type(now))
    -- os.time() reads a coarse clock that may lag by a tick: allow one second either side.
    assert.is_true(before - 1 <= now and now < after + 1)
  end)
end)
