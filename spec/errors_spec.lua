-- aap.errors (issue #14): one error type (aap.Error, the C core's metatable) made by every
-- module, one table of codes (errors.CODES) from which the CLI's exit codes derive and which
-- holds every code the C core can produce, and aap.os returning nil, message, code.
local helper = require("helper")
local aap = require("aap")
local errors = require("aap.errors")

local readfile = helper.readfile

-- The exit code of every code as the CLI had it before the table moved here (cli.lua's
-- CODE_EXIT, and 2 for any other code): they must not change.
local EXIT_BEFORE = {
  usage = 1, io = 1, ["local"] = 1, policy = 1, interrupted = 1, insecure = 1, busy = 1, format = 1, unsafe = 1,
  auth = 3, forbidden = 3, expired = 3,
  timeout = 4, connect = 4, tls = 4,
  not_found = 2, ambiguous = 2, invalid = 2, conflict = 2, rate_limited = 2, server = 2, bad_response = 2,
  too_large = 2, redirect = 2,
  internal = 1, -- never through exit_code: the CLI exits 1 on an internal error (EXIT.usage)
}

local function c_error()
  local t, err = aap.parse_time("not a time")
  assert(t == nil and err)
  return err
end

-- The string literals of a pattern's first capture in the given files.
local function literals(files, patterns)
  local found = {}
  for _, f in ipairs(files) do
    local text = assert(readfile(helper.ROOT .. "/" .. f), f)
    for _, p in ipairs(patterns) do
      for code in text:gmatch(p) do found[code] = f end
    end
  end
  return found
end

-- The files of dir whose names match pattern, but `except`; appended to `into` if given.
local function ls(dir, pattern, except, into)
  local out = into or {}
  for name in io.popen("ls " .. helper.shquote(helper.ROOT .. "/" .. dir)):lines() do
    if name:match(pattern) and name ~= except then out[#out + 1] = dir .. "/" .. name end
  end
  return out
end

describe("aap.errors.CODES", function()
  it("gives every code an exit code 1 to 4 and a one-line meaning", function()
    local n = 0
    for code, c in pairs(errors.CODES) do
      n = n + 1
      assert.matches("^[a-z_]+$", code)
      assert.is_true(math.type(c.exit) == "integer" and c.exit >= 1 and c.exit <= 4, code)
      assert.is_true(type(c.meaning) == "string" and #c.meaning > 0 and not c.meaning:find("\n"), code)
    end
    assert.equal(25, n)
  end)

  it("keeps every code's exit code as it was", function()
    for code, exit in pairs(EXIT_BEFORE) do
      assert.is_not_nil(errors.CODES[code], code)
      assert.equal(exit, errors.CODES[code].exit, code)
    end
    for code in pairs(errors.CODES) do assert.is_not_nil(EXIT_BEFORE[code], code) end
  end)

  it("holds every code the C core can produce (aap.codes)", function()
    for code in pairs(aap.codes) do
      assert.is_not_nil(errors.CODES[code], code)
    end
  end)

  it("and aap.codes holds every code literal the C sources make an error with", function()
    -- (aap.os, the files that include osutil.h, makes no aap.Error: it returns codes of its own, below.)
    local files = {}
    for _, f in ipairs(ls("csrc", "%.c$")) do
      local text = assert(readfile(helper.ROOT .. "/" .. f))
      if not text:find('#include "osutil.h"', 1, true) then files[#files + 1] = f end
    end
    local listed = table.concat(files, " ")
    assert.is_nil(listed:find("csrc/osutil.c", 1, true))
    assert.is_truthy(listed:find("csrc/errors.c", 1, true))
    local found = literals(files, {
      'aap_fail%(L, "([%w_]+)"', 'refuse%(x, "([%w_]+)"', 'code = "([%w_]+)"',
      'lua_pushliteral%(L, "([%w_]+)"%);%s*lua_setfield%(L, eidx, "code"%)',
    })
    -- aap_status_code and aap_curl_code: the codes of HTTP statuses and curl failures.
    for code in pairs(literals({ "csrc/errors.c" }, { 'return "([%w_]+)";' })) do found[code] = "csrc/errors.c" end
    assert.is_not_nil(found.expired)   -- the scan sees the codes set in place, too
    assert.is_not_nil(found.insecure)
    assert.is_not_nil(found.tls)
    for code, file in pairs(found) do
      assert.is_true(aap.codes[code] == code, code .. " (" .. file .. ") is not in aap.codes")
    end
  end)

  it("holds every code literal the Lua modules make an error with", function()
    -- every module of the library and the command, the emulator's aside (its codes are HTTP's)
    local files = ls("lua/aap/rotate", "%.lua$", nil,
      ls("lua/aap/commands", "%.lua$", nil, ls("lua/aap", "%.lua$", "errors.lua")))
    local found = literals(files, {
      'errors%.new%("([%w_]+)"', 'local_error%("([%w_]+)"', 'new_error%("([%w_]+)"', 'user_error%("([%w_]+)"',
      'perr%("([%w_]+)"',
      '[^%w_]err%("([%w_]+)"', 'cli_error%("([%w_]+)"', 'ctx:fail%("([%w_]+)"', '[^%w_.]fail%("([%w_]+)",',
      'and "([%w_]+)" or "[%w_]+", ', 'code or "([%w_]+)"',
    })
    assert.is_not_nil(found.policy)
    assert.is_not_nil(found.busy)
    assert.is_not_nil(found["local"])
    assert.is_truthy(table.concat(files, " "):find("lua/aap/rotate/journal.lua", 1, true))
    for code, file in pairs(found) do
      assert.is_not_nil(errors.CODES[code], code .. " (" .. file .. ") is not in aap.errors.CODES")
    end
  end)

  it("agrees with the code table of docs/design.md", function()
    local design = assert(readfile(helper.ROOT .. "/docs/design.md"))
    local rows = 0
    for code, exit in design:gmatch("\n| `([%w_]+)` | [^\n]* | (%d) |") do
      rows = rows + 1
      assert.is_not_nil(errors.CODES[code], code)
      assert.equal(tonumber(exit), errors.CODES[code].exit, code)
    end
    assert.is_true(rows >= 16)
  end)
end)

describe("the CLI's exit codes", function()
  local cli = require("aap.cli")

  it("derive from aap.errors.CODES", function()
    for code, c in pairs(errors.CODES) do
      assert.equal(c.exit, cli.exit_code({ code = code }), code)
      assert.equal(c.exit, errors.exit_code({ code = code }), code)
    end
  end)

  it("are 2 (server or API) for an unknown code or no error table", function()
    for _, e in ipairs({ { code = "no_such_code" }, {}, "text", false }) do
      assert.equal(2, errors.exit_code(e))
      assert.equal(2, cli.exit_code(e))
    end
    assert.equal(errors.DEFAULT_EXIT, cli.EXIT.api)
  end)

  it("name the same numbers as aap.cli.EXIT", function()
    assert.equal(cli.EXIT.usage, errors.EXIT["local"])
    assert.equal(cli.EXIT.api, errors.EXIT.api)
    assert.equal(cli.EXIT.auth, errors.EXIT.auth)
    assert.equal(cli.EXIT.network, errors.EXIT.network)
  end)

  it("are kept in no table of cli.lua's own", function()
    local src = assert(readfile(helper.ROOT .. "/lua/aap/cli.lua"))
    assert.is_nil(src:find("CODE_EXIT", 1, true))
    for code in pairs(aap.codes) do
      if cli.EXIT[code] == nil then   -- (auth is also the name of exit code 3)
        assert.is_nil(src:find("%f[%w_]" .. code .. "%s*=%s*%d"), code)
      end
    end
  end)
end)

describe("aap.errors.new", function()
  it("makes an aap.Error: the C core's own metatable", function()
    local e = errors.new("io", "cannot read x", { path = "x" })
    assert.equal(getmetatable(c_error()), getmetatable(e))
    assert.equal("aap.Error", getmetatable(e).__name)
    assert.same({ code = "io", message = "cannot read x", path = "x" }, setmetatable(e, nil))
  end)

  it("prints code: message, with the C core's shape for status, method and path", function()
    assert.equal("io: cannot read x", tostring(errors.new("io", "cannot read x", { path = "x" })))
    assert.equal("server: boom (HTTP 500, GET /p/)",
      tostring(errors.new("server", "boom", { status = 500, method = "GET", path = "/p/" })))
    assert.equal(tostring(c_error()), tostring(aap.error(c_error().code, c_error().message)))
  end)

  it("prints the message alone for a plain error", function()
    local e = errors.new("usage", "no gateway URL", { plain = true, status = 400 })
    assert.equal("no gateway URL", tostring(e))
    assert.equal("no gateway URL", errors.message(e))
  end)

  it("copies the fields and leaves the caller's table alone", function()
    local fields = { status = 401, candidates = { { id = 1 } } }
    local e = errors.new("auth", "no", fields)
    assert.equal(401, e.status)
    assert.equal(fields.candidates, e.candidates)
    assert.is_nil(fields.code)
    assert.is_nil(getmetatable(fields))
  end)

  it("refuses an unknown code, a message that is not a string, and fields that are not a table", function()
    assert.has_error(function() errors.new("nope", "x") end, 'aap.errors.new: unknown error code "nope"')
    assert.has_error(function() errors.new(nil, "x") end)
    assert.has_error(function() errors.new("io", nil) end)
    assert.has_error(function() errors.new("io", "x", "y") end)
    assert.has_error(function() aap.error("io") end)
    assert.has_error(function() aap.error("io", "x", 1) end)
  end)
end)

describe("aap.errors.message", function()
  it("is tostring for an aap.Error, the message (else the code) for a plain table, and text for the rest", function()
    assert.equal(tostring(c_error()), errors.message(c_error()))
    assert.equal("m", errors.message({ code = "io", message = "m" }))
    assert.equal("io", errors.message({ code = "io" }))
    assert.equal("error", errors.message({}))
    assert.equal("text", errors.message("text"))
    assert.equal("nil", errors.message(nil))
  end)

  it("is what aap.rotate.message and aap.cli.message (without candidates) give", function()
    local rotate = require("aap.rotate")
    local cli = require("aap.cli")
    for _, e in ipairs({ c_error(), errors.new("busy", "held", { plain = true }), { code = "io", message = "m" },
                         "text" }) do
      assert.equal(errors.message(e), rotate.message(e))
      assert.equal(errors.message(e), cli.message(e))
    end
  end)
end)

describe("the modules' errors", function()
  local mt = getmetatable(c_error())
  after_each(helper.cleanup)

  it("are all aap.Errors, printed as before", function()
    local dir = helper.tmpdir()
    local _, eerr = require("aap.env").read(dir)
    assert.equal("unsafe", eerr.code)
    assert.equal(dir, eerr.path)
    assert.equal("unsafe: " .. eerr.message, tostring(eerr))

    local _, xerr = require("aap.export").format("no-such-format", {}, {})
    assert.equal("usage", xerr.code)
    assert.equal("usage: " .. xerr.message, tostring(xerr))

    local _, cerr = require("aap.config").fail("bad %s", "thing")
    assert.equal("usage", cerr.code)
    assert.equal("bad thing", tostring(cerr))

    local werr = require("aap.workflow").error("not_found", "cannot tell")
    assert.equal("not_found: cannot tell", tostring(werr))

    local perr = require("aap.policy").error("a policy needs max_age")
    assert.equal("policy", perr.code)
    assert.equal("a policy needs max_age", tostring(perr))

    helper.writefile(dir .. "/.env.aap-state.json", "{}")
    local _, serr = require("aap.state").load(dir .. "/.env")
    assert.equal("usage", serr.code)
    assert.equal(serr.message, tostring(serr))

    local cli = require("aap.cli")
    local uerr = cli.error("usage", "say it")
    assert.equal("say it", tostring(uerr))

    for _, e in ipairs({ eerr, xerr, cerr, werr, perr, serr, uerr }) do
      assert.equal(mt, getmetatable(e))
      assert.is_not_nil(errors.CODES[e.code], e.code)
    end
  end)
end)

describe("aap.os failures", function()
  local osu = aap.os
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

  it("return nil, message, code: busy for a lock held elsewhere, io for the rest", function()
    local path = dir .. "/lock"
    local lk = assert(osu.lock(path))
    local none, msg, code = osu.lock(path)
    assert.is_nil(none)
    assert.equal(path .. " is locked by another process", msg)
    assert.equal("busy", code)
    lk:unlock()

    none, msg, code = osu.lock(dir)
    assert.is_nil(none)
    assert.equal("cannot open lock file " .. dir .. ": not a regular file", msg)
    assert.equal("io", code)

    none, msg, code = osu.write_atomic(dir .. "/missing/x", "data")
    assert.is_nil(none)
    assert.matches("^cannot ", msg)
    assert.equal("io", code)

    assert(os.execute("ln -s x " .. helper.shquote(dir .. "/link")))
    none, msg, code = osu.write_atomic(dir .. "/link", "data")
    assert.is_nil(none)
    assert.equal("cannot replace " .. dir .. "/link: it is a symbolic link", msg)
    assert.equal("io", code)

    none, msg, code = osu.mode(dir .. "/missing")
    assert.is_nil(none)
    assert.equal("cannot stat " .. dir .. "/missing: No such file or directory", msg)
    assert.equal("io", code)
  end)

  it("spawn: spawn for a program that cannot run, timeout when it runs too long", function()
    local none, msg, code = osu.spawn({ dir .. "/no-such-program" }, {}, nil, 5)
    assert.is_nil(none)
    assert.matches("^cannot run ", msg)
    assert.equal("spawn", code)
    none, msg, code = osu.spawn({ "sleep", "5" }, {}, nil, 0.2)
    assert.is_nil(none)
    assert.matches("ran longer than", msg)
    assert.equal("timeout", code)
  end)

  it("stat and open keep errno as their third value (they tell a missing file from the rest)", function()
    local _, _, errno = osu.stat(dir .. "/missing")
    assert.equal(2, errno)
    _, _, errno = osu.open(dir .. "/missing")
    assert.equal(2, errno)
  end)

  it("aap.state.lock reads the code, not the message: busy", function()
    local state = require("aap.state")
    local env = dir .. "/.env"
    local lk = assert(osu.lock(state.lock_path(env)))
    local none, err = state.lock(env)
    assert.is_nil(none)
    assert.equal("busy", err.code)
    assert.equal(("another aap run holds the lock %s; try again when it is done"):format(state.lock_path(env)),
      tostring(err))
    lk:unlock()
    local held = assert(state.lock(env))
    held:unlock()
  end)
end)
