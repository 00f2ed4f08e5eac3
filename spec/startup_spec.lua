-- Issue #12, start-up: a command loads only the modules it uses. bin/aap runs under
-- `lua5.4 -e TRACE`, which wraps os.exit (every way out of bin/aap ends in it) to write the
-- modules in package.loaded and the shared objects mapped into the process. A run that does
-- not get there leaves no "end" line, and every list is also checked for what must be in it:
-- the spec cannot pass on an empty trace.
local helper = require("helper")

local function trace_code(out)
  return ([[
local out = %q
local before = {}
for k in pairs(package.loaded) do before[k] = true end
local exit = os.exit
os.exit = function(...)
  local f = assert(io.open(out, "w"))
  for k in pairs(package.loaded) do
    if not before[k] then f:write("module ", k, "\n") end
  end
  local maps = assert(io.open("/proc/self/maps"))
  for line in maps:lines() do
    local path = line:match("%%s(/%%S+)$")
    if path then f:write("map ", path, "\n") end
  end
  maps:close()
  f:write("end\n")
  f:close()
  return exit(...)
end]]):format(out)
end

-- Runs bin/aap traced; returns the run, the set of modules and the list of mapped files.
local function traced(argv, env)
  local out = helper.tmpdir() .. "/trace"
  local r = helper.run(argv, { env = env, lua_args = { "-e", trace_code(out) } })
  local text = helper.readfile(out)
  assert(text and text:match("\nend\n$"), "no trace written by " .. table.concat(argv, " ") .. ": " .. r.stderr)
  local modules, maps = {}, {}
  for kind, name in text:gmatch("(%a+) ([^\n]+)\n") do
    if kind == "module" then modules[name] = true elseif kind == "map" then maps[#maps + 1] = name end
  end
  assert(next(maps), "no mapped files in the trace")
  return r, modules, maps
end

local function sorted(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

local function assert_modules(got, want)
  assert.same(sorted(want), sorted(got))
end

local function set(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- The shared objects of the C core and its transport: none for a command that sends nothing.
local function assert_no_core(maps)
  for _, path in ipairs(maps) do
    local base = path:match("[^/]+$")
    assert.is_nil(base:match("^aap%.so$") or base:match("^libcurl") or base:match("^libssl")
      or base:match("^libcrypto"), base .. " is loaded")
  end
end

-- The parser of a command line that names no leaf (every command module), and of one that
-- names `token create` (the command modules up to the one registering it). With them,
-- aap.commands.common: what they share, which requires nothing when it loads.
local ALL_COMMANDS = { "aap.cli", "argparse", "aap.commands.common", "aap.commands.token", "aap.commands.app",
                       "aap.commands.misc", "aap.commands.rotate", "aap.commands.status" }
local CREATE_COMMAND = { "aap.cli", "argparse", "aap.commands.common", "aap.commands.token" }

describe("start-up", function()
  teardown(helper.cleanup)

  describe("aap --version", function()
    it("prints the version and loads aap.cli alone: no argparse, no C core, no libcurl or OpenSSL", function()
      local r, modules, maps = traced({ "--version" })
      assert.equal(0, r.code, r.stderr)
      assert.equal("aap " .. require("aap")._VERSION .. "\n", r.stdout)
      assert.equal("", r.stderr)
      assert_modules(modules, set({ "aap.cli" }))
      assert_no_core(maps)
    end)

    it("prints what the parser's --version flag prints", function()
      local fast = helper.run({ "--version" })
      for _, argv in ipairs({ { "--version", "--version" }, { "token", "--version" } }) do
        local r = helper.run(argv)
        assert.equal(0, r.code, r.stderr)
        assert.equal(fast.stdout, r.stdout)
      end
    end)

    it("is the C core's version and the build's", function()
      local cli = require("aap.cli")
      assert.equal(require("aap")._VERSION, cli.VERSION)
      local cmake = assert(helper.readfile(helper.ROOT .. "/CMakeLists.txt"))
      assert.equal(cli.VERSION, cmake:match('AAP_VERSION="([^"]+)"'))
      local header = assert(helper.readfile(helper.ROOT .. "/csrc/aap.h"))
      assert.equal(cli.VERSION, header:match('#define AAP_VERSION "([^"]+)"'))
    end)
  end)

  describe("help", function()
    for _, case in ipairs({ { { "--help" }, ALL_COMMANDS }, { { "token", "--help" }, ALL_COMMANDS },
                            { { "token", "create", "--help" }, CREATE_COMMAND },
                            { { "help" }, ALL_COMMANDS }, { { "help", "token", "create" }, CREATE_COMMAND } }) do
      local argv, want = case[1], case[2]
      it("aap " .. table.concat(argv, " ") .. " builds the parser but loads no library module nor the C core",
        function()
          local r, modules, maps = traced(argv)
          assert.equal(0, r.code, r.stderr)
          assert.matches("^Usage: aap", r.stdout)
          assert_modules(modules, set(want))
          assert_no_core(maps)
        end)
    end

    it("completion and man load the generator beside the parser, and no C core", function()
      local want = set(ALL_COMMANDS)
      want["aap.clidoc"] = true
      for _, argv in ipairs({ { "completion", "bash" }, { "man" } }) do
        local r, modules, maps = traced(argv)
        assert.equal(0, r.code, r.stderr)
        assert.truthy(#r.stdout > 1000)
        assert_modules(modules, want)
        assert_no_core(maps)
      end
    end)

    it("a usage error loads no library module nor the C core either", function()
      local r, modules, maps = traced({ "token", "create", "--no-such-flag" })
      assert.equal(1, r.code)
      assert.matches("unknown option '%-%-no%-such%-flag'", r.stderr)
      assert_modules(modules, set(CREATE_COMMAND))
      assert_no_core(maps)
    end)
  end)

  describe("the parser built for one command", function()
    local cli = require("aap.cli")

    -- The leaves of a parser: { words = {"token", "create"}, cmd = <argparse command> }.
    -- (argparse keeps a parser's commands in _commands.)
    local function leaves(parser)
      local out = {}
      local function walk(p, words)
        for _, c in ipairs(p._commands) do
          local w = table.move(words, 1, #words, 1, {})
          w[#w + 1] = c._name
          if #c._commands > 0 then walk(c, w) else out[#out + 1] = { words = w, cmd = c } end
        end
      end
      walk(parser, {})
      return out
    end

    local function find(parser, words)
      for _, l in ipairs(leaves(parser)) do
        if table.concat(l.words, " ") == table.concat(words, " ") then return l.cmd end
      end
    end

    local full = leaves(cli.parser())

    it("has the leaf it is built for, and only leaves the full parser has", function()
      assert.is_true(#full >= 13)
      local names = {}
      for _, l in ipairs(full) do names[table.concat(l.words, " ")] = true end
      for _, l in ipairs(full) do names[l.words[1]] = true end   -- a group whose leaves are left out
      for _, l in ipairs(full) do
        for _, o in ipairs(leaves(cli.parser(l.words))) do
          local path = table.concat(o.words, " ")
          assert.is_true(names[path], path)
        end
        assert.is_truthy(find(cli.parser(l.words), l.words))
      end
    end)

    it("shows the same help and usage for the leaf it is built for, and the same root usage", function()
      -- (Its other leaves, groups and the root's command list are never shown: their help is
      -- asked for by command lines that name no leaf, which get the full parser.)
      local whole = cli.parser()
      for _, l in ipairs(full) do
        local parser = cli.parser(l.words)
        local cmd = assert(find(parser, l.words), table.concat(l.words, " "))
        assert.equal(l.cmd:get_help(), cmd:get_help())
        assert.equal(l.cmd:get_usage(), cmd:get_usage())
        assert.equal(whole:get_usage(), parser:get_usage())   -- what aap prints with a parse error
      end
    end)

    it("parses a command line and refuses a bad one as the full parser does", function()
      for _, argv in ipairs({
        { "token", "create", "--env-file", "x.env", "--scope", "read", "--format", "json", "-q" },
        { "token", "create", "--scope", "admin" },
        { "token", "create", "--no-such-flag" },
        { "token", "create", "extra" },
        { "token", "show", "12" },
        { "token", "show", "abc" },
        { "token", "prune", "--user", "7", "--keep-env-file", "a", "--keep-env-file", "b", "--dry-run" },
        { "token", "rotate" },
        { "app", "create", "--name", "n", "--client-type", "public" },
        { "ping", "--format", "json", "--flavor", "controller" },
        { "whoami", "--url" },
      }) do
        local ok1, r1 = cli.parser():pparse(argv)
        local ok2, r2 = cli.parser(argv):pparse(argv)
        assert.equal(ok1, ok2, table.concat(argv, " "))
        assert.same(r1, r2)
      end
    end)
  end)

  describe("aap token create", function()
    local sim

    setup(function() sim = helper.start_sim() end)
    teardown(function() assert.is_true((sim:stop())) end)

    it("loads what creating and saving a token needs: no other command, nor rotate, policy, export, the emulator",
      function()
        local dir = helper.tmpdir()
        local r, modules = traced({ "token", "create", "--env-file", dir .. "/.env" },
          { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password })
        assert.equal(0, r.code, r.stderr)
        assert.matches("^created personal token", r.stdout)
        -- What it uses: the C core, the workflows and the state file (whose fingerprint is a
        -- SHA-256 from the C core: the library needs no luaossl, which is the emulator's).
        local want = set(CREATE_COMMAND)
        for _, m in ipairs({ "aap", "aap.config", "aap.workflow", "aap.env", "aap.trust", "aap.state",
                             "cjson.safe" }) do
          want[m] = true
        end
        assert_modules(modules, want)
        for _, m in ipairs({ "aap.rotate", "aap.policy", "aap.duration", "aap.export", "aap.sim", "socket", "ssl",
                             "openssl.digest", "_openssl.digest", "openssl.rand", "yaml", "lyaml" }) do
          assert.is_nil(modules[m], m)
        end
      end)
  end)
end)
