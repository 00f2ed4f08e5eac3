-- aap sim: the HTTP/1.1 server (keep-alive, pipelining, concurrency, malformed input, caps,
-- idle timeout, TLS), process behaviour (stdout, signals), faults, the log and the controls.
local helper = require("helper")
local socket = require("socket")

local B = "/api/gateway/v1/"

local function hostport(url)
  local host, port = url:match("^https?://%[?([^%]/]-)%]?:(%d+)$")
  return host, tonumber(port)
end

local function connect(sim)
  local host, port = hostport(sim.url)
  local c = assert(socket.connect(host, port))
  c:settimeout(10)
  return c
end

-- Read one response from a raw socket: status, headers (lowercase), body (by Content-Length).
local function read_response(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  local headers = {}
  while true do
    local h = assert(c:receive("*l"))
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.*)$")
    headers[k:lower()] = v
  end
  local n = tonumber(headers["content-length"] or "0")
  local body = ""
  if n > 0 then body, err = c:receive(n) end
  return status, headers, body, err
end

local function curl(args)
  local p = io.popen("curl -s " .. args .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  return out
end

describe("aap sim server", function()
  local sim

  setup(function() sim = helper.start_sim() end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset() end)

  describe("HTTP/1.1", function()
    it("keeps a connection alive and answers pipelined requests in order", function()
      sim:clear_log()
      local c = connect(sim)
      c:send("GET " .. B .. "ping/ HTTP/1.1\r\nHost: x\r\n\r\nGET /o/ HTTP/1.1\r\nHost: x\r\n\r\n"
        .. "GET " .. B .. "nope/ HTTP/1.1\r\nHost: x\r\n\r\n")
      local s1, _, b1 = read_response(c)
      local s2, _, b2 = read_response(c)
      local s3 = read_response(c)
      c:close()
      assert.equal(200, s1)
      assert.matches('"status":"good"', b1)
      assert.equal(200, s2)
      assert.matches('"token":"/o/token/"', b2)
      assert.equal(404, s3)
      local log = sim:log()
      assert.equal(3, #log)
      assert.equal(log[1].conn, log[2].conn)
      assert.equal(log[1].conn, log[3].conn)
    end)

    it("HTTP/1.0 closes after the answer; Connection: close is honoured", function()
      local c = connect(sim)
      c:send("GET " .. B .. "ping/ HTTP/1.0\r\n\r\n")
      local st, h = read_response(c)
      assert.equal(200, st)
      assert.equal("close", h.connection)
      local data, err = c:receive(1)
      assert.is_nil(data)
      assert.equal("closed", err)
      c:close()
    end)

    it("keeps an HTTP/1.0 connection alive when asked", function()
      local c = connect(sim)
      c:send("GET " .. B .. "ping/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
      local st, h = read_response(c)
      assert.equal(200, st)
      assert.equal("keep-alive", h.connection)
      c:send("GET /o/ HTTP/1.0\r\n\r\n")
      assert.equal(200, (read_response(c)))
      c:close()
    end)

    it("reads chunked request bodies", function()
      local c = connect(sim)
      local json = '{"description":"chunked","scope":"read"}'
      local auth = require("mime").b64("admin:" .. sim.admin_password)
      c:send("POST " .. B .. "tokens/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " .. auth
        .. "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. string.format("%x\r\n%s\r\n", 10, json:sub(1, 10))
        .. string.format("%x;ext=1\r\n%s\r\n", #json - 10, json:sub(11)) .. "0\r\n\r\n")
      local st, _, body = read_response(c)
      c:close()
      assert.equal(201, st)
      assert.equal("chunked", helper.json.decode(body).description)
    end)

    it("sends 100 Continue when asked", function()
      local c = connect(sim)
      local body = "grant_type=x"
      c:send("POST /o/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        .. "Expect: 100-continue\r\nContent-Length: " .. #body .. "\r\n\r\n")
      assert.equal("HTTP/1.1 100 Continue", c:receive("*l"))
      assert.equal("", c:receive("*l"))
      c:send(body)
      local st = read_response(c)
      c:close()
      assert.equal(400, st)
    end)

    local malformed = {
      { "random bytes", "\0\1\2\255\254garbage\r\n\r\n", 400 },
      { "a bad request line", "HELLO\r\n\r\n", 400 },
      { "a bad method", "G(T / HTTP/1.1\r\n\r\n", 400 },
      { "a bad target", "GET nopath HTTP/1.1\r\n\r\n", 400 },
      { "an unknown version", "GET / HTTP/2.0\r\n\r\n", 505 },
      { "a header without a colon", "GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400 },
      { "folded headers", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400 },
      { "a bad Content-Length", "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400 },
      { "conflicting Content-Lengths", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400 },
      { "both Content-Length and chunked", "POST / HTTP/1.1\r\nContent-Length: 1\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
      { "a bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400 },
      { "an unknown transfer coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501 },
      { "a body over 1 MiB", "POST " .. B .. "tokens/ HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413 },
      { "a chunked body over 1 MiB", "POST " .. B .. "tokens/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        .. "100001\r\n", 413 },
      { "a header section over the cap", "GET / HTTP/1.1\r\nX-Big: " .. string.rep("a", 40000) .. "\r\n\r\n", 431 },
      { "a request line over the cap", "GET /" .. string.rep("a", 40000) .. " HTTP/1.1\r\n\r\n", 414 },
    }
    for _, case in ipairs(malformed) do
      it("answers " .. case[3] .. " to " .. case[1] .. ", closes, and keeps serving", function()
        local c = connect(sim)
        c:send(case[2])
        local st, h = read_response(c)
        c:close()
        assert.equal(case[3], st)
        assert.equal("close", h.connection)
        local ok = sim:json("GET", B .. "ping/")
        assert.equal(200, ok)
      end)
    end

    it("survives a burst of random garbage on many connections", function()
      math.randomseed(42)
      for _ = 1, 30 do
        local c = connect(sim)
        local bytes = {}
        for i = 1, math.random(1, 3000) do bytes[i] = string.char(math.random(0, 255)) end
        c:send(table.concat(bytes))
        c:close()
      end
      local st = sim:json("GET", B .. "ping/")
      assert.equal(200, st)
    end)

    it("never answers 5xx to random (bounded, seeded) REST requests", function()
      math.randomseed(1234)
      local paths = { "tokens/", "tokens/1/", "applications/", "applications/1/", "organizations/", "organizations/1/",
        "users/2/tokens/", "users/2/personal_tokens/", "applications/1/tokens/", "me/", "users/", "users/2/" }
      local keys = { "name", "description", "scope", "application", "organization", "client_type", "user",
        "authorization_grant_type", "skip_authorization", "app_url", "page", "page_size", "order_by", "id__in",
        "name__icontains", "application__isnull", "not__user", "or__id", "created__gt", "user__username" }
      local vals = { "1", "0", "-1", "abc", "", "null", "true", "read", "2026-01-01T00:00:00Z", "1,2", "%FF", "-id",
        "organization__name", "x__y__z", string.rep("a", 600) }
      local jvals = { 1, 0, -5, 1.5, "x", "", true, false, helper.json.null, {}, { 1 }, { a = 1 }, "read write",
        "confidential", "password", "http://x.example", string.rep("z", 600), 1e300 }
      local methods = { "GET", "POST", "PUT", "PATCH", "DELETE" }
      local bad = {}
      for _ = 1, 300 do
        local p = B .. paths[math.random(#paths)]
        local q = {}
        for _ = 1, math.random(0, 3) do q[#q + 1] = keys[math.random(#keys)] .. "=" .. vals[math.random(#vals)] end
        if #q > 0 then p = p .. "?" .. table.concat(q, "&") end
        local m = methods[math.random(#methods)]
        local body = {}
        for _ = 1, math.random(0, 4) do body[keys[math.random(#keys)]] = jvals[math.random(#jvals)] end
        local opts = { basic = { "admin", sim.admin_password } }
        if m ~= "GET" and m ~= "DELETE" then opts.json = body end
        local st = sim:raw(m, p, opts)
        if not st or st >= 500 then bad[#bad + 1] = m .. " " .. p .. " " .. tostring(st) end
      end
      assert.same({}, bad)
    end)

    it("one slow client does not block the others", function()
      local slow = connect(sim)
      slow:send("GET " .. B .. "ping/ HTTP/1.1\r\nHost: x\r\n") -- never finishes its head
      for _ = 1, 5 do
        assert.equal(200, (sim:json("GET", B .. "ping/")))
      end
      slow:close()
    end)

    it("serves 64 parallel keep-alive clients", function()
      sim:clear_log()
      local dir = helper.tmpdir()
      local url = sim.url .. B .. "ping/"
      local script = {}
      for i = 1, 64 do
        script[#script + 1] = ("curl -s -w '%%{http_code}\\n' -o /dev/null -o /dev/null -o /dev/null "
          .. "%s %s %s > %s/%d &"):format(url, url, url, dir, i)
      end
      script[#script + 1] = "wait"
      os.execute(table.concat(script, "\n"))
      local ok = 0
      for i = 1, 64 do
        local out = helper.readfile(dir .. "/" .. i) or ""
        for code in out:gmatch("%d+") do
          if code == "200" then ok = ok + 1 end
        end
      end
      helper.cleanup()
      assert.equal(64 * 3, ok)
      local conns = {}
      for _, e in ipairs(sim:log()) do conns[e.conn] = (conns[e.conn] or 0) + 1 end
      local nconn = 0
      for _, count in pairs(conns) do
        nconn = nconn + 1
        assert.equal(3, count) -- each client's three requests on one connection
      end
      assert.equal(64, nconn)
    end)

    it("lists 10,000 tokens, 200 per page", function()
      local st, body = sim:control("POST", "/__sim/tokens", { count = 10000 })
      assert.equal(201, st)
      assert.same({ 1, 10000 }, body.ids)
      local url, seen, pages = B .. "tokens/?page_size=200", 0, 0
      while url ~= helper.json.null do
        local s, p = sim:json("GET", url, { basic = { "admin", sim.admin_password } })
        assert.equal(200, s, sim:stderr():sub(-1500))
        seen = seen + #p.results
        pages = pages + 1
        url = p.next
      end
      assert.equal(10000, seen)
      assert.equal(50, pages)
    end)
  end)

  describe("faults", function()
    local function ping() return sim:raw("GET", B .. "ping/") end

    for _, code in ipairs{ 500, 502, 503, 504 } do
      it("kind " .. code .. " answers once with a non-JSON body, then normally", function()
        assert.equal(200, (sim:fault({ kind = tostring(code) })))
        local st, body, h = ping()
        assert.equal(code, st)
        assert.is_nil(helper.json.decode(body))
        assert.is_nil(h["content-type"]:match("json"))
        assert.equal(200, (ping()))
      end)
    end

    it("429 with Retry-After, count and path matching", function()
      sim:fault({ kind = "429", count = 2, path = B .. "ping/", retry_after = 7 })
      local st0 = sim:raw("GET", "/o/")
      assert.equal(200, st0)
      for _ = 1, 2 do
        local st, _, h = ping()
        assert.equal(429, st)
        assert.equal("7", h["retry-after"])
      end
      assert.equal(200, (ping()))
    end)

    it("method matching, and control requests never consume faults", function()
      sim:fault({ kind = "503", method = "POST" })
      assert.equal(200, (ping()))
      assert.equal(200, (sim:control("GET", "/__sim/clock")))
      local st, body = sim:control("GET", "/__sim/faults")
      assert.equal(200, st)
      assert.equal(1, #body.faults)
      assert.equal(503, (sim:raw("POST", "/o/token/")))
      assert.equal(0, #select(2, sim:control("DELETE", "/__sim/faults")).faults)
    end)

    it("delay answers normally, without blocking other connections", function()
      sim:clear_log()
      sim:fault({ kind = "delay", delay_ms = 2000, path = B .. "ping/" })
      local slow = connect(sim)
      slow:send("GET " .. B .. "ping/ HTTP/1.1\r\nHost: x\r\n\r\n")
      -- wait (bounded) until the slow request has taken its fault
      for _ = 1, 500 do
        local _, f = sim:control("GET", "/__sim/faults")
        if #f.faults == 0 then break end
      end
      assert.equal(200, (sim:raw("GET", "/o/")))
      local st = read_response(slow)
      slow:close()
      assert.equal(200, st)
      local log = sim:log()
      assert.equal(2, #log)
      assert.equal("/o/", log[1].path) -- the quick request finished first
      assert.equal(B .. "ping/", log[2].path)
      assert.equal("delay", log[2].fault)
      assert.equal(200, log[2].status)
    end)

    it("close sends the headers and half the body", function()
      sim:fault({ kind = "close" })
      local c = connect(sim)
      c:send("GET /o/ HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, h, body, err = read_response(c)
      c:close()
      assert.equal(200, st)
      assert.equal("closed", err)
      assert.is_nil(body)
      assert.is_true(tonumber(h["content-length"]) > 10)
    end)

    it("malformed_json answers 200 with truncated JSON", function()
      sim:fault({ kind = "malformed_json" })
      local st, body, h = ping()
      assert.equal(200, st)
      assert.equal("application/json", h["content-type"])
      assert.is_nil(helper.json.decode(body))
    end)

    it("huge_body streams the given size", function()
      sim:fault({ kind = "huge_body", size = 3 * 1024 * 1024 + 5 })
      local st, body, h = ping()
      assert.equal(200, st)
      assert.equal(tostring(3 * 1024 * 1024 + 5), h["content-length"])
      assert.equal(3 * 1024 * 1024 + 5, #body)
    end)

    it("redirect answers 302 to the location", function()
      sim:fault({ kind = "redirect", location = "https://elsewhere.invalid/" })
      local out = curl("-o /dev/null -w '%{http_code} %{redirect_url}' " .. helper.shquote(sim.url .. B .. "ping/"))
      assert.equal("302 https://elsewhere.invalid/exit=0", out:gsub("\n", ""))
    end)

    it("reset closes without answering", function()
      sim:fault({ kind = "reset" })
      local c = connect(sim)
      c:send("GET /o/ HTTP/1.1\r\nHost: x\r\n\r\n")
      local line, err = c:receive("*l")
      c:close()
      assert.is_nil(line)
      assert.is_truthy(err == "closed" or err:match("reset"))
      assert.equal(200, (ping()))
    end)

    it("rejects unknown kinds", function()
      local st, body = sim:fault({ kind = "explode" })
      assert.equal(400, st)
      assert.matches("unknown fault kind", body.detail)
    end)

    it("latency_ms delays every request and still answers", function()
      sim:configure({ latency_ms = 50 })
      assert.equal(200, (ping()))
    end)
  end)

  describe("log and controls", function()
    it("logs method, path with secrets redacted, status, auth and user; no headers or bodies", function()
      sim:clear_log()
      sim:raw("GET", B .. "ping/?token=abc&page=2&client_secret=s")
      sim:json("GET", B .. "me/", { basic = { "admin", sim.admin_password } })
      sim:json("GET", B .. "me/", { bearer = "not-a-token" })
      local log = sim:log()
      assert.equal(3, #log)
      assert.equal("bearer", log[3].auth)
      assert.equal(401, log[3].status)
      assert.equal(B .. "ping/?token=REDACTED&page=2&client_secret=REDACTED", log[1].path)
      assert.equal("none", log[1].auth)
      assert.equal(helper.json.null, log[1].user)
      assert.equal("basic", log[2].auth)
      assert.equal("admin", log[2].user)
      assert.equal(200, log[2].status)
      assert.is_true(log[2].seq > log[1].seq)
      assert.is_nil(helper.json.encode(log):find(sim.admin_password, 1, true))
    end)

    it("controls need a superuser: 401 anonymous, 403 others; bearer superusers work", function()
      local st, body = sim:json("GET", "/__sim/seed")
      assert.equal(401, st)
      assert.same({ detail = "Authentication credentials were not provided." }, body)
      local u = sim.seed.user
      st = sim:json("GET", "/__sim/seed", { basic = { u.username, u.password } })
      assert.equal(403, st)
      local _, t = sim:json("POST", B .. "tokens/", { basic = { "admin", sim.admin_password }, json = {} })
      st = sim:json("GET", "/__sim/clock", { bearer = t.token })
      assert.equal(200, st)
      st = sim:control("GET", "/__sim/nothing")
      assert.equal(404, st)
      st = sim:control("PUT", "/__sim/clock")
      assert.equal(405, st)
    end)

    it("clock, config and reset", function()
      local st, c = sim:advance(86400 * 400)
      assert.equal(200, st)
      assert.equal(86400 * 400, c.offset)
      local _, _, h = sim:raw("GET", B .. "ping/")
      local year = tonumber(os.date("!%Y")) -- the Date header follows the emulator's clock
      local hy = tonumber(h.date:match(" (%d%d%d%d) "))
      assert.is_true(hy == year + 1 or hy == year + 2)
      st, c = sim:configure({ page_size = 7 })
      assert.equal(200, st)
      assert.equal(7, c.page_size)
      st = sim:configure({ nonsense = 1 })
      assert.equal(400, st)
      st = sim:configure({ flavor = "mainframe" })
      assert.equal(400, st)
      sim:reset()
      local _, clock = sim:control("GET", "/__sim/clock")
      assert.equal(0, clock.offset)
      local _, cfg = sim:control("GET", "/__sim/config")
      assert.equal(50, cfg.page_size)
    end)

    it("are 404 when the sim runs without --controls", function()
      local s2 = helper.start_sim({ controls = false })
      local st = s2:json("GET", "/__sim/seed", { basic = { "admin", s2.admin_password } })
      s2:stop()
      assert.equal(404, st)
    end)
  end)

  describe("the process", function()
    it("prints only the URL on stdout, the application's credentials on stderr, exits 0 on SIGTERM", function()
      local s2 = helper.start_sim()
      local err = s2:stderr()
      assert.matches(s2.seed.application.client_id, err, 1, true)
      assert.is_nil(err:find(helper.ADMIN_PASSWORD, 1, true)) -- given, so not printed
      os.execute("kill -TERM " .. s2.pid)
      local rest = s2.handle:read("a")
      local ok, how, code = s2.handle:close()
      s2.handle = nil
      os.remove(s2.errlog)
      assert.equal("", rest)
      assert.is_true(ok)
      assert.equal("exit", how)
      assert.equal(0, code)
    end)

    it("takes the admin password from AAP_SIM_ADMIN_PASSWORD, else draws one and prints it on stderr", function()
      local function launch(env)
        local errlog = os.tmpname()
        local h = io.popen(("echo $$; exec env -u AAP_SIM_ADMIN_PASSWORD %s lua5.4 %s sim 2>%s"):format(env,
          helper.shquote(helper.AAP), helper.shquote(errlog)))
        local pid, url = h:read("l"), h:read("l")
        local function stop()
          os.execute("kill -TERM " .. pid)
          h:close()
          os.remove(errlog)
        end
        return url, function() return helper.readfile(errlog) end, stop
      end
      -- the password goes to curl in a 0600 config file, not in argv
      local function me_status(url, pw)
        local cfg = os.tmpname()
        helper.writefile(cfg, ('url = "%s/api/gateway/v1/me/"\nuser = "admin:%s"\noutput = "/dev/null"\n')
          :format(url, pw), 384)
        local q = io.popen("curl -s -w '%{http_code}' -K " .. helper.shquote(cfg))
        local code = q:read("a")
        q:close()
        os.remove(cfg)
        return code
      end
      local url, stderr, stop = launch("AAP_SIM_ADMIN_PASSWORD=from-env-pw")
      local code = me_status(url, "from-env-pw")
      local err = stderr()
      stop()
      assert.equal("200", code)
      assert.is_nil(err:find("from-env-pw", 1, true))
      url, stderr, stop = launch("")
      local pw = stderr():match("admin password %(random%): (%w+)")
      local good, bad = me_status(url, pw), me_status(url, "wrong")
      stop()
      assert.equal(20, #pw)
      assert.equal("200", good)
      assert.equal("401", bad)
    end)

    it("exits 0 on SIGINT", function()
      local s2 = helper.start_sim()
      os.execute("kill -INT " .. s2.pid)
      local ok, _, code = s2.handle:close()
      s2.handle = nil
      os.remove(s2.errlog)
      assert.is_true(ok)
      assert.equal(0, code)
    end)

    it("listens on ::1", function()
      local s2 = helper.start_sim({ args = { "--host", "::1" } })
      assert.matches("^http://%[::1%]:%d+$", s2.url)
      local out = curl("-g -o /dev/null -w '%{http_code}' " .. helper.shquote(s2.url .. B .. "ping/"))
      s2:stop()
      assert.equal("200exit=0", out:gsub("\n", ""))
    end)

    it("closes idle connections after --idle-timeout", function()
      local s2 = helper.start_sim({ args = { "--idle-timeout", "0.3" } })
      local c = connect(s2)
      local data, err = c:receive(1)
      c:close()
      s2:stop()
      assert.is_nil(data)
      assert.equal("closed", err)
    end)

    it("rejects bad arguments with exit 1, like every aap command", function()
      local r = helper.run({ "sim", "--port", "99999" })
      assert.equal(1, r.code)
      r = helper.run({ "sim", "--tls-cert", "/nonexistent" })
      assert.equal(1, r.code)
      r = helper.run({ "sim", "--state", "/nonexistent/state.lua" })
      assert.equal(1, r.code)
      assert.matches("cannot load state", r.stderr)
    end)

    it("answers a TLS handshake on its plain HTTP port at once, and keeps serving", function()
      local plain = helper.start_sim({ controls = false })
      local https = plain.url:gsub("^http:", "https:")
      local p = io.popen("curl -sS -o /dev/null --max-time 5 -w '%{http_code}' " .. https ..
        "/api/ 2>&1; echo \" rc=$?\"")
      local out = p:read("a")
      p:close()
      -- curl fails the handshake (a TLS error, not its 5 s timeout: rc 28)
      assert.is_nil(out:find("rc=28", 1, true), out)
      assert.is_nil(out:find("rc=0", 1, true), out)
      local st = plain:raw("GET", "/api/")
      assert.equal(200, st)
      assert.is_true((plain:stop()))
    end)
  end)

  describe("TLS", function()
    local certs, s2

    setup(function()
      certs = helper.make_certs(helper.tmpdir())
      s2 = helper.start_sim({ args = { "--tls-cert", certs.cert, "--tls-key", certs.key } })
    end)
    teardown(function()
      s2:stop()
      helper.cleanup()
    end)

    it("serves https that curl verifies with the throwaway CA, with keep-alive", function()
      assert.matches("^https://127%.0%.0%.1:%d+$", s2.url)
      local url = helper.shquote(s2.url .. B .. "ping/")
      local out = curl("--cacert " .. helper.shquote(certs.ca) .. " -o /dev/null -o /dev/null "
        .. "-w '%{http_code} %{num_connects}\\n' "
        .. url .. " " .. url)
      assert.equal("200 1\n200 0\nexit=0\n", out)
    end)

    it("fails verification without the CA, and keeps serving after plain-HTTP garbage", function()
      local out = curl("-o /dev/null " .. helper.shquote(s2.url .. B .. "ping/"))
      assert.equal("exit=60\n", out)
      local c = connect(s2)
      c:send("GET / HTTP/1.1\r\n\r\n")
      c:receive("*a")
      c:close()
      out = curl("--cacert " .. helper.shquote(certs.ca) .. " -o /dev/null -w '%{http_code}' "
        .. helper.shquote(s2.url .. B .. "ping/"))
      assert.equal("200exit=0\n", out)
    end)

    it("the controls work over https", function()
      local st = s2:control("GET", "/__sim/clock")
      assert.equal(200, st)
    end)
  end)
end)
