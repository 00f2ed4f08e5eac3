-- Secret hygiene (issue #6): no secret in any process's argv, on stderr/stdout (unless asked
-- for), in the emulator's log, in error messages, in tostring of any object, or in the state
-- file; files holding secrets are 0600; Basic credentials are refused over plain http:// to
-- a host that is not loopback unless explicitly allowed.
local helper = require("helper")
local cjson = require("cjson.safe")
local envfile = require("aap.env")

describe("secret hygiene", function()
  local sim, dir, app

  setup(function()
    sim = helper.start_sim()
    app = sim.seed.application
  end)
  teardown(function()
    sim:stop()
    helper.cleanup()
  end)
  before_each(function()
    sim:reset()
    dir = helper.tmpdir()
  end)

  local function admin_env(extra)
    local e = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password,
                AAP_CLIENT_ID = app.client_id, AAP_CLIENT_SECRET = app.client_secret }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  -- Every secret in play: the passwords and client secret, and every value in the env file.
  local function secrets(path)
    local list = { sim.admin_password, app.client_secret, sim.seed.user.password }
    local doc = path and envfile.read(path)
    if doc then
      for _, k in ipairs(doc:keys()) do
        local v = doc:get(k)
        if v and #v >= 8 and k ~= "AAP_CLIENT_ID" then list[#list + 1] = v end
      end
    end
    return list
  end

  local function assert_clean(text, list, where)
    for _, s in ipairs(list) do
      assert.is_nil(text:find(s, 1, true), ("a secret (%d chars) in %s"):format(#s, where))
    end
  end

  -- Runs one CLI command under strace (every execve with its full argv) and returns the
  -- result and the trace text.
  local function traced(argv, env)
    local trace = dir .. "/trace"
    local r = helper.run(argv, { env = env, wrap = { "strace", "-f", "-qq", "-s", "65535", "-e", "trace=execve",
                                                     "-o", trace } })
    return r, helper.readfile(trace) or ""
  end

  describe("the whole lifecycle", function()
    -- One pass over every command that touches a secret; each step's argv (all processes),
    -- stdout and stderr are checked against every secret known so far, and after it.
    it("keeps every secret out of argv, stdout, stderr, the state file and the emulator's log", function()
      if not os.execute("command -v strace >/dev/null 2>&1") then error("strace is not installed (scripts/deps.sh)") end
      local path = dir .. "/.env"
      local pat_path = dir .. "/pat.env"
      helper.writefile(dir .. "/policy.lua", 'return { max_age = "90d", strategy = "recreate" }')
      local steps = {
        { "token", "create", "--env-file", pat_path },
        { "token", "create", "--application", app.name, "--env-file", path },
        { "token", "refresh", "--env-file", path },
        { "token", "list" },
        { "token", "rotate", "--policy", dir .. "/policy.lua", "--env-file", pat_path },
        { "token", "revoke", "--env-file", path },
        { "token", "revoke", "--env-file", pat_path },
      }
      local seen = {}
      for i, argv in ipairs(steps) do
        if argv[2] == "rotate" then sim:advance(100 * 86400) end
        local before = secrets(path)
        for _, s in ipairs(secrets(pat_path)) do before[#before + 1] = s end
        local r, trace = traced(argv, admin_env())
        assert.equal(0, r.code, table.concat(argv, " ") .. ": " .. r.stderr)
        local after = secrets(path)
        for _, s in ipairs(secrets(pat_path)) do after[#after + 1] = s end
        for _, list in ipairs({ before, after }) do
          for _, s in ipairs(list) do seen[s] = true end
          assert_clean(trace, list, "an argv (strace), step " .. i)
          assert_clean(r.stdout, list, "stdout, step " .. i)
          assert_clean(r.stderr, list, "stderr, step " .. i)
        end
        for _, p in ipairs({ path, pat_path }) do
          local st = helper.readfile(p .. ".aap-state.json")
          if st then
            assert_clean(st, after, "the state file, step " .. i)
            assert.equal("600", helper.mode(p .. ".aap-state.json"))
          end
          if helper.readfile(p) then assert.equal("600", helper.mode(p)) end
        end
      end
      local list = {}
      for s in pairs(seen) do list[#list + 1] = s end
      assert.is_true(#list >= 8, "the lifecycle saw too few secrets: " .. #list)
      -- The emulator prints the seeded application's client secret once at start-up, by
      -- design (the demo reads it); nothing else.
      local err = sim:stderr():gsub("aap sim: application [^\n]*\n", "")
      assert_clean(err, list, "the emulator's stderr")
      local log = cjson.encode(sim:log())
      assert_clean(log, list, "the emulator's /__sim/log")
    end)
  end)

  describe("the emulator's log", function()
    it("redacts secret-looking query values in its stderr and /__sim/log", function()
      local secret = "Query-Secret-0123456789"
      sim:raw("GET", "/api/gateway/v1/tokens/?token=" .. secret .. "&client_secret=" .. secret ..
        "&password=" .. secret, { basic = { "admin", sim.admin_password } })
      assert_clean(cjson.encode(sim:log()), { secret }, "/__sim/log")
      assert_clean(sim:stderr(), { secret }, "the emulator's stderr")
      assert.truthy(cjson.encode(sim:log()):find("REDACTED", 1, true))
    end)
  end)

  describe("objects", function()
    local aap = require("aap")

    it("never show a secret in tostring: session, token, error, lock, env document", function()
      local s = assert(aap.connect({ url = sim.url, username = "admin", password = sim.admin_password }))
      local tok = assert(s:create_token({ application = app.id, description = "hygiene" }))
      local b = assert(aap.connect({ url = sim.url, token = tok.token }))
      local list = { sim.admin_password, tok.token, tok.refresh_token }
      assert_clean(tostring(s), list, "tostring(session)")
      assert_clean(tostring(b), list, "tostring(bearer session)")
      assert_clean(tostring(tok), list, "tostring(token)")
      local _, err = s:refresh({ refresh_token = tok.refresh_token, client_id = app.client_id,
                                 client_secret = "wrong-" .. app.client_secret })
      assert.is_table(err)
      list[#list + 1] = app.client_secret
      assert_clean(tostring(err), list, "tostring(error)")
      assert_clean(cjson.encode({ message = err.message }), list, "error.message")
      local lock = assert(aap.os.lock(dir .. "/l"))
      assert_clean(tostring(lock), list, "tostring(lock)")
      lock:unlock()
      local doc = envfile.parse("AAP_TOKEN=" .. tok.token .. "\n")
      assert_clean(tostring(doc), list, "tostring(env document)")
      b:close(); s:close()
    end)
  end)

  describe("files", function()
    it("creates the env file, its state file and its lock 0600, and narrows a 0644 file", function()
      local path = dir .. "/.env"
      local r = helper.run({ "token", "create", "--env-file", path }, { env = admin_env() })
      assert.equal(0, r.code, r.stderr)
      assert.equal("600", helper.mode(path))
      assert.equal("600", helper.mode(path .. ".aap-state.json"))
      local wide = dir .. "/wide.env"
      helper.writefile(wide, "# shared\n", 420)
      assert.equal("644", helper.mode(wide))
      r = helper.run({ "token", "create", "--env-file", wide }, { env = admin_env() })
      assert.equal(0, r.code, r.stderr)
      assert.equal("600", helper.mode(wide))
      helper.writefile(dir .. "/p.lua", 'return { max_age = "1d" }')
      sim:advance(2 * 86400)
      r = helper.run({ "token", "rotate", "--policy", dir .. "/p.lua", "--env-file", path }, { env = admin_env() })
      assert.equal(0, r.code, r.stderr)
      assert.equal("600", helper.mode(path .. ".aap-lock"))
      -- No temporary file is left behind.
      local p = io.popen("ls -A " .. helper.shquote(dir))
      local names = p:read("a")
      p:close()
      assert.is_nil(names:find("%.tmp%-"), names)
    end)
  end)

  describe("core dumps", function()
    it("the CLI turns them off before it reads any secret (RLIMIT_CORE 0, not dumpable)", function()
      local trace = dir .. "/trace"
      local r = helper.run({ "whoami" }, { env = admin_env(), wrap = { "strace", "-qq", "-o", trace, "-e",
        "trace=prctl,setrlimit,prlimit64" } })
      assert.equal(0, r.code, r.stderr)
      local t = assert(helper.readfile(trace))
      assert.matches("RLIMIT_CORE, {rlim_cur=0, rlim_max=0}", t, 1, true)
      assert.matches("prctl(PR_SET_DUMPABLE, SUID_DUMP_DISABLE", t, 1, true)
    end)

    it("aap.os.no_core_dumps sets both limits to 0 for the Lua API too", function()
      local p = io.popen("lua5.4 -e " .. helper.shquote(
        'package.cpath = "' .. (os.getenv("AAP_CPATH") or (helper.ROOT .. "/build")) .. '/?.so;" .. package.cpath; '
        .. 'assert(require("aap").os.no_core_dumps()); io.write(io.open("/proc/self/limits"):read("a"))'))
      local limits = p:read("a")
      p:close()
      assert.matches("Max core file size%s+0%s+0", limits)
    end)
  end)

  describe("Basic over plain http", function()
    local aap = require("aap")

    it("is refused to a host that is not loopback, before anything is sent", function()
      for _, url in ipairs({ "http://192.0.2.10", "http://gateway.example", "http://[2001:db8::1]:8080" }) do
        local s, err = aap.connect({ url = url, username = "admin", password = "pw-123456" })
        assert.is_nil(s, url)
        assert.equal("insecure", err.code)
        assert.matches("https://", err.message)
      end
    end)

    it("is allowed with allow_plain_http, and to loopback (IPv4-mapped 127.0.0.1 included)", function()
      -- [::ffff:127.0.0.1] is 127.0.0.1 to the kernel: loopback for every credential (issue #11)
      local url = sim.url:gsub("127%.0%.0%.1", "[::ffff:127.0.0.1]")
      local s = assert(aap.connect({ url = url, username = "admin", password = sim.admin_password }))
      assert.equal("admin", assert(s:me()).username)
      s:close()
      s = assert(aap.connect({ url = "http://192.0.2.10", username = "admin", password = "pw-123456",
                               allow_plain_http = true }))   -- no I/O: connect sends nothing
      s:close()
      s = assert(aap.connect({ url = sim.url, username = "admin", password = sim.admin_password }))
      s:close()
    end)

    it("treats only loopback addresses as loopback, not host names that start like one", function()
      for _, url in ipairs({ "http://127.attacker.example", "http://127.0.0.1.attacker.example",
                             "http://localhost.attacker.example" }) do
        local s, err = aap.connect({ url = url, username = "admin", password = "pw-123456" })
        if s then s:close() end
        assert.is_nil(s, url .. " was taken for loopback: Basic credentials would go out in clear")
        assert.equal("insecure", err and err.code)
      end
    end)

    it("is refused by the CLI as a local setting error (exit 1), with a way to allow it explicitly", function()
      -- refused by aap.connect, before any I/O: 192.0.2.10 is never contacted
      local r = helper.run({ "whoami" }, { env = { AAP_HOSTNAME = "http://192.0.2.10", AAP_PASSWORD = "pw-123456" } })
      assert.matches("^aap: .*https://", r.stderr)
      assert.equal(1, r.code, "a refused setting is a local error (exit 1): " .. r.stderr)
      r = helper.run({ "whoami" }, { env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password,
                                            AAP_ALLOW_PLAIN_HTTP = "true" } })
      assert.equal(0, r.code, "AAP_ALLOW_PLAIN_HTTP=true should allow it: " .. r.stderr)
      assert.matches("warning: credentials may be sent over plain http://", r.stderr)
    end)
  end)
end)
