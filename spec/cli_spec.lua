-- The `aap` command driven as a subprocess against the emulator: every command, the
-- environment variables, the exit codes, and that no secret leaks to stdout/stderr/argv.
local helper = require("helper")
local cjson = require("cjson")

describe("aap command", function()
  local sim, base

  setup(function()
    sim = helper.start_sim()
    base = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password }
  end)
  teardown(function()
    assert.is_true((sim:stop()))
    helper.cleanup()
  end)
  before_each(function() sim:reset() end)

  local function env(extra)
    local e = {}
    for k, v in pairs(base) do e[k] = v end
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  local function aap(argv, extra, opts)
    opts = opts or {}
    opts.env = env(extra)
    return helper.run(argv, opts)
  end

  -- Root writes into a read-only directory anyway: run as nobody there (setpriv drops the
  -- capabilities with the uid), so the failure paths are real in CI too.
  local function unprivileged()
    local p = io.popen("id -u")
    local uid = p:read("l")
    p:close()
    if uid ~= "0" then return nil end
    assert(os.execute("command -v setpriv >/dev/null"), "setpriv (util-linux) is needed to test as non-root")
    return { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups" }
  end

  local function no_secret(res, ...)
    for _, s in ipairs({ sim.admin_password, ... }) do
      assert.is_nil(res.stderr:find(s, 1, true), "secret on stderr")
    end
  end

  local function token_count()
    local st, body = sim:control("GET", "/api/gateway/v1/tokens/?page_size=1")
    assert.equal(200, st)
    return body.count
  end

  local function bearer_status(token)
    local st = sim:raw("GET", "/api/gateway/v1/me/", { bearer = token })
    return st
  end

  describe("basics", function()
    it("prints its version", function()
      local r = aap({ "--version" })
      assert.equal(0, r.code)
      assert.matches("^aap %d+%.%d+%.%d+", r.stdout)
    end)

    it("shows help and exits 1 without a command", function()
      local r = aap({})
      assert.equal(1, r.code)
      assert.matches("Usage", r.stderr)
    end)

    it("documents the exit codes in --help", function()
      local r = aap({ "--help" })
      assert.equal(0, r.code)
      assert.matches("3 authentication or permission", r.stdout, 1, true)
      assert.matches("4 network or TLS", r.stdout, 1, true)
    end)

    it("refuses a password or token in argv without echoing it", function()
      for _, flag in ipairs({ "--password", "--token" }) do
        local r = aap({ "whoami", flag, "hunter2-secret" })
        assert.equal(1, r.code)
        assert.matches("not accepted on the command line", r.stderr)
        assert.is_nil(r.stderr:find("hunter2-secret", 1, true))
      end
    end)

    it("rejects an unknown option with exit 1", function()
      local r = aap({ "token", "create", "--nope" })
      assert.equal(1, r.code)
    end)

    it("pings and tells the flavor", function()
      local r = aap({ "ping" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^gateway ", r.stdout)
    end)

    it("says who the credentials belong to", function()
      local r = aap({ "whoami", "--format", "json" })
      assert.equal(0, r.code, r.stderr)
      local me = cjson.decode(r.stdout)
      assert.equal("admin", me.username)
      assert.is_true(me.is_superuser)
    end)
  end)

  describe("connection settings", function()
    it("never sends a plain http:// loopback request, credentials and all, through a proxy", function()
      -- a proxy on a closed port: a request that went to it would fail
      local dead = "http://127.0.0.1:9"
      local r = aap({ "whoami" }, { http_proxy = dead, HTTP_PROXY = dead, ALL_PROXY = dead, all_proxy = dead })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^admin", r.stdout)
      -- a plain http:// host that is not loopback, allowed explicitly: the environment's proxy
      -- is honoured (here it is what fails, not the name, which is never resolved)
      r = aap({ "whoami", "--allow-plain-http" },
              { AAP_HOSTNAME = "http://gateway.example.invalid", http_proxy = dead })
      assert.equal(4, r.code)
      assert.matches("127%.0%.0%.1 port 9", r.stderr)
    end)

    it("takes the URL from AAP_URL, AAP_HOST and CONTROLLER_HOST too", function()
      for _, var in ipairs({ "AAP_URL", "AAP_HOST", "CONTROLLER_HOST" }) do
        local r = aap({ "whoami" }, { AAP_HOSTNAME = false, [var] = sim.url })
        assert.equal(0, r.code, var .. ": " .. r.stderr)
      end
    end)

    it("accepts a URL copied with the API path, and refuses a query string (exit 1)", function()
      for _, suffix in ipairs({ "/", "/api/gateway/v1/", "/api/" }) do
        local r = aap({ "whoami" }, { AAP_HOSTNAME = sim.url .. suffix })
        assert.equal(0, r.code, suffix .. ": " .. r.stderr)
      end
      local r = aap({ "whoami" }, { AAP_HOSTNAME = sim.url .. "/?x=1" })
      assert.equal(1, r.code)
      assert.matches("query string", r.stderr)
      assert.is_nil(r.stderr:find("internal error", 1, true))
    end)

    it("says which credentials it used when AAP_TOKEN and a password are both set", function()
      local r = aap({ "whoami" }, { AAP_TOKEN = "notavalidtoken0123456789abcdef" })
      assert.equal(3, r.code)
      assert.matches("both AAP_TOKEN and a password are set", r.stderr)
      assert.matches("%[credentials: AAP_TOKEN%]", r.stderr)
      assert.is_nil(r.stderr:find("notavalidtoken", 1, true))
    end)

    it("fails with exit 1 and a clear line without a URL", function()
      local r = aap({ "whoami" }, { AAP_HOSTNAME = false })
      assert.equal(1, r.code)
      assert.matches("AAP_HOSTNAME", r.stderr)
    end)

    it("fails with exit 1 without credentials", function()
      local r = aap({ "whoami" }, { AAP_PASSWORD = false })
      assert.equal(1, r.code)
      assert.matches("AAP_PASSWORD", r.stderr)
    end)

    it("reads the password from --password-stdin", function()
      local r = aap({ "whoami", "--password-stdin" }, { AAP_PASSWORD = false }, { stdin = sim.admin_password .. "\n" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^admin", r.stdout)
    end)

    it("reads the password from AAP_PASSWORD_FILE", function()
      local dir = helper.tmpdir()
      helper.writefile(dir .. "/pw", sim.admin_password .. "\n", 384)
      local r = aap({ "whoami" }, { AAP_PASSWORD = false, AAP_PASSWORD_FILE = dir .. "/pw" })
      assert.equal(0, r.code, r.stderr)
    end)

    it("uses AAP_USERNAME", function()
      local u = sim.seed.user
      local r = aap({ "whoami" }, { AAP_USERNAME = u.username, AAP_PASSWORD = u.password })
      assert.equal(0, r.code, r.stderr)
      assert.matches("^" .. u.username, r.stdout)
    end)

    it("authenticates with AAP_TOKEN as a Bearer token", function()
      local dir = helper.tmpdir()
      local r = aap({ "token", "create", "--env-file", dir .. "/.env" })
      assert.equal(0, r.code, r.stderr)
      local pat = helper.source_env(dir .. "/.env", { "AAP_PAT" }).AAP_PAT
      local w = aap({ "whoami" }, { AAP_PASSWORD = false, AAP_TOKEN = pat })
      assert.equal(0, w.code, w.stderr)
      assert.matches("^admin", w.stdout)
      local log = sim:log()
      assert.equal("bearer", log[#log].auth)
    end)

    it("exits 3 on a wrong password and never prints it", function()
      local r = aap({ "whoami" }, { AAP_PASSWORD = "wrong-password-xyz" })
      assert.equal(3, r.code)
      assert.is_nil(r.stderr:find("wrong-password-xyz", 1, true))
      assert.matches("^aap: ", r.stderr)
      assert.equal(1, select(2, r.stderr:gsub("\n", "")))
    end)

    it("exits 4 when nothing listens", function()
      local r = aap({ "whoami" }, { AAP_HOSTNAME = "http://127.0.0.1:9" })
      assert.equal(4, r.code)
    end)

    it("parses booleans strictly", function()
      local r = aap({ "whoami" }, { AAP_VALIDATE_CERTS = "maybe" })
      assert.equal(1, r.code)
      assert.matches("AAP_VALIDATE_CERTS", r.stderr)
      r = aap({ "whoami" }, { AAP_INSECURE_SKIP_VERIFY = "2" })
      assert.equal(1, r.code)
    end)

    it("rejects a bad AAP_TIMEOUT", function()
      local r = aap({ "whoami" }, { AAP_TIMEOUT = "soon" })
      assert.equal(1, r.code)
      assert.matches("AAP_TIMEOUT", r.stderr)
    end)

    it("times out (exit 4) when the gateway is too slow", function()
      sim:fault({ kind = "delay", delay_ms = 3000, count = 10 })
      local r = aap({ "whoami", "--timeout", "1" })
      assert.equal(4, r.code)
      assert.matches("timeout", r.stderr)
    end)
  end)

  describe("token create", function()
    it("creates a PAT, verifies it and writes AAP_PAT with mode 0600", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      local r = aap({ "token", "create", "--env-file", path, "--description", "RHDH PAT" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("created personal token id=%d+ scope=write", r.stdout)
      assert.equal("600", helper.mode(path))
      local pat = helper.source_env(path, { "AAP_PAT" }).AAP_PAT
      assert.matches("^[A-Za-z0-9]+$", pat)
      assert.equal(30, #pat)
      assert.is_nil(r.stdout:find(pat, 1, true))
      no_secret(r, pat)
      assert.equal(200, bearer_status(pat))
      -- the token was proved with me/ before it was written
      local saw_bearer_me = false
      for _, e in ipairs(sim:log()) do
        if e.auth == "bearer" and e.path:match("/me/$") then saw_bearer_me = true end
      end
      assert.is_true(saw_bearer_me)
      -- its id is recorded beside the file, with no secret in the state file
      local st = cjson.decode(helper.readfile(path .. ".aap-state.json"))
      assert.is_number(st.keys.AAP_PAT.id)
      assert.is_nil(helper.readfile(path .. ".aap-state.json"):find(pat, 1, true))
      assert.equal("600", helper.mode(path .. ".aap-state.json"))
    end)

    it("writes .env in the current directory by default", function()
      local dir = helper.tmpdir()
      local r = aap({ "token", "create" }, nil, { cwd = dir })
      assert.equal(0, r.code, r.stderr)
      assert.is_truthy(helper.readfile(dir .. "/.env"):match("^AAP_PAT=%w+\n$"))
    end)

    it("creates an application token looked up by name, with the lesson's keys", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      local r = aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      local v = helper.source_env(path, { "AAP_TOKEN", "REFRESH_TOKEN" })
      assert.equal(30, #v.AAP_TOKEN)
      assert.equal(30, #v.REFRESH_TOKEN)
      assert.equal(200, bearer_status(v.AAP_TOKEN))
      no_secret(r, v.AAP_TOKEN, v.REFRESH_TOKEN)
    end)

    it("makes one connection and no request it does not need for an application token", function()
      local path = helper.tmpdir() .. "/.env"
      sim:clear_log()
      local r = aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      local seen, conns, lines = {}, 0, {}
      for _, e in ipairs(sim:log()) do
        if not seen[e.conn] then seen[e.conn] = true; conns = conns + 1 end
        lines[#lines + 1] = e.method .. " " .. e.path:gsub("%?.*", "") .. " " .. e.auth
      end
      -- the application by name, the create (on the kept-alive connection), the Bearer check
      assert.same({ "GET /api/gateway/v1/applications/ basic", "POST /api/gateway/v1/tokens/ basic",
                    "GET /api/gateway/v1/me/ bearer" }, lines)
      assert.equal(1, conns)
    end)

    it("does the lesson's whole job with --pat --application: both tokens, one connection", function()
      local path = helper.tmpdir() .. "/.env"
      sim:clear_log()
      local r = aap({ "token", "create", "--pat", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      local log = sim:log()
      local v = helper.source_env(path, { "AAP_PAT", "AAP_TOKEN", "REFRESH_TOKEN" })
      assert.equal(200, bearer_status(v.AAP_PAT))
      assert.equal(200, bearer_status(v.AAP_TOKEN))
      assert.not_equal(v.AAP_PAT, v.AAP_TOKEN)
      local st = cjson.decode(helper.readfile(path .. ".aap-state.json"))
      assert.equal("personal", st.keys.AAP_PAT.kind)
      assert.equal("application", st.keys.AAP_TOKEN.kind)
      assert.equal(sim.seed.application.id, st.keys.AAP_TOKEN.application)
      local seen, conns, lines = {}, 0, {}
      for _, e in ipairs(log) do
        if not seen[e.conn] then seen[e.conn] = true; conns = conns + 1 end
        lines[#lines + 1] = e.method .. " " .. e.path:gsub("%?.*", "") .. " " .. e.auth
      end
      -- the application first (a wrong name costs no PAT), then each token and its check
      assert.same({ "GET /api/gateway/v1/applications/ basic", "POST /api/gateway/v1/tokens/ basic",
                    "GET /api/gateway/v1/me/ bearer", "POST /api/gateway/v1/tokens/ basic",
                    "GET /api/gateway/v1/me/ bearer" }, lines)
      assert.equal(1, conns)
      assert.equal(2, select(2, r.stdout:gsub("created ", "")))
      no_secret(r, v.AAP_PAT, v.AAP_TOKEN, v.REFRESH_TOKEN)
      -- run again: both kept, none made
      local before = token_count()
      local again = aap({ "token", "create", "--pat", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(0, again.code, again.stderr)
      assert.equal(2, select(2, again.stdout:gsub("kept ", "")))
      assert.equal(before, token_count())
    end)

    it("makes no PAT when --pat --application names no application, nor leaves one printed nowhere", function()
      local before = token_count()
      local r = aap({ "token", "create", "--pat", "--application", "No Such App", "--format", "env" })
      assert.equal(2, r.code)
      assert.equal("", r.stdout)
      assert.equal(before, token_count())
      -- the application token fails after the PAT was made (the gateway refuses the create):
      -- the PAT, printed nowhere, is deleted again
      -- (faults apply in order: the first POST only waits 1 ms, the second gets the 500)
      sim:fault({ kind = "delay", delay_ms = 1, count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      sim:fault({ kind = "500", count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      r = aap({ "token", "create", "--pat", "--application", "RHDH Integration", "--format", "env" })
      assert.equal(2, r.code, r.stderr)
      assert.equal("", r.stdout)
      assert.matches("deleted the personal token id=%d+ made before the failure", r.stderr)
      assert.equal(before, token_count())
    end)

    it("sweeps a create sent twice whose second answer is a refusal: the first copy may exist", function()
      local path = helper.tmpdir() .. "/.env"
      local before = token_count()
      -- the PAT's create rides the connection the application lookup opened: it is made, the
      -- connection dies unanswered, libcurl sends it again, and that copy is refused (404)
      sim:fault({ kind = "drop", count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      sim:fault({ kind = "404", count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      local r = aap({ "token", "create", "--pat", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(2, r.code, r.stderr)
      assert.matches("was deleted", r.stderr)
      assert.equal(before, token_count())
    end)

    it("refuses --key with --pat --application before anything is sent", function()
      sim:clear_log()
      local r = aap({ "token", "create", "--pat", "--application", "RHDH Integration", "--key", "X",
                      "--format", "env" })
      assert.equal(1, r.code)
      assert.matches("not with %-%-pat and %-%-application", r.stderr)
      assert.equal(0, #sim:log())
    end)

    it("sweeps the second copy of a create the connection dropped and libcurl sent again", function()
      local path = helper.tmpdir() .. "/.env"
      sim:fault({ kind = "drop", count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      local r = aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      local v = helper.source_env(path, { "AAP_TOKEN" })
      local posts, left = 0, 0
      for _, e in ipairs(sim:log()) do
        if e.method == "POST" and e.path == "/api/gateway/v1/tokens/" and e.status == 201 then posts = posts + 1 end
      end
      assert.equal(2, posts)
      local id = assert(sim:token_id(v.AAP_TOKEN))
      local _, mine = sim:token_ids(function(t) return t.id == id end)
      local marker = assert(mine[1].description:match("(%S+)$"))
      for _, t in ipairs(select(2, sim:token_ids())) do
        if (t.description or ""):find(marker, 1, true) then left = left + 1 end
      end
      assert.equal(1, left)
      assert.equal(200, bearer_status(v.AAP_TOKEN))
    end)

    it("renames keys with --key and --refresh-key", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      local r = aap({ "token", "create", "--application", ("%d"):format(sim.seed.application.id), "--env-file", path,
                      "--key", "RHDH_TOKEN", "--refresh-key", "RHDH_REFRESH" })
      assert.equal(0, r.code, r.stderr)
      local v = helper.source_env(path, { "RHDH_TOKEN", "RHDH_REFRESH", "AAP_TOKEN" })
      assert.equal(30, #v.RHDH_TOKEN)
      assert.equal(30, #v.RHDH_REFRESH)
      assert.equal("<unset>", v.AAP_TOKEN)
    end)

    it("prints the token only when asked: --format env", function()
      local dir = helper.tmpdir()
      local r = aap({ "token", "create", "--format", "env" }, nil, { cwd = dir })
      assert.equal(0, r.code, r.stderr)
      local pat = r.stdout:match("^AAP_PAT=(%w+)\n$")
      assert.is_truthy(pat)
      assert.is_nil(helper.readfile(dir .. "/.env"))
      no_secret(r, pat)
    end)

    it("prints export lines for eval with --format shell", function()
      local r = aap({ "token", "create", "--application", "RHDH Integration", "--format", "shell" })
      assert.equal(0, r.code, r.stderr)
      local p = io.popen("bash -c " .. helper.shquote(r.stdout .. '\nprintf "%s %s" "$AAP_TOKEN" "$REFRESH_TOKEN"'))
      local out = p:read("a")
      p:close()
      local a, b = out:match("^(%w+) (%w+)$")
      assert.equal(30, #a)
      assert.equal(30, #b)
      assert.equal(200, bearer_status(a))
    end)

    it("prints JSON with --format json", function()
      local r = aap({ "token", "create", "--format", "json", "--scope", "read" })
      assert.equal(0, r.code, r.stderr)
      local j = cjson.decode(r.stdout)
      assert.is_table(j)
      assert.equal(200, bearer_status(j.AAP_PAT or (j.values and j.values.AAP_PAT) or j.token))
    end)

    it("checks the output flags before anything is created (exit 1, no token)", function()
      local before = token_count()
      for _, argv in ipairs({
        { "token", "create", "--format", "k8s-secret", "--namespace", "a b" },
        { "token", "create", "--format", "k8s-secret", "--secret-name", "Bad_Name" },
        { "token", "create", "--format", "env", "--key", "1BAD" },
      }) do
        local r = aap(argv)
        assert.equal(1, r.code, table.concat(argv, " "))
        assert.equal("", r.stdout)
      end
      assert.equal(before, token_count())
    end)

    it("exits 2 with a clear line when the application does not exist", function()
      local r = aap({ "token", "create", "--application", "No Such App", "--format", "env" })
      assert.equal(2, r.code)
      assert.matches("No Such App", r.stderr)
      assert.equal("", r.stdout)
    end)

    it("exits 3 when a normal user asks for an application token", function()
      local u = sim.seed.user
      local before = token_count()
      local r = aap({ "token", "create", "--application", ("%d"):format(sim.seed.application.id), "--format", "env" },
        { AAP_USERNAME = u.username, AAP_PASSWORD = u.password })
      assert.equal(3, r.code)
      assert.equal(before, token_count())
    end)

    it("exits 3 for an external (LDAP) user, with the gateway's reason", function()
      local u = sim.seed.external
      local r = aap({ "token", "create", "--format", "env" }, { AAP_USERNAME = u.username, AAP_PASSWORD = u.password })
      assert.equal(3, r.code)
      assert.matches("external authentication provider", r.stderr)
    end)

    it("leaves the env file byte-for-byte unchanged when the gateway fails", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      local original = "# keep me\nOTHER=1\nAAP_PAT=old\n"
      helper.writefile(path, original, 416)
      sim:fault({ kind = "500", count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      local r = aap({ "token", "create", "--env-file", path })
      assert.equal(2, r.code)
      assert.equal(original, helper.readfile(path))
      assert.equal("640", helper.mode(path))
    end)

    it("names its own flags, not the Lua API's options, when it refuses plain http", function()
      for _, extra in ipairs({ { AAP_PASSWORD = "pw" }, { AAP_PASSWORD = false, AAP_TOKEN = "abcdef" } }) do
        extra.AAP_HOSTNAME = "http://gateway.example.invalid"
        local r = aap({ "whoami" }, extra)
        assert.equal(1, r.code, r.stderr)
        assert.matches("--allow-plain-http", r.stderr, 1, true)
        assert.is_nil(r.stderr:find("allow_plain_http", 1, true), r.stderr)
      end
    end)

    it("says nothing of a marker when the request never left (no connection): exit 4, no intent kept", function()
      local socket = require("socket")
      local srv = assert(socket.bind("127.0.0.1", 0))
      local _, port = srv:getsockname()
      srv:close()
      local dir = helper.tmpdir()
      local r = aap({ "token", "create", "--env-file", dir .. "/.env" }, { AAP_HOSTNAME = "http://127.0.0.1:" .. port })
      assert.equal(4, r.code, r.stderr)
      assert.is_nil(r.stderr:find("marker", 1, true), r.stderr)
      local st = cjson.decode(helper.readfile(dir .. "/.env.aap-state.json") or "{}")
      assert.is_nil(next(st.rotations or {}))
    end)

    it("names the marker of a stdout-only create whose answer was lost, and deletes nothing else", function()
      local socket = require("socket")
      local other = aap({ "token", "create", "--format", "json", "--description", "same words" })
      assert.equal(0, other.code, other.stderr)
      sim:fault({ kind = "delay", delay_ms = 1500, count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      local r = aap({ "token", "create", "--format", "env", "--description", "same words", "--timeout", "0.5" })
      assert.equal(4, r.code, r.stderr)
      local marker = r.stderr:match("description ends with (aap%-create:%x+)")
      assert.is_string(marker, r.stderr)
      local late
      for _ = 1, 200 do
        local _, body = sim:control("GET", "/api/gateway/v1/tokens/?description__contains=" .. marker)
        if body and body.count == 1 then late = body.results[1] break end
        socket.select(nil, nil, 0.02)
      end
      assert.is_table(late, "the delayed create never landed")
      assert.equal("same words " .. marker, late.description)
      assert.equal(2, token_count())
    end)

    it("records a create whose answer was lost, and the next run deletes the token made late", function()
      local socket = require("socket")
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      sim:fault({ kind = "delay", delay_ms = 1500, count = 1, method = "POST", path = "/api/gateway/v1/tokens/" })
      local r = aap({ "token", "create", "--env-file", path, "--timeout", "0.5" })
      assert.equal(4, r.code, r.stderr)
      assert.matches("recorded by its marker", r.stderr)
      -- the gateway finishes the request after the client gave up
      local late
      for _ = 1, 200 do
        local _, body = sim:control("GET", "/api/gateway/v1/tokens/?description__contains=aap-create:")
        if body and body.count == 1 then late = body.results[1] break end
        socket.select(nil, nil, 0.02)
      end
      assert.is_table(late, "the delayed create never landed")
      local st = cjson.decode(helper.readfile(path .. ".aap-state.json"))
      local recorded = false
      for _, it in pairs(st.rotations or {}) do
        if late.description:find(it.marker, 1, true) then recorded = true end
      end
      assert.is_true(recorded, "the late token is not recorded by its marker")
      local again = aap({ "token", "create", "--env-file", path })
      assert.equal(0, again.code, again.stderr)
      assert.equal(404, (sim:control("GET", ("/api/gateway/v1/tokens/%d/"):format(late.id))))
      assert.equal(1, token_count())
      st = cjson.decode(helper.readfile(path .. ".aap-state.json"))
      assert.is_nil(next(st.rotations or {}))
    end)

    it("creates nothing, or deletes it again, when the env file cannot be written", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      local original = "OTHER=1\n"
      helper.writefile(path, original)
      os.execute("chmod 644 " .. helper.shquote(path) .. "; chmod 555 " .. helper.shquote(dir))
      local before = token_count()
      local r = aap({ "token", "create", "--env-file", path }, nil, { wrap = unprivileged() })
      os.execute("chmod 755 " .. helper.shquote(dir))
      assert.equal(1, r.code, r.stderr)
      assert.equal(original, helper.readfile(path))
      assert.equal(before, token_count())
      assert.matches(dir, r.stderr, 1, true)
    end)
  end)

  describe("the .env file", function()
    local function create_into(path)
      local r = aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      return helper.source_env(path, { "AAP_TOKEN", "REFRESH_TOKEN" })
    end

    it("keeps comments and other keys, replaces in place, never duplicates", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      helper.writefile(path, "# RHDH\nexport BASE_URL=https://rhdh.example.com\nAAP_TOKEN=old1\n" ..
        "GREETING='hello world'\nAAP_TOKEN=old2\n# end\n")
      local v = create_into(path)
      local text = helper.readfile(path)
      assert.equal(1, select(2, text:gsub("AAP_TOKEN=", "")))
      assert.equal(1, select(2, text:gsub("REFRESH_TOKEN=", "")))
      assert.matches("^# RHDH\nexport BASE_URL=https://rhdh.example.com\nAAP_TOKEN=" .. v.AAP_TOKEN ..
        "\nGREETING='hello world'\n# end\nREFRESH_TOKEN=" .. v.REFRESH_TOKEN .. "\nAAP_CLIENT_ID=" ..
        sim.seed.application.client_id .. "\n$", text)
      local back = helper.source_env(path, { "BASE_URL", "GREETING" })
      assert.equal("https://rhdh.example.com", back.BASE_URL)
      assert.equal("hello world", back.GREETING)
    end)

    it("is rewritten with mode 0600 and keeps a stricter mode", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      helper.writefile(path, "X=1\n", 420)
      create_into(path)
      assert.equal("600", helper.mode(path))
      helper.writefile(path, "X=1\n", 256)
      create_into(path)
      assert.equal("400", helper.mode(path))
    end)

    it("a second run keeps the working token aap made; --replace replaces the values and revokes it", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      local first = create_into(path)
      local again = aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path })
      assert.equal(0, again.code, again.stderr)
      assert.matches("kept application token id=%d+ .* created none", again.stdout)
      assert.same(first, helper.source_env(path, { "AAP_TOKEN", "REFRESH_TOKEN" }))
      assert.equal(1, #(sim:token_ids()))
      local r = aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path, "--replace" })
      assert.equal(0, r.code, r.stderr)
      local second = helper.source_env(path, { "AAP_TOKEN", "REFRESH_TOKEN" })
      assert.are_not.equal(first.AAP_TOKEN, second.AAP_TOKEN)
      local text = helper.readfile(path)
      assert.equal("AAP_TOKEN=" .. second.AAP_TOKEN .. "\nREFRESH_TOKEN=" .. second.REFRESH_TOKEN ..
        "\nAAP_CLIENT_ID=" .. sim.seed.application.client_id .. "\n", text)
      assert.is_false(sim:token_works(first.AAP_TOKEN))
      assert.same({ sim:token_id(second.AAP_TOKEN) }, (sim:token_ids()))
    end)
  end)

  describe("token refresh", function()
    local function client_env()
      return { AAP_CLIENT_ID = sim.seed.application.client_id, AAP_CLIENT_SECRET = sim.seed.application.client_secret,
               AAP_PASSWORD = false }
    end

    it("swaps the pair in place; the old token stops working", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      assert.equal(0, aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path }).code)
      local old = helper.source_env(path, { "AAP_TOKEN", "REFRESH_TOKEN" })
      local r = aap({ "token", "refresh", "--env-file", path }, client_env())
      assert.equal(0, r.code, r.stderr)
      local new = helper.source_env(path, { "AAP_TOKEN", "REFRESH_TOKEN" })
      assert.are_not.equal(old.AAP_TOKEN, new.AAP_TOKEN)
      assert.are_not.equal(old.REFRESH_TOKEN, new.REFRESH_TOKEN)
      assert.equal(401, bearer_status(old.AAP_TOKEN))
      assert.equal(200, bearer_status(new.AAP_TOKEN))
      no_secret(r, old.AAP_TOKEN, new.AAP_TOKEN, new.REFRESH_TOKEN, sim.seed.application.client_secret)
      -- the new token's id is found and recorded
      local st = cjson.decode(helper.readfile(path .. ".aap-state.json"))
      local sst, tok = sim:control("GET", ("/api/gateway/v1/tokens/%d/"):format(st.keys.AAP_TOKEN.id))
      assert.equal(200, sst)
      assert.equal("", tok.description)
    end)

    it("takes the client credentials from the env file too", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      helper.writefile(path, ("AAP_CLIENT_ID=%s\nAAP_CLIENT_SECRET=%s\n"):format(sim.seed.application.client_id,
        sim.seed.application.client_secret))
      assert.equal(0, aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path }).code)
      local r = aap({ "token", "refresh", "--env-file", path }, { AAP_PASSWORD = false })
      assert.equal(0, r.code, r.stderr)
    end)

    it("exits 3 on an expired refresh token and leaves the file as it was", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      assert.equal(0, aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path }).code)
      local before = helper.readfile(path)
      sim:advance(2628000 + 60)
      local r = aap({ "token", "refresh", "--env-file", path }, client_env())
      assert.equal(3, r.code)
      assert.matches("expired", r.stderr)
      assert.equal(before, helper.readfile(path))
    end)

    it("exits 3 with a wrong client secret", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      assert.equal(0, aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path }).code)
      local e = client_env()
      e.AAP_CLIENT_SECRET = "not-the-secret"
      local r = aap({ "token", "refresh", "--env-file", path }, e)
      assert.equal(3, r.code)
      assert.is_nil(r.stderr:find("not-the-secret", 1, true))
    end)

    it("exits 1 when the file holds no refresh token", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      helper.writefile(path, "AAP_PAT=x\n")
      local r = aap({ "token", "refresh", "--env-file", path }, client_env())
      assert.equal(1, r.code)
      assert.matches("REFRESH_TOKEN", r.stderr)
    end)

    it("does not spend the refresh token when the file cannot be replaced", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      assert.equal(0, aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path }).code)
      local v = helper.source_env(path, { "AAP_TOKEN" })
      local before = helper.readfile(path)
      os.execute(("chmod 644 %s %s.aap-state.json; chmod 555 %s"):format(helper.shquote(path),
        helper.shquote(path), helper.shquote(dir)))
      local r = aap({ "token", "refresh", "--env-file", path }, client_env(), { wrap = unprivileged() })
      os.execute("chmod 755 " .. helper.shquote(dir))
      assert.equal(1, r.code, r.stderr)
      assert.matches(dir, r.stderr, 1, true)
      assert.equal(before, helper.readfile(path))
      assert.equal(200, bearer_status(v.AAP_TOKEN))
    end)
  end)

  describe("list, show, revoke", function()
    it("lists tokens as a table and as JSON, without values", function()
      local dir = helper.tmpdir()
      local r0 = aap({ "token", "create", "--env-file", dir .. "/.env", "--description", "listed one" })
      assert.equal(0, r0.code, r0.stderr)
      local pat = helper.source_env(dir .. "/.env", { "AAP_PAT" }).AAP_PAT
      local r = aap({ "token", "list" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("ID%s+KIND", r.stdout)
      assert.matches("listed one", r.stdout)
      assert.is_nil(r.stdout:find(pat, 1, true))
      local j = aap({ "token", "list", "--format", "json", "--kind", "personal" })
      assert.equal(0, j.code)
      local items = cjson.decode(j.stdout)
      assert.is_true(#items >= 1)
      for _, t in ipairs(items) do assert.equal("personal", t.kind) end
    end)

    it("shows control characters from the server escaped, never raw", function()
      local st = sim:control("POST", "/api/gateway/v1/tokens/", { description = "evil\27[31mred\nsecond line\7" })
      assert.equal(201, st)
      local r = aap({ "token", "list" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("evil\\x1b[31mred\\x0asecond line\\x07", r.stdout, 1, true)
      assert.is_nil(r.stdout:find("[\27\7]"))
      assert.equal(2, select(2, r.stdout:gsub("\n", "")), "one header line and one row")
    end)

    it("never echoes a token value given where an id belongs", function()
      for _, argv in ipairs({ { "token", "revoke", "s3cretTOKENvalue" }, { "token", "show", "s3cretTOKENvalue" },
                              { "token", "prune", "--user", "s3cretTOKENvalue", "--dry-run" } }) do
        local r = aap(argv)
        assert.equal(1, r.code)
        assert.is_nil((r.stderr .. r.stdout):find("s3cretTOKENvalue", 1, true), r.stderr)
        assert.matches("id is a whole number", r.stderr)
      end
    end)

    it("takes only a numeric --user (exit 1 otherwise)", function()
      local r = aap({ "token", "list", "--user", "admin" })
      assert.equal(1, r.code)
      assert.matches("user id", r.stderr)
      assert.equal(0, aap({ "token", "list", "--user", "2" }).code)
    end)

    it("shows one token and exits 2 for an unknown id", function()
      local r = aap({ "token", "create", "--format", "json" })
      local st, list = sim:control("GET", "/api/gateway/v1/tokens/?order_by=-id&page_size=1")
      assert.equal(200, st)
      local id = list.results[1].id
      assert.equal(0, r.code)
      local s = aap({ "token", "show", ("%d"):format(id), "--format", "json" })
      assert.equal(0, s.code, s.stderr)
      assert.equal(id, cjson.decode(s.stdout).id)
      local n = aap({ "token", "show", "999999" })
      assert.equal(2, n.code)
    end)

    it("revokes by id", function()
      local dir = helper.tmpdir()
      assert.equal(0, aap({ "token", "create", "--env-file", dir .. "/.env" }).code)
      local st = cjson.decode(helper.readfile(dir .. "/.env.aap-state.json"))
      local id = st.keys.AAP_PAT.id
      local r = aap({ "token", "revoke", ("%d"):format(id) })
      assert.equal(0, r.code, r.stderr)
      assert.equal(404, (sim:control("GET", ("/api/gateway/v1/tokens/%d/"):format(id))))
    end)

    it("revokes the token in an env file and removes it from the file", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      helper.writefile(path, "KEEP=1\n")
      assert.equal(0, aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path }).code)
      local v = helper.source_env(path, { "AAP_TOKEN" })
      local r = aap({ "token", "revoke", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      assert.equal(401, bearer_status(v.AAP_TOKEN))
      -- the client id is the application's, not the token's: it stays for the next token
      assert.equal("KEEP=1\nAAP_CLIENT_ID=" .. sim.seed.application.client_id .. "\n", helper.readfile(path))
    end)
  end)

  describe("revoking an application token", function()
    it("also revokes its refresh token when the client is known", function()
      sim:configure({ refresh_after_delete = true })
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      assert.equal(0, aap({ "token", "create", "--application", "RHDH Integration", "--env-file", path }).code)
      local v = helper.source_env(path, { "REFRESH_TOKEN" })
      local client = { AAP_CLIENT_ID = sim.seed.application.client_id,
                       AAP_CLIENT_SECRET = sim.seed.application.client_secret }
      local r = aap({ "token", "revoke", "--env-file", path }, client)
      assert.equal(0, r.code, r.stderr)
      local form = ("grant_type=refresh_token&refresh_token=%s&client_id=%s&client_secret=%s"):format(
        v.REFRESH_TOKEN, client.AAP_CLIENT_ID, client.AAP_CLIENT_SECRET)
      local st, body = sim:json("POST", "/o/token/", { body = form,
        headers = { ["content-type"] = "application/x-www-form-urlencoded" } })
      assert.equal(400, st)
      assert.equal("invalid_grant", body.error)
    end)
  end)

  describe("applications", function()
    it("lists, shows by name and by id", function()
      local r = aap({ "app", "list", "--format", "json" })
      assert.equal(0, r.code, r.stderr)
      local apps = cjson.decode(r.stdout)
      local found
      for _, a in ipairs(apps) do if a.name == "RHDH Integration" then found = a end end
      assert.is_table(found)
      assert.is_nil(r.stdout:find(sim.seed.application.client_secret, 1, true))
      local s = aap({ "app", "show", "RHDH Integration", "--format", "json" })
      assert.equal(0, s.code, s.stderr)
      assert.equal(found.id, cjson.decode(s.stdout).id)
      assert.equal(0, aap({ "app", "show", ("%d"):format(found.id) }).code)
    end)

    it("creates an application and saves its client to an env file", function()
      local dir = helper.tmpdir()
      local path = dir .. "/.env"
      local r = aap({ "app", "create", "--name", "Spec App", "--organization", "Default", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      local v = helper.source_env(path, { "AAP_CLIENT_ID", "AAP_CLIENT_SECRET" })
      assert.equal(40, #v.AAP_CLIENT_ID)
      assert.equal(128, #v.AAP_CLIENT_SECRET)
      no_secret(r, v.AAP_CLIENT_SECRET)
      -- a name that is not unique any more is reported as ambiguous only across organizations;
      -- the same name twice in one organization is refused by the gateway (exit 2)
      local again = aap({ "app", "create", "--name", "Spec App", "--organization", "Default", "--format", "json" })
      assert.equal(2, again.code)
      -- a second application into the same file would unpair the first one's client: refused
      -- before the gateway is asked, the file as it was
      local before = helper.readfile(path)
      sim:clear_log()
      local third = aap({ "app", "create", "--name", "Spec App 3", "--organization", "Default", "--env-file", path })
      assert.equal(1, third.code)
      assert.matches("already holds AAP_CLIENT_ID", third.stderr)
      assert.equal(before, helper.readfile(path))
      assert.equal(0, #sim:log())
    end)
  end)

  describe("k8s-secret", function()
    it("prints a Secret manifest that parses back with the same values", function()
      local ok, yaml = pcall(require, "lyaml")
      if not ok then pending("lua-yaml missing") return end
      local r = aap({ "token", "create", "--application", "RHDH Integration", "--format", "k8s-secret",
                      "--secret-name", "rhdh-aap", "--namespace", "rhdh" })
      assert.equal(0, r.code, r.stderr)
      local doc = yaml.load(r.stdout)
      assert.equal("Secret", doc.kind)
      assert.equal("Opaque", doc.type)
      assert.equal("rhdh-aap", doc.metadata.name)
      assert.equal("rhdh", doc.metadata.namespace)
      assert.equal("true", doc.metadata.labels["rhdh.redhat.com/ext-config-sync"])
      local data = doc.stringData
      assert.equal(30, #data.AAP_TOKEN)
      assert.equal(200, bearer_status(data.AAP_TOKEN))
    end)
  end)

  describe("files aap may not trust (issue #11)", function()
    local dir, path
    before_each(function()
      dir = helper.tmpdir()
      path = dir .. "/.env"
    end)
    after_each(helper.cleanup)

    -- Another user's token, that nothing in the env file's records may reach.
    local function victim()
      local st, body = sim:control("POST", "/__sim/tokens", { count = 1, user = sim.seed.user.id })
      assert.equal(201, st)
      return math.tointeger(body.ids[1])
    end

    local function exists(id)
      return sim:control("GET", ("/api/gateway/v1/tokens/%d/"):format(id)) == 200
    end

    -- Runs token create into `target`: refused (exit 1, the reason on stderr), nothing created.
    local function refused_create(target, pattern, opts)
      local before = token_count()
      local r = aap({ "token", "create", "--env-file", target }, nil, opts)
      assert.equal(1, r.code, r.stderr)
      assert.matches(pattern, r.stderr)
      assert.equal(1, select(2, r.stderr:gsub("\n", "")), "one line: " .. r.stderr)
      assert.equal(before, token_count(), "a token was created before the refusal")
      return r
    end

    it("refuses another user's state file: its empty marker deletes nothing", function()
      local other = victim()
      helper.writefile(path .. ".aap-state.json", cjson.encode({ version = 1, keys = {}, pending = {},
        rotations = { AAP_PAT = { strategy = "recreate", origin = "create", marker = "", started = 1 } } }), 420)
      assert(os.execute("chown 65534 " .. helper.shquote(path .. ".aap-state.json")))
      refused_create(path, "belongs to uid 65534, not to you")
      assert.is_true(exists(other))
      -- the same content in a file of the user's own is refused for its marker
      assert(os.execute("chown 0 " .. helper.shquote(path .. ".aap-state.json")))
      assert(os.execute("chmod 600 " .. helper.shquote(path .. ".aap-state.json")))
      refused_create(path, "marker is not aap%-create: followed by 16 lowercase hex digits")
      assert.is_true(exists(other))
      assert.is_nil(helper.readfile(path))
    end)

    it("refuses another user's lock file before creating anything", function()
      helper.writefile(path .. ".aap-lock", "", 420)
      assert(os.execute("chown 65534 " .. helper.shquote(path .. ".aap-lock")))
      refused_create(path, "aap%-lock belongs to uid 65534")
    end)

    -- A token created into the env file, another user's token, and a rotation (not due) run
    -- after edit(state, other_id) changed the user's own state file. Returns the rotate run,
    -- the other token's id and a function that runs it again after another edit.
    local function rotate_after(edit)
      local r = aap({ "token", "create", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      local other = victim()
      local spath = path .. ".aap-state.json"
      local st = cjson.decode(helper.readfile(spath))
      helper.writefile(dir .. "/p.lua", 'return { max_age = "30d" }')
      local function again(ed)
        ed(st, other)
        helper.writefile(spath, cjson.encode(st))
        local res = aap({ "token", "rotate", "--policy", dir .. "/p.lua", "--env-file", path })
        assert.equal(0, res.code, res.stderr)
        return res
      end
      return again(edit), other, again
    end

    it("revokes a pending entry only when the gateway's token is the one recorded", function()
      local r, other, again = rotate_after(function(st, id)
        st.pending = { { id = id, key = "AAP_PAT", kind = "personal", hooks_done = true, not_before = 0 } }
      end)
      assert.matches("nothing recorded proves that token id=" .. other, r.stderr)
      assert.is_true(exists(other), "an unrelated token was revoked")
      -- recorded metadata that does not match the gateway's token: not revoked either
      local _, tok = sim:control("GET", ("/api/gateway/v1/tokens/%d/"):format(other))
      r = again(function(st, id)
        st.pending = { { id = id, key = "AAP_PAT", kind = "personal", hooks_done = true, not_before = 0,
                         created = tok.created:sub(1, 19) .. "Z", user = sim.seed.admin.id } }
      end)
      assert.matches("is not the one rotated out", r.stderr)
      assert.is_true(exists(other), "an unrelated token was revoked")
      assert.same({}, cjson.decode(helper.readfile(path .. ".aap-state.json")).pending)
    end)

    it("deletes an interrupted rotation's new token by its marker only, not by a recorded id", function()
      local r, other = rotate_after(function(st, id)
        st.rotations = { AAP_PAT = { strategy = "recreate", marker = "aap-rotate:0123456789abcdef", started = 1,
                                     new_id = id, new_fp = "0123456789abcdef", kind = "personal" } }
      end)
      assert.matches("rolled back an interrupted rotation", r.stderr)
      assert.is_true(exists(other), "an unrelated token was deleted")
    end)

    it("refuses another user's env file, and one others may write to, leaving it as it was", function()
      helper.writefile(path, "OTHER=1\n", 438)
      assert(os.execute("chmod 666 " .. helper.shquote(path)))
      refused_create(path, "writable by group or others %(mode 0666%): run `chmod 600 ")
      assert(os.execute("chown 65534 " .. helper.shquote(path)))
      refused_create(path, "belongs to uid 65534, not to you")
      assert.equal("OTHER=1\n", helper.readfile(path))
      assert.equal("666", helper.mode(path))
    end)

    it("refuses a symlink: the file it points to keeps its text and mode", function()
      helper.writefile(dir .. "/bashrc", "echo hi\n", 420)
      assert(os.execute("ln -s bashrc " .. helper.shquote(path)))
      refused_create(path, "is a symbolic link")
      assert.equal("echo hi\n", helper.readfile(dir .. "/bashrc"))
      assert.equal("644", helper.mode(dir .. "/bashrc"))
    end)

    it("refuses a FIFO without hanging, and a device node without replacing it", function()
      assert(os.execute("mkfifo " .. helper.shquote(path)))
      -- `timeout` only turns a hang into a failure
      refused_create(path, "is a FIFO", { wrap = { "timeout", "60" } })
      local node = dir .. "/null"
      assert(os.execute("mknod " .. helper.shquote(node) .. " c 1 3"))
      refused_create(node, "is a character device")
      assert.equal("character special file", io.popen("stat -c %F " .. helper.shquote(node)):read("l"))
    end)

    it("exits 1 for an env file with a NUL byte", function()
      helper.writefile(path, "A=1\0\n", 384)
      refused_create(path, "holds a NUL byte")
    end)

    it("removes the temporary file a run killed at the rename left behind", function()
      local r = aap({ "token", "create", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      local left = dir .. "/..env.tmp-0123456789abcdef"
      helper.writefile(left, helper.readfile(path), 384)
      r = aap({ "token", "create", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      assert.is_nil(helper.readfile(left), "the leftover temporary file (with a token) is still there")
    end)
  end)

  describe("process hygiene", function()
    it("spawns no child process for HTTP (so no secret reaches any argv)", function()
      if not os.execute("command -v strace >/dev/null 2>&1") then pending("strace not installed") return end
      local dir = helper.tmpdir()
      local trace = dir .. "/trace"
      local e = env()
      e.STRACE_OUT = trace
      local r = helper.run({ "token", "create", "--application", "RHDH Integration", "--env-file", dir .. "/.env" },
        { env = e, wrap = { "strace", "-f", "-qq", "-e", "trace=execve", "-o", trace } })
      assert.equal(0, r.code, r.stderr)
      local t = helper.readfile(trace) or ""
      -- Only the interpreter itself is executed (under `make sanitize`, through the dynamic
      -- loader): no curl, no shell, nothing that would carry a secret in its argv.
      local n = 0
      for prog in t:gmatch('execve%("([^"]*)"') do
        n = n + 1
        assert.is_truthy(prog:match("/lua5%.4$") or prog:match("/ld%-linux[^/]*$"), prog)
      end
      assert.is_true(n >= 1 and n <= 2, t)
      assert.is_nil(t:find(sim.admin_password, 1, true))
    end)
  end)
end)
