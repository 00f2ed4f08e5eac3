-- Transport behaviour: keep-alive, retries, timeouts, size caps, redirects,
-- and the error codes, against the emulator and a scripted stub server
-- (for answers the emulator never gives: 409, chunked bodies, huge headers,
-- HTTP-date Retry-After, next links to another host).
local h = require("helper")
local aap = require("aap")

-- A tiny scripted HTTP/1.1 server: routes from a Lua file, one log line per
-- request ("conn method path auth"), keep-alive, several connections at once.
local STUB = [=[
local socket = require("socket")
local routes = dofile(arg[1])
local logf = assert(io.open(arg[2], "a"))
logf:setvbuf("line")
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
io.stdout:write(port, "\n"); io.stdout:flush()
local clients, ids, nconn = {}, {}, 0
local function answer(c, r)
  local body = r.body or ""
  local head = { ("HTTP/1.1 %d X"):format(r.status or 200) }
  for _, kv in ipairs(r.headers or {}) do head[#head + 1] = kv[1] .. ": " .. kv[2] end
  if r.chunked then head[#head + 1] = "Transfer-Encoding: chunked"
  else head[#head + 1] = "Content-Length: " .. #body end
  c:send(table.concat(head, "\r\n") .. "\r\n\r\n")
  if r.chunked then
    for _ = 1, r.chunks or 1 do c:send(("%x\r\n%s\r\n"):format(#body, body)) end
    c:send("0\r\n\r\n")
  else
    c:send(body)
  end
end
local idle = 0
while idle < 6 do   -- a stub nobody stopped goes away after 30 s of silence
  local readable = socket.select({ srv, table.unpack(clients) }, nil, 5)
  idle = #readable == 0 and idle + 1 or 0
  for _, s in ipairs(readable) do
    if s == srv then
      local c = srv:accept()
      if c then nconn = nconn + 1; ids[c] = nconn; clients[#clients + 1] = c end
    else
      s:settimeout(5)
      local line = s:receive("*l")
      if not line then
        for i, c in ipairs(clients) do if c == s then table.remove(clients, i) break end end
        s:close()
      else
        local method, target = line:match("^(%S+) (%S+)")
        local hdr, len = {}, 0
        while true do
          local l = s:receive("*l")
          if not l or l == "" then break end
          local k, v = l:match("^([^:]+):%s*(.*)$")
          if k then hdr[k:lower()] = v end
        end
        len = tonumber(hdr["content-length"] or 0)
        local body = len > 0 and s:receive(len) or ""
        local auth = hdr.authorization and hdr.authorization:match("^(%S+)") or "none"
        logf:write(("%d %s %s %s %s\n"):format(ids[s], method, target, auth,
          body == "" and "-" or (body:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end))))
        local r = routes[method .. " " .. target] or routes[target] or { status = 404, body = "no route" }
        if r.sequence then
          r.n = (r.n or 0) + 1
          r = r.sequence[math.min(r.n, #r.sequence)]
        end
        -- vanish: the request was read (and acted on), then the server goes away without a
        -- byte of answer and refuses every new connection, as a gateway restarting would
        if r.vanish then
          s:close()
          srv:close()
          logf:close()
          os.exit(0)
        end
        answer(s, r)
      end
    end
  end
end
]=]

local Stub = {}
Stub.__index = Stub

local function start_stub(routes_src)
  local dir = h.tmpdir()
  h.writefile(dir .. "/stub.lua", STUB)
  h.writefile(dir .. "/routes.lua", routes_src)
  h.writefile(dir .. "/log", "")
  local p = assert(io.popen(("echo $$; exec lua5.4 %s %s %s"):format(h.shquote(dir .. "/stub.lua"),
    h.shquote(dir .. "/routes.lua"), h.shquote(dir .. "/log"))))
  local pid = p:read("l")
  local port = p:read("l")
  assert(port and port:match("^%d+$"), "stub did not start")
  local stub = setmetatable({ url = "http://127.0.0.1:" .. port, pid = pid, handle = p, dir = dir }, Stub)
  finally(function() stub:stop() end)
  return stub
end

function Stub:log()
  local out = {}
  for l in (h.readfile(self.dir .. "/log") or ""):gmatch("[^\n]+") do
    local conn, method, path, auth, body = l:match("^(%d+) (%S+) (%S+) (%S+) (%S+)$")
    body = body == "-" and "" or body:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
    out[#out + 1] = { conn = tonumber(conn), method = method, path = path, auth = auth, body = body }
  end
  return out
end

function Stub:stop()
  if not self.handle then return end
  os.execute("kill " .. self.pid)
  self.handle:close()
  self.handle = nil
end

local function count_conns(log)
  local c, n = {}, 0
  for _, e in ipairs(log) do if not c[e.conn] then c[e.conn] = true; n = n + 1 end end
  return n
end

describe("transport against the emulator", function()
  local sim

  setup(function() sim = h.start_sim() end)
  teardown(function()
    sim:stop()
    h.cleanup()
  end)
  before_each(function() sim:reset() end)

  local function connect(extra)
    local o = { url = sim.url, username = "admin", password = h.ADMIN_PASSWORD, flavor = "gateway",
                backoff = 0.001 }
    if extra and extra.token then o.username, o.password = nil, nil end
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(aap.connect(o))
  end

  it("keeps one connection alive across calls", function()
    local s = connect()
    for _ = 1, 10 do assert(s:me()) end
    assert(s:tokens())
    assert(s:token(assert(s:create_token({ description = "ka" })).id))
    local st = s:stats()
    assert.equals(13, st.requests)
    local log = sim:log()
    assert.equals(13, #log)
    -- the GETs share one connection; the POST alone gets a fresh one (below)
    assert.equals(2, st.connects)
    assert.equals(2, count_conns(log))
    assert.equals(log[1].conn, log[11].conn)
    assert.equals(log[1].conn, log[13].conn)
    assert.not_equals(log[1].conn, log[12].conn)
    s:close()
  end)

  it("sends an unmarked POST on a fresh connection, so libcurl never re-sends it on a dead reused one", function()
    local s = connect()
    assert(s:me())
    assert(s:create_token({ description = "a" }))
    assert(s:create_token({ description = "b" }))
    local log = sim:log()
    assert.equals(3, #log)
    assert.equals(3, count_conns(log))
    s:close()
  end)

  it("sends a POST marked resend_safe on the kept-alive connection", function()
    local s = connect()
    assert(s:me())
    assert(s:create_token({ description = "a", resend_safe = true }))
    assert(s:me())
    local log = sim:log()
    assert.equals(3, #log)
    assert.equals(1, count_conns(log))
    assert.equals(0, s:stats().maybe_resent)
    s:close()
  end)

  it("counts a marked POST libcurl may have re-sent after the kept-alive connection died under it", function()
    local s = connect()
    assert(s:me())
    sim:fault({ kind = "drop", count = 1, method = "POST" })
    local tok = assert(s:create_token({ description = "twice", resend_safe = true }))
    assert.equals(1, s:stats().maybe_resent)
    -- the gateway did it twice: the first answer was lost with the connection
    local ids = sim:token_ids(function(t) return t.description == "twice" end)
    assert.equals(2, #ids)
    assert.equals(ids[2], math.tointeger(tok.id))
    s:close()
  end)

  it("shares kept-alive connections between sessions of one process", function()
    local a = connect()
    assert(a:me())
    local b = assert(aap.connect({ url = sim.url, token = "x", flavor = "gateway" }))
    b:me()
    a:close()
    b:close()
    local log = sim:log()
    assert.equals(2, #log)
    assert.equals(1, count_conns(log))
  end)

  it("retries a GET after 503, then succeeds", function()
    local s = connect()
    sim:fault({ kind = "503", count = 2 })
    assert(s:me())
    local st = s:stats()
    assert.equals(3, st.requests)
    assert.equals(2, st.retries)
    s:close()
  end)

  it("gives up after `retries` and reports server with the proxy's text", function()
    local s = connect({ retries = 2 })
    sim:fault({ kind = "504", count = 5 })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("server", err.code)
    assert.equals(504, err.status)
    assert.equals("upstream request timeout", err.message)
    assert.equals(3, s:stats().requests)
    s:close()
  end)

  it("honours Retry-After on 429 and reports rate_limited with retry_after", function()
    local s = connect({ retries = 1 })
    sim:fault({ kind = "429", count = 1, retry_after = 0 })
    assert(s:me())
    assert.equals(1, s:stats().retries)
    -- A Retry-After longer than the time left: no wait, the 429 is the answer.
    local t = connect({ timeout = 0.5 })
    sim:fault({ kind = "429", count = 1, retry_after = 30 })
    local me, err = t:me()
    assert.is_nil(me)
    assert.equals("rate_limited", err.code)
    assert.equals(429, err.status)
    assert.equals(30, err.retry_after)
    assert.equals(0, t:stats().retries)
    s:close()
    t:close()
  end)

  it("never sends a token-creating POST twice on 503", function()
    local s = connect({ retries = 3 })
    sim:fault({ kind = "503", count = 1, method = "POST" })
    local tok, err = s:create_token({ description = "once" })
    assert.is_nil(tok)
    assert.equals("server", err.code)
    assert.equals(503, err.status)
    local posts = 0
    for _, e in ipairs(sim:log()) do if e.method == "POST" then posts = posts + 1 end end
    assert.equals(1, posts)
    assert.equals(0, #assert(s:tokens()))
    s:close()
  end)

  it("times out on a slow answer", function()
    local s = connect({ timeout = 0.3, retries = 0 })
    sim:fault({ kind = "delay", count = 1, delay_ms = 3000 })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("timeout", err.code)
    s:close()
  end)

  it("caps the body (announced size) with too_large", function()
    local s = connect({ max_body = 1024 * 1024, retries = 0 })
    sim:fault({ kind = "huge_body", count = 1, size = 4 * 1024 * 1024 })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("too_large", err.code)
    s:close()
  end)

  it("reports a connection closed half-way as connect, and retries a GET past it", function()
    local s = connect({ retries = 0 })
    assert(s:me())   -- a kept-alive connection: libcurl re-sends once on a fresh one when it dies unanswered
    sim:fault({ kind = "drop", count = 1 })
    assert(s:me())
    sim:fault({ kind = "close", count = 1 })   -- half an answer: never re-sent by libcurl
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("connect", err.code)
    sim:fault({ kind = "reset", count = 2 })   -- the kept-alive attempt and libcurl's fresh one
    local me2, err2 = s:me()
    assert.is_nil(me2)
    assert.equals("connect", err2.code)
    s:close()
    local t = connect({ retries = 2 })
    sim:fault({ kind = "reset", count = 1 })
    assert(t:me())
    t:close()
  end)

  it("reports malformed JSON as bad_response", function()
    local s = connect()
    sim:fault({ kind = "malformed_json", count = 1 })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("bad_response", err.code)
    assert.equals(200, err.status)
    s:close()
  end)

  it("strips HTML from a 500 page", function()
    local s = connect({ retries = 0 })
    sim:fault({ kind = "500", count = 1 })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("server", err.code)
    assert.equals(500, err.status)
    assert.matches("Server Error %(500%)", err.message)
    assert.is_nil(err.message:find("<", 1, true))
    s:close()
  end)

  it("follows a redirect on the same host, credentials kept", function()
    local s = connect()
    sim:fault({ kind = "redirect", count = 1, location = "/api/gateway/v1/me/" })
    local me = assert(s:me())
    assert.equals("admin", me.username)
    local log = sim:log()
    assert.equals("basic", log[#log].auth)
    s:close()
  end)

  it("refuses a redirect to file:// and other schemes", function()
    local s = connect()
    sim:fault({ kind = "redirect", count = 1, location = "file:///etc/passwd" })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("redirect", err.code)
    sim:fault({ kind = "redirect", count = 1, location = "ftp://127.0.0.1/x" })
    local me2, err2 = s:me()
    assert.is_nil(me2)
    assert.equals("redirect", err2.code)
    s:close()
  end)

  it("stops after a few redirects", function()
    local s = connect({ retries = 0 })
    sim:fault({ kind = "redirect", count = 10, location = "/api/gateway/v1/me/" })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("redirect", err.code)
    sim:control("DELETE", "/__sim/faults")
    s:close()
  end)

  for _, how in ipairs({ "basic", "bearer" }) do
    it("never sends " .. how .. " credentials to another host on a redirect: it is an error", function()
      local other = start_stub([[return { ["/api/gateway/v1/me/"] = { status = 401, body = "{}" } }]])
      local o = { flavor = "gateway" }
      if how == "bearer" then
        local admin = connect()
        local tok = assert(admin:create_token({}))
        admin:close()
        o = { token = tok.token }
      end
      local s = connect(o)
      -- a different port on the same address counts as another host too
      sim:fault({ kind = "redirect", count = 1, location = other.url .. "/api/gateway/v1/me/" })
      local me, err = s:me()
      assert.is_nil(me)
      assert.equals("redirect", err.code)
      assert.equals(302, err.status)
      assert.matches(other.url:gsub("%p", "%%%0"), err.message)
      assert.same({}, other:log())
      -- and another host name for the same server: nothing is sent to it either
      local port = sim.url:match(":(%d+)$")
      sim:clear_log()
      sim:fault({ kind = "redirect", count = 1, location = "http://localhost:" .. port .. "/api/gateway/v1/me/" })
      local me2, err2 = s:me()
      assert.is_nil(me2)
      assert.equals("redirect", err2.code)
      assert.equals(1, #sim:log())
      s:close()
      other:stop()
    end)
  end
end)

describe("transport against a scripted stub", function()
  teardown(function() h.cleanup() end)

  local function connect(url, extra)
    local o = { url = url, username = "admin", password = "stub-Pa55", flavor = "gateway", backoff = 0.001 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(aap.connect(o))
  end

  it("never repeats, nor calls unsent, a marked POST whose kept-alive connection died and whose reconnect failed",
    function()
      local stub = start_stub([[
        return { ["/api/gateway/v1/me/"] = { status = 200, headers = { { "Content-Type", "application/json" } },
                                             body = '{"id": 1, "username": "admin"}' },
                 ["POST /api/gateway/v1/tokens/"] = { vanish = true } }]])
      local s = connect(stub.url, { retries = 3 })
      assert(s:me())   -- the connection the POST then rides
      local tok, err = s:create_token({ description = "lost answer", resend_safe = true })
      assert.is_nil(tok)
      assert.equals("connect", err.code)
      -- the body went out: the gateway may have made the token, so it is not "unsent" and no
      -- retry sent it again on a new connection
      assert.is_nil(err.unsent)
      local posts = 0
      for _, e in ipairs(stub:log()) do if e.method == "POST" then posts = posts + 1 end end
      assert.equals(1, posts)
      assert.equals(0, s:stats().retries)
      s:close()
    end)

  it("maps every documented status to its code", function()
    local stub = start_stub([[
      local r = {}
      for _, st in ipairs({ 400, 401, 403, 404, 405, 409, 412, 415, 418, 429, 500, 503 }) do
        r["/api/gateway/v1/s" .. st .. "/"] = { status = st, headers = { { "Content-Type", "application/json" } },
                                              body = '{"detail": "status ' .. st .. '"}' }
      end
      r["/o/token/"] = { status = 403, headers = { { "Content-Type", "text/html; charset=utf-8" } },
                         body = "The refresh token has expired." }
      r["/api/gateway/v1/empty/"] = { status = 405, body = "" }
      r["/api/gateway/v1/echo/"] = { status = 400, headers = { { "Content-Type", "application/json" } },
        body = '{"detail": "password stub-Pa55 rejected\\n<b>twice</b>"}' }
      r["/api/gateway/v1/cut/"] = { status = 500, body = string.rep("x", 294) .. " stub-Pa55 and more" }
      return r]])
    local s = connect(stub.url, { retries = 0 })
    local want = { [400] = "invalid", [401] = "auth", [403] = "forbidden", [404] = "not_found", [405] = "server",
                   [409] = "conflict", [412] = "conflict", [415] = "server", [418] = "server",
                   [429] = "rate_limited", [500] = "server", [503] = "server" }
    for st, code in pairs(want) do
      -- raw: the status is data
      local rst, body = s:request("GET", "s" .. st .. "/")
      assert.equals(st, rst)
      assert.equals("status " .. st, body.detail)
      -- a call: nil, err with the code
      local x, err = s:tokens({ path = "s" .. st .. "/" })
      assert.is_nil(x)
      assert.equals(code, err.code, "HTTP " .. st)
      assert.equals(st, err.status)
      assert.equals("status " .. st, err.message)
    end
    local echo = select(2, s:tokens({ path = "echo/" }))
    assert.equals("password REDACTED rejected <b>twice</b>", echo.message)
    assert.is_nil(tostring(echo):find("stub-Pa55", 1, true))
    -- a secret where the 300-byte cut falls: scrubbed before the cut, so no prefix survives
    local cut = select(2, s:tokens({ path = "cut/" }))
    assert.is_nil(cut.message:find("stub", 1, true), cut.message)
    assert.is_true(#cut.message <= 303)
    local e405 = select(2, s:tokens({ path = "empty/" }))
    assert.equals("server", e405.code)
    assert.equals("HTTP 405", e405.message)
    local r, expired = s:refresh({ refresh_token = "rt-secret-value", client_id = "c", client_secret = "cs" })
    assert.is_nil(r)
    assert.equals("expired", expired.code)
    assert.equals("The refresh token has expired.", expired.message)
    s:close()
    stub:stop()
  end)

  it("keeps an error message to one line of at most 300 bytes, cut on a UTF-8 boundary", function()
    local texts = { ("é"):rep(400), "x" .. ("é"):rep(400), ("€"):rep(200), ("y"):rep(1000), ("y"):rep(299),
                    "two\nlines\r\n and\ttabs" }
    local stub = start_stub(([[
      local cjson = require("cjson")
      local r = {}
      for i, t in ipairs(%s) do
        r["/api/gateway/v1/m" .. i .. "/"] = { status = 400, headers = { { "Content-Type", "application/json" } },
                                              body = cjson.encode({ detail = t }) }
      end
      return r]]):format(require("cjson").encode(texts):gsub("^%[", "{"):gsub("%]$", "}")))
    local s = connect(stub.url, { retries = 0 })
    local function message(i) return select(2, s:tokens({ path = "m" .. i .. "/" })).message end
    for i = 1, 3 do
      local m = message(i)
      assert.matches("%.%.%.$", m)
      local kept = m:sub(1, -4)
      assert.is_true(#kept <= 300 and #kept >= 296, #kept)
      assert.is_not_nil(utf8.len(kept), "no half character")
      assert.equals(kept, texts[i]:sub(1, #kept))
    end
    assert.equals(("y"):rep(300) .. "...", message(4))
    assert.equals(("y"):rep(299), message(5))
    assert.equals("two lines and tabs", message(6))
    s:close()
    stub:stop()
  end)

  it("caps a chunked body (no announced size) inside the write callback", function()
    local stub = start_stub([[return { ["/api/gateway/v1/me/"] = { status = 200, chunked = true, chunks = 64,
      body = string.rep("x", 65536) } }]])
    local s = connect(stub.url, { max_body = 1024 * 1024, retries = 0 })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("too_large", err.code)
    s:close()
    local t = connect(stub.url, { max_body = 8 * 1024 * 1024, retries = 0 })
    local me2, err2 = t:me()
    assert.is_nil(me2)
    assert.equals("bad_response", err2.code)     -- 4 MiB of x is not JSON, but it was read
    t:close()
    stub:stop()
  end)

  it("caps the response headers", function()
    local stub = start_stub([[
      local hs = {}
      for i = 1, 200 do hs[i] = { "X-Filler-" .. i, string.rep("h", 1000) } end
      return { ["/api/gateway/v1/me/"] = { status = 200, headers = hs, body = "{}" } }]])
    local s = connect(stub.url, { retries = 0 })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("too_large", err.code)
    s:close()
    local t = connect(stub.url, { retries = 0, max_header = 1024 * 1024 })
    local st = t:request("GET", "me/")
    assert.equals(200, st)
    t:close()
    stub:stop()
  end)

  it("waits as an HTTP-date Retry-After says (a date in the past: at once)", function()
    local stub = start_stub([[return { ["/api/gateway/v1/me/"] = { sequence = {
      { status = 503, headers = { { "Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT" } }, body = "busy" },
      { status = 200, headers = { { "Content-Type", "application/json" } }, body = '{"results": [{"id": 1}]}' } } } }]])
    local s = connect(stub.url, { retries = 1 })
    local me = assert(s:me())
    assert.equals(1, me.id)
    assert.equals(1, s:stats().retries)
    s:close()
    stub:stop()
  end)

  it("takes an HTML error page's title (else its first h1) as the message, once", function()
    local stub = start_stub([[
      local h = { { "Content-Type", "text/html" } }
      return {
        ["/api/gateway/v1/me/"] = { status = 502, headers = h, body = "<html><head><title>502 Bad Gateway</title>"
          .. "</head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>" },
        ["/api/gateway/v1/ping/"] = { status = 500, headers = h,
          body = "<!doctype html><H1 class='x'>Server Error (500)</H1><p>Server Error (500)</p>" },
        ["/api/gateway/v1/tokens/"] = { status = 500, headers = h, body = "<p>plain <b>text</b> only</p>" } }]])
    local s = connect(stub.url, { retries = 0, flavor = "gateway" })
    local _, e1 = s:me()
    assert.equals("502 Bad Gateway", e1.message)
    local _, e2 = s:ping()
    assert.equals("Server Error (500)", e2.message)
    local _, e3 = s:tokens({})
    assert.equals("plain text only", e3.message)
    s:close()
    stub:stop()
  end)

  it("stays on the session's host when a next link names another", function()
    local stub = start_stub([[
      local p1 = '{"count": 2, "next": "http://evil.example:9/api/gateway/v1/tokens/?page=2", "results": [{"id": 1}]}'
      local p2 = '{"count": 2, "next": null, "results": [{"id": 2}]}'
      local j = { { "Content-Type", "application/json" } }
      return { ["/api/gateway/v1/tokens/"] = { status = 200, headers = j, body = p1 },
               ["/api/gateway/v1/tokens/?page=2"] = { status = 200, headers = j, body = p2 } }]])
    local s = connect(stub.url, { concurrency = 1 })
    local all = assert(s:tokens())
    assert.equals(2, #all)
    local log = stub:log()
    assert.equals("/api/gateway/v1/tokens/?page=2", log[2].path)
    assert.equals("Basic", log[2].auth)
    s:close()
    stub:stop()
  end)

  it("refetches a page that failed during the concurrent pass, and de-duplicates shifted items", function()
    local stub = start_stub([[
      local j = { { "Content-Type", "application/json" } }
      local function page(ids, nxt)
        local items = {}
        for i, id in ipairs(ids) do items[i] = '{"id": ' .. id .. '}' end
        return { status = 200, headers = j, body = '{"count": 6, "next": ' .. (nxt and ('"' .. nxt .. '"') or "null")
          .. ', "results": [' .. table.concat(items, ",") .. ']}' }
      end
      return {
        ["/api/gateway/v1/tokens/"] = page({ 1, 2 }, "/api/gateway/v1/tokens/?page=2"),
        ["/api/gateway/v1/tokens/?page=2"] = page({ 2, 3 }, "/api/gateway/v1/tokens/?page=3"),
        ["/api/gateway/v1/tokens/?page=3"] = { sequence = {
          { status = 502, body = "bad gateway" }, page({ 4, 5 }, nil) } },
      }]])
    local s = connect(stub.url, { concurrency = 4 })
    local all = assert(s:tokens())
    local ids = {}
    for i, t in ipairs(all) do ids[i] = t.id end
    assert.same({ 1, 2, 3, 4, 5 }, ids)
    local p3 = 0
    for _, e in ipairs(stub:log()) do if e.path:find("page=3", 1, true) then p3 = p3 + 1 end end
    assert.equals(2, p3)
    s:close()
    stub:stop()
  end)
end)

-- Issue #11: credentials and request bodies never leave the gateway's origin, and no
-- credential goes over plain http:// to a host that is not loopback. The "other host" is a
-- stub on another loopback port that answers like a gateway would (a token, a user, a new
-- token pair), so that following a redirect there would look like success; it logs every
-- request with its Authorization scheme and body.
local OTHER_ROUTES = [[
local J = { { "Content-Type", "application/json" } }
local TOKEN = '{"id": 4242, "token": "OtherHostToken0123456789abc", "refresh_token": null, "scope": "write", ' ..
  '"application": null, "user": 1, "description": "other", "created": "2025-01-01T00:00:00Z", ' ..
  '"modified": "2025-01-01T00:00:00Z", "expires": "2099-01-01T00:00:00Z", "last_used": null}'
return {
  ["/api/gateway/v1/tokens/"] = { status = 201, headers = J, body = TOKEN },
  ["/api/gateway/v1/me/"] = { status = 200, headers = J, body = '{"count": 1, "next": null, "previous": null, ' ..
    '"results": [{"id": 1, "username": "admin", "is_superuser": true}]}' },
  ["/o/token/"] = { status = 200, headers = J, body = '{"access_token": "OtherAccess0123456789", ' ..
    '"refresh_token": "OtherRefresh0123456789", "token_type": "Bearer", "expires_in": 31536000, "scope": "write"}' },
}]]

-- What reached the other host, for a failure message.
local function reached(log)
  local out = {}
  for _, e in ipairs(log) do out[#out + 1] = ("%s %s auth=%s body=%q"):format(e.method, e.path, e.auth, e.body) end
  return table.concat(out, "; ")
end

describe("redirects: credentials and bodies stay with the gateway's origin (issue #11)", function()
  local API = "/api/gateway/v1/"
  local sim, tls, certs

  setup(function()
    sim = h.start_sim()
    certs = h.make_certs(h.tmpdir())
    tls = h.start_sim({ args = { "--tls-cert", certs.cert, "--tls-key", certs.key } })
  end)
  teardown(function()
    sim:stop()
    tls:stop()
    h.cleanup()
  end)
  before_each(function() sim:reset(); tls:reset() end)

  local function admin_env(extra)
    local e = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = h.ADMIN_PASSWORD }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  it("token create: POST tokens/ and GET me/ redirected to a host that answers with a token -> "
    .. "an error, the file untouched, nothing sent there", function()
    local other = start_stub(OTHER_ROUTES)
    local env = h.tmpdir() .. "/.env"
    h.writefile(env, "KEEP=1\n", 384)
    sim:fault({ kind = "redirect", count = 5, method = "POST", path = API .. "tokens/",
                location = other.url .. API .. "tokens/" })
    sim:fault({ kind = "redirect", count = 5, method = "GET", path = API .. "me/",
                location = other.url .. API .. "me/" })
    local r = h.run({ "token", "create", "--env-file", env }, { env = admin_env() })
    assert.same({}, other:log(), "the other host was sent: " .. reached(other:log()))
    assert.equals(2, r.code, r.stderr)
    assert.matches("aap: redirect: a redirect to another origin, http://127%.0%.0%.1:%d+", r.stderr)
    assert.equals("KEEP=1\n", h.readfile(env))
    assert.is_nil(r.stderr:find("OtherHost", 1, true))
  end)

  it("token refresh: a 307 on /o/token/ to another host -> an error; neither the refresh token nor "
    .. "the client secret is sent there, and the pair still works", function()
    local other = start_stub(OTHER_ROUTES)
    local env = h.tmpdir() .. "/.env"
    local r = h.run({ "token", "create", "--application", sim.seed.application.name, "--env-file", env },
      { env = admin_env() })
    assert.equals(0, r.code, r.stderr)
    local before = h.readfile(env)
    local client = { AAP_CLIENT_ID = sim.seed.application.client_id,
                     AAP_CLIENT_SECRET = sim.seed.application.client_secret, AAP_PASSWORD = false }
    sim:clear_log()
    sim:fault({ kind = "redirect", status = 307, count = 1, path = "/o/token/", location = other.url .. "/o/token/" })
    r = h.run({ "token", "refresh", "--env-file", env }, { env = admin_env(client) })
    assert.same({}, other:log(), "the other host was sent: " .. reached(other:log()))
    assert.equals(2, r.code, r.stderr)
    assert.matches("aap: redirect: ", r.stderr)
    assert.equals(before, h.readfile(env))
    local posts = 0
    for _, e in ipairs(sim:log()) do if e.method == "POST" then posts = posts + 1 end end
    assert.equals(1, posts, "the refresh POST was sent once, never again to the redirect")
    -- the refused redirect spent nothing: the same refresh token still works
    r = h.run({ "token", "refresh", "--env-file", env }, { env = admin_env(client) })
    assert.equals(0, r.code, r.stderr)
  end)

  it("from an https gateway, a 307 to http:// (downgrade) sends nothing in clear text", function()
    local other = start_stub(OTHER_ROUTES)
    local s = assert(aap.connect({ url = tls.url, ca_file = certs.ca, username = "admin",
                                   password = h.ADMIN_PASSWORD }))
    local tok = assert(s:create_token({ application = tls.seed.application.id }))
    local app = tls.seed.application
    tls:fault({ kind = "redirect", status = 307, count = 1, path = "/o/token/", location = other.url .. "/o/token/" })
    local new, err = s:refresh({ refresh_token = tok.refresh_token, client_id = app.client_id,
                                 client_secret = app.client_secret })
    assert.is_nil(new)
    assert.equals("redirect", err.code)
    assert.equals(307, err.status)
    assert.is_nil(tostring(err):find(app.client_secret, 1, true))
    -- the same host and port, only the scheme changed: still another origin
    local port = tls.url:match(":(%d+)$")
    tls:fault({ kind = "redirect", status = 301, count = 1, path = API .. "me/",
                location = "http://127.0.0.1:" .. port .. API .. "me/" })
    local me, err2 = s:me()
    assert.is_nil(me)
    assert.equals("redirect", err2.code)
    tls:fault({ kind = "redirect", status = 308, count = 1, path = API .. "me/", location = other.url .. API .. "me/" })
    local me3, err3 = s:me()
    assert.is_nil(me3)
    assert.equals("redirect", err3.code)
    assert.same({}, other:log(), "the other host was sent: " .. reached(other:log()))
    -- and the pair was not spent by the refused redirect
    assert(s:refresh({ refresh_token = tok.refresh_token, client_id = app.client_id,
                       client_secret = app.client_secret }))
    s:close()
  end)

  it("refuses a redirect to another origin for every method and every redirect status", function()
    local other = start_stub(OTHER_ROUTES)
    local s = assert(aap.connect({ url = sim.url, username = "admin", password = h.ADMIN_PASSWORD,
                                   flavor = "gateway", backoff = 0.001 }))
    for _, st in ipairs({ 301, 302, 303, 307, 308 }) do
      for _, m in ipairs({ "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" }) do
        sim:clear_log()
        sim:fault({ kind = "redirect", status = st, count = 1, path = API .. "me/",
                    location = other.url .. API .. "me/" })
        local opts = (m == "POST" or m == "PUT" or m == "PATCH") and { json = { secret = "body-Secret-1" } } or nil
        local status, err = s:request(m, "me/", opts)
        assert.is_nil(status, m .. " " .. st .. " was a result")
        assert.equals("redirect", err.code, m .. " " .. st)
        assert.equals(st, err.status)
        assert.equals(1, #sim:log(), m .. " " .. st .. " was sent more than once")
      end
    end
    assert.same({}, other:log(), "the other host was sent: " .. reached(other:log()))
    s:close()
  end)

  it("follows a same-origin redirect only for GET and HEAD; never re-sends a request with a body", function()
    local s = assert(aap.connect({ url = sim.url, username = "admin", password = h.ADMIN_PASSWORD,
                                   flavor = "gateway", backoff = 0.001 }))
    for _, m in ipairs({ "GET", "HEAD" }) do
      sim:clear_log()
      sim:fault({ kind = "redirect", status = 307, count = 1, path = API .. "ping/", location = API .. "ping/" })
      local status = s:request(m, "ping/")
      assert.equals(200, status, m)
      assert.equals(2, #sim:log())
    end
    for _, st in ipairs({ 302, 303, 307, 308 }) do
      for _, m in ipairs({ "POST", "PUT", "PATCH", "DELETE" }) do
        sim:clear_log()
        sim:fault({ kind = "redirect", status = st, count = 1, path = API .. "tokens/", location = API .. "tokens/" })
        local status, err = s:request(m, "tokens/", m ~= "DELETE" and { json = { description = "x" } } or nil)
        assert.is_nil(status, m .. " " .. st)
        assert.equals("redirect", err.code)
        assert.matches("never sent again", err.message)
        local log = sim:log()
        assert.equals(1, #log, m .. " " .. st .. " was sent again")
        assert.equals(m, log[1].method)
      end
    end
    -- the typed calls too: create_token is a POST
    local before = #sim:token_ids()
    sim:fault({ kind = "redirect", status = 307, count = 1, path = API .. "tokens/", location = API .. "tokens/" })
    local tok, err = s:create_token({ description = "x" })
    assert.is_nil(tok)
    assert.equals("redirect", err.code)
    assert.equals(before, #sim:token_ids())
    s:close()
  end)
end)

describe("plain http: no credential to a host that is not loopback (issue #11)", function()
  local sim
  setup(function() sim = h.start_sim() end)
  teardown(function()
    sim:stop()
    h.cleanup()
  end)
  before_each(function() sim:reset() end)

  -- Never contacted: each is refused before any connection or name resolution (aap.connect
  -- does no I/O, and the OAuth calls check before flavor detection).
  local REMOTE = { "http://192.0.2.10", "http://gateway.example", "http://[2001:db8::1]:8080",
                   "http://127.attacker.example", "http://127.0.0.1.attacker.example",
                   "http://localhost.attacker.example", "http://[::ffff:192.0.2.10]", "http://0.0.0.0:1",
                   "http://[::]:1", "http://[::2]:1" }
  local LOOPBACK = { "http://127.0.0.1:1", "http://127.255.0.9:1", "http://localhost:1", "http://LocalHost:1",
                     "http://[::1]:1", "http://[::ffff:127.0.0.1]:1", "http://[::ffff:127.9.8.7]:1",
                     "http://[0:0:0:0:0:ffff:7f00:1]:1", "https://gateway.example" }

  -- Fails at once (before any request) on a core that would send a token to a remote host.
  local function guard()
    local s, err = aap.connect({ url = "http://192.0.2.10", token = "tok-0123456789" })
    if s then s:close() end
    assert(not s and err.code == "insecure", "this core would send a token over plain http; not going further")
  end

  it("one definition of loopback for Basic and Bearer: refused to any other host, before any I/O", function()
    for _, url in ipairs(REMOTE) do
      for _, cred in ipairs({ { username = "admin", password = "pw-123456" }, { token = "tok-0123456789" } }) do
        local o = { url = url }
        for k, v in pairs(cred) do o[k] = v end
        local s, err = aap.connect(o)
        if s then s:close() end
        assert.is_nil(s, url .. (cred.token and " bearer" or " basic"))
        assert.equals("insecure", err.code)
        assert.matches("allow_plain_http", err.message)
        assert.is_nil(tostring(err):find("pw-123456", 1, true))
        assert.is_nil(tostring(err):find("tok-0123456789", 1, true))
        o.allow_plain_http = true
        local t = assert(aap.connect(o))
        t:close()
      end
    end
    for _, url in ipairs(LOOPBACK) do
      for _, cred in ipairs({ { username = "admin", password = "pw" }, { token = "tok-0123456789" } }) do
        local o = { url = url }
        for k, v in pairs(cred) do o[k] = v end
        local s = assert(aap.connect(o), url)
        s:close()
      end
    end
  end)

  it("refuses a refresh or a revoke (refresh token, client secret) to a host that is not loopback, "
    .. "sending nothing", function()
    guard()
    for _, url in ipairs(REMOTE) do
      -- flavor auto: the refusal must come before detection, which would send requests
      local s = assert(aap.connect({ url = url, retries = 0, connect_timeout = 0.001 }))
      local r, err = s:refresh({ refresh_token = "rt-0123456789", client_id = "cid", client_secret = "cs-0123456789" })
      assert.is_nil(r, url)
      assert.equals("insecure", err.code)
      assert.is_nil(tostring(err):find("0123456789", 1, true))
      local ok, err2 = s:revoke({ token = "tok-0123456789", client_id = "cid" })
      assert.is_nil(ok)
      assert.equals("insecure", err2.code)
      local ok3, err3 = s:request("POST", "/o/token/", { form = { grant_type = "refresh_token",
                                                                 refresh_token = "rt-0123456789" } })
      assert.is_nil(ok3)
      assert.equals("insecure", err3.code)
      assert.equals(0, s:stats().requests, url .. ": something was sent")
      s:close()
    end
  end)

  it("[::ffff:127.0.0.1] is loopback for Basic, Bearer and OAuth alike", function()
    local url = sim.url:gsub("127%.0%.0%.1", "[::ffff:127.0.0.1]")
    local s = assert(aap.connect({ url = url, username = "admin", password = h.ADMIN_PASSWORD }))
    local tok = assert(s:create_token({ application = sim.seed.application.id }))
    s:close()
    local b = assert(aap.connect({ url = url, token = tok.token }))
    assert.equals("admin", assert(b:me()).username)
    b:close()
    local o = assert(aap.connect({ url = url }))
    local app = sim.seed.application
    assert(o:refresh({ refresh_token = tok.refresh_token, client_id = app.client_id,
                       client_secret = app.client_secret }))
    o:close()
  end)

  it("the CLI refuses every credential as a local setting error (exit 1); --allow-plain-http / "
    .. "AAP_ALLOW_PLAIN_HTTP allow it with a warning on every run", function()
    guard()
    local remote = "http://192.0.2.10"
    local r = h.run({ "whoami" }, { env = { AAP_HOSTNAME = remote, AAP_TOKEN = "tok-0123456789" } })
    assert.equals(1, r.code, r.stderr)
    assert.matches("^aap: insecure: refusing to send a token over plain http://", r.stderr)
    r = h.run({ "whoami" }, { env = { AAP_HOSTNAME = remote, AAP_PASSWORD = "pw-123456" } })
    assert.equals(1, r.code, r.stderr)
    assert.matches("^aap: insecure: ", r.stderr)
    local env = h.tmpdir() .. "/.env"
    h.writefile(env, "AAP_TOKEN=tok0123456789\nREFRESH_TOKEN=rt0123456789\n", 384)
    r = h.run({ "token", "refresh", "--env-file", env }, { env = { AAP_HOSTNAME = remote, AAP_CLIENT_ID = "cid",
                                                                   AAP_CLIENT_SECRET = "cs-0123456789" } })
    assert.equals(1, r.code, r.stderr)
    assert.matches("aap: insecure: refusing to send a token and a client secret over plain http://", r.stderr)
    assert.is_nil(r.stderr:find("0123456789", 1, true))
    -- allowed explicitly: warned about on every run (loopback here: tests talk only to 127.0.0.1)
    for _, how in ipairs({ { env = { AAP_ALLOW_PLAIN_HTTP = "true" } }, { flag = "--allow-plain-http" },
                           { env = { AAP_ALLOW_INSECURE_BASIC = "yes" } } }) do
      local e = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = h.ADMIN_PASSWORD }
      for k, v in pairs(how.env or {}) do e[k] = v end
      local argv = { "whoami" }
      if how.flag then argv[2] = how.flag end
      r = h.run(argv, { env = e })
      assert.equals(0, r.code, r.stderr)
      assert.matches("aap: warning: credentials may be sent over plain http://", r.stderr)
    end
    r = h.run({ "whoami" }, { env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = h.ADMIN_PASSWORD,
                                      AAP_ALLOW_PLAIN_HTTP = "maybe" } })
    assert.equals(1, r.code, r.stderr)
  end)
end)
