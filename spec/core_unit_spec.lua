-- The C core without a server: times, argument checks, tostring, session
-- lifecycle, URL and header validation, refused connections.
local aap = require("aap")
local socket = require("socket")

-- A loopback port nothing listens on: bind, read the port, close.
local function dead_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

describe("aap (module)", function()
  it("has a version, codes and null", function()
    assert.equals("0.1.0", aap._VERSION)
    for _, c in ipairs({ "auth", "forbidden", "expired", "not_found", "ambiguous", "invalid", "conflict",
                         "rate_limited", "server", "bad_response", "too_large", "redirect", "timeout",
                         "connect", "tls", "insecure" }) do
      assert.equals(c, aap.codes[c])
    end
    assert.equals("userdata", type(aap.null))
  end)

  it("keeps the shared cjson settings untouched", function()
    local cjson = require("cjson")
    -- aap's instance refuses NaN-like numbers; the global one still decodes them.
    assert.is_not_nil(cjson.decode("[NaN]"))
  end)
end)

describe("aap.sha256 and aap.random_bytes (libcrypto)", function()
  local function hex(b) return (b:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

  it("gives SHA-256 (FIPS 180-2 test vectors, binary-safe)", function()
    assert.equals("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex(aap.sha256("")))
    assert.equals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex(aap.sha256("abc")))
    assert.equals("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      hex(aap.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
    assert.are_not.equal(aap.sha256("a\0b"), aap.sha256("a\0c"))
    assert.has_error(function() aap.sha256(nil) end)
  end)

  it("gives the bytes asked for, different each call, and refuses a bad count", function()
    local a, b = aap.random_bytes(16), aap.random_bytes(16)
    assert.equals(16, #a)
    assert.are_not.equal(a, b)   -- 2^-128 to fail by chance
    assert.equals(1, #aap.random_bytes(1))
    for _, n in ipairs({ 0, -1, 4097 }) do
      assert.has_error(function() aap.random_bytes(n) end)
    end
  end)

  it("keeps the state file's fingerprints as they were (16 hex digits of SHA-256)", function()
    local state = require("aap.state")
    assert.equals("ba7816bf8f01cfea", state.fingerprint("abc"))
    assert.equals("e3b0c44298fc1c14", state.fingerprint(""))
    assert.equals("e3b0c44298fc1c14", state.fingerprint(nil))
  end)
end)

describe("aap.parse_time", function()
  it("reads microseconds and Z", function()
    local t = aap.parse_time("2026-11-29T10:21:27.047839Z")
    assert.equals(1795947687, math.floor(t))
    assert.near(0.047839, t - 1795947687, 1e-6)
  end)

  it("reads whole seconds (DRF drops zero microseconds)", function()
    assert.equals(1795947687, aap.parse_time("2026-11-29T10:21:27Z"))
  end)

  it("handles year 3026 with 64-bit arithmetic", function()
    local t = aap.parse_time("3026-04-01T10:21:27.044063Z")
    assert.equals(33331947687, math.floor(t))
    assert.equals("3026-04-01T10:21:27Z", aap.format_time(t))
  end)

  it("applies +HH:MM, -HH:MM and +HHMM offsets", function()
    local z = aap.parse_time("2026-11-29T10:21:27Z")
    assert.equals(z, aap.parse_time("2026-11-29T12:21:27+02:00"))
    assert.equals(z, aap.parse_time("2026-11-29T05:51:27-04:30"))
    assert.equals(z, aap.parse_time("2026-11-29T11:21:27+0100"))
  end)

  it("crosses leap days and the epoch", function()
    assert.equals(0, aap.parse_time("1970-01-01T00:00:00Z"))
    assert.equals(-1, aap.parse_time("1969-12-31T23:59:59Z"))
    assert.equals(951782400, aap.parse_time("2000-02-29T00:00:00Z"))
    assert.equals(4107542400, aap.parse_time("2100-03-01T00:00:00Z"))
  end)

  it("returns nil, err for what is not a date-time with a zone", function()
    for _, bad in ipairs({ "", "nope", "2026-11-29", "2026-11-29T10:21:27", "2026-13-01T00:00:00Z",
                           "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-11-29T24:00:00Z",
                           "2026-11-29T10:61:00Z", "2026-11-29T10:21:27.Z", "2026-11-29T10:21:27Zjunk",
                           "2026-11-29T10:21:27+2", "26-11-29T10:21:27Z", "2026-11-29T10:21:27\0Z" }) do
      local t, err = aap.parse_time(bad)
      assert.is_nil(t, bad)
      assert.equals("invalid", err.code)
    end
  end)

  it("raises on a non-string", function()
    assert.has_error(function() aap.parse_time({}) end)
  end)
end)

describe("aap.format_time", function()
  it("formats integers and floors fractions", function()
    assert.equals("2026-11-29T10:21:27Z", aap.format_time(1795947687))
    assert.equals("2026-11-29T10:21:27Z", aap.format_time(1795947687.99))
    assert.equals("1969-12-31T23:59:59Z", aap.format_time(-0.5))
  end)

  it("round-trips across centuries", function()
    for _, t in ipairs({ 0, 86399, 951782400, 4107456000, 33331947687, 253402300799 }) do
      assert.equals(t, aap.parse_time(aap.format_time(t)))
    end
  end)

  it("raises outside years 0000..9999 and on non-numbers", function()
    assert.has_error(function() aap.format_time(253402300800) end)
    assert.has_error(function() aap.format_time(0 / 0) end)
    assert.has_error(function() aap.format_time("x") end)
  end)
end)

describe("aap.parse_token", function()
  it("recognises both masks and never shows a secret", function()
    for _, mask in ipairs({ "$encrypted$", "************" }) do
      local tok = aap.parse_token({ id = 7, token = mask, refresh_token = mask, application = 3, user = 2,
                                    scope = "read", expires = "2027-11-29T10:21:27Z" })
      assert.equals(getmetatable(tok).__name, "aap.Token")
      assert.is_true(tok.masked)
      assert.is_nil(tok.token)
      assert.is_nil(tok.refresh_token)
      assert.equals("application", tok.kind)
      assert.equals(3, tok.application)
      assert.equals("aap.Token(id=7, application, scope=read, expires=2027-11-29T10:21:27Z, masked)",
                    tostring(tok))
    end
  end)

  it("gives ids from a float-only JSON decoder back as integers", function()
    local tok = aap.parse_token(require("cjson").decode('{"id": 7, "user": 2, "application": 3}'))
    assert.equals("integer", math.type(tok.id))
    assert.equals("integer", math.type(tok.user))
    assert.equals("aap.Token(id=7, application)", tostring(tok))
  end)

  it("keeps plaintext values out of tostring", function()
    local tok = aap.parse_token({ id = 1, token = "R50pb5LuAHfXQ17vDp8zyPHpd1CsjZ", refresh_token = aap.null,
                                  application = aap.null, scope = "write", created = "2026-11-29T10:21:27.047839Z",
                                  last_used = aap.null })
    assert.equals("personal", tok.kind)
    assert.is_false(tok.masked)
    assert.equals("R50pb5LuAHfXQ17vDp8zyPHpd1CsjZ", tok.token)
    assert.is_nil(tok.refresh_token)
    assert.is_nil(tok.last_used)
    assert.near(1795947687.047839, tok.created, 1e-5)
    assert.is_nil(tostring(tok):find("R50pb", 1, true))
    assert.equals("R50pb5LuAHfXQ17vDp8zyPHpd1CsjZ", tok.raw.token)
  end)

  it("reads an /o/token/ answer: no id, expires = now + expires_in (beyond 32 bits)", function()
    local before = os.time()
    local tok = aap.parse_token({ access_token = "x8EFxJwC6J5HPNIKYHFouF5hdlMVlk", expires_in = 31536000000,
                                  token_type = "Bearer", scope = "read",
                                  refresh_token = "dBSoOR2HGw4UsH7ncCNtrxHCweNTXG" })
    assert.is_nil(tok.id)
    assert.equals("application", tok.kind)
    assert.equals("x8EFxJwC6J5HPNIKYHFouF5hdlMVlk", tok.token)
    assert.is_true(tok.expires >= before + 31536000000)
    assert.is_true(tok.expires <= os.time() + 1 + 31536000000)
    assert.is_nil(tostring(tok):find("x8EF", 1, true))
    assert.is_nil(tostring(tok):find("dBSo", 1, true))
  end)
end)

describe("aap.connect (argument checks)", function()
  local function raises(opts, pattern)
    local ok, err = pcall(aap.connect, opts)
    assert.is_false(ok)
    assert.matches(pattern, tostring(err))
  end

  it("needs a table with a url", function()
    raises(nil, "table expected")
    raises({}, "'url' is required")
    raises({ url = 42 }, "must be a string")
  end)

  it("rejects unknown options and wrong types", function()
    raises({ url = "http://127.0.0.1", bogus = true }, "unknown option 'bogus'")
    raises({ url = "http://127.0.0.1", [1] = "x" }, "unknown option")
    raises({ url = "http://127.0.0.1", insecure = "yes" }, "'insecure' must be a boolean")
    raises({ url = "http://127.0.0.1", timeout = "5" }, "'timeout' must be a number")
    raises({ url = "http://127.0.0.1", timeout = 0 }, "'timeout' out of range")
    raises({ url = "http://127.0.0.1", retries = 99 }, "'retries' out of range")
    raises({ url = "http://127.0.0.1", concurrency = 0 }, "'concurrency' out of range")
    raises({ url = "http://127.0.0.1", flavor = "awx" }, "'flavor' must be")
    raises({ url = "http://127.0.0.1", password = "x" }, "'password' needs 'username'")
    raises({ url = "http://127.0.0.1", username = "a:b", password = "x" }, "must not contain ':'")
  end)

  it("rejects URLs that are not plain http(s) base URLs", function()
    raises({ url = "ftp://127.0.0.1/" }, "scheme must be http or https")
    raises({ url = "file:///etc/passwd" }, "url")
    raises({ url = "http://admin:pw@127.0.0.1/" }, "credentials do not belong in the URL")
    raises({ url = "http://127.0.0.1/?x=1" }, "query or fragment")
    raises({ url = "http://127.0.0.1/#frag" }, "query or fragment")
    raises({ url = "not a url" }, "url")
  end)

  it("rejects NUL, CR and LF in anything that becomes a URL or a header", function()
    raises({ url = "http://127.0.0.1/\r\nX-Evil: 1" }, "NUL, CR or LF")
    raises({ url = "http://127.0.0.1/\0" }, "NUL, CR or LF")
    raises({ url = "http://127.0.0.1", token = "abc\r\nX-Evil: 1" }, "NUL, CR or LF")
    raises({ url = "http://127.0.0.1", token = "abc def" }, "printable ASCII")
    raises({ url = "http://127.0.0.1", username = "ad\nmin", password = "x" }, "NUL, CR or LF")
    raises({ url = "http://127.0.0.1", password = "a\0b", username = "u" }, "NUL")
    raises({ url = "http://127.0.0.1", user_agent = "ua\r\nX-Evil: 1" }, "NUL, CR or LF")
  end)

  it("refuses Basic and Bearer over plain http to a non-loopback host unless allowed", function()
    local s, err = aap.connect({ url = "http://gateway.example.com", username = "admin", password = "pw" })
    assert.is_nil(s)
    assert.equals("insecure", err.code)
    assert.matches("allow_plain_http", err.message)
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com", username = "admin", password = "pw",
                                   allow_plain_http = true }))
    -- the former name of the option still works
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com", username = "admin", password = "pw",
                                   allow_insecure_basic = true }))
    assert.is_truthy(aap.connect({ url = "https://gateway.example.com", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://127.0.0.1:1", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://[::1]:1", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://localhost:1", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://[::ffff:127.0.0.1]:1", username = "admin", password = "pw" }))
    for _, url in ipairs({ "http://127.attacker.example", "http://127.0.0.1.attacker.example",
                           "http://localhost.attacker.example", "http://[::ffff:10.0.0.1]:1" }) do
      local t, e = aap.connect({ url = url, username = "admin", password = "pw" })
      assert.is_nil(t, url)
      assert.equals("insecure", e.code)
    end
    assert.is_truthy(aap.connect({ url = "http://127.255.0.9:1", username = "admin", password = "pw" }))
    -- a token is a credential too (issue #11)
    local t, e = aap.connect({ url = "http://gateway.example.com", token = "abc" })
    assert.is_nil(t)
    assert.equals("insecure", e.code)
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com", token = "abc", allow_plain_http = true }))
    -- no credential: nothing to protect
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com" }))
  end)
end)

describe("aap.Session lifecycle", function()
  it("has a complete metatable", function()
    local s = aap.connect({ url = "https://gateway.example.com/" })
    local mt = getmetatable(s)
    assert.equals("aap.Session", mt.__name)
    assert.is_function(mt.__gc)
    assert.is_function(mt.__close)
    assert.is_function(mt.__tostring)
    assert.is_table(mt.__index)
    s:close()
  end)

  it("says what it is in tostring, without secrets, and says insecure", function()
    local s = aap.connect({ url = "https://gw.example.com/", username = "admin", password = "s3cret-pw" })
    assert.equals("aap.Session(https://gw.example.com, auto, basic)", tostring(s))
    local t = aap.connect({ url = "https://gw.example.com", token = "tok-SECRET-123", insecure = true,
                            flavor = "controller" })
    local str = tostring(t)
    assert.matches("insecure", str)
    assert.matches("controller", str)
    assert.is_nil(str:find("SECRET", 1, true))
    assert.is_nil(tostring(s):find("s3cret", 1, true))
  end)

  it("closes idempotently and raises on use after close", function()
    local s = aap.connect({ url = "https://gw.example.com/", flavor = "gateway" })
    s:close()
    s:close()
    assert.equals("aap.Session(closed)", tostring(s))
    for _, call in ipairs({ "ping", "me", "tokens", "stats", "flavor" }) do
      assert.has_error(function() s[call](s) end, "attempt to use a closed aap.Session")
    end
  end)

  it("closes through <close>", function()
    local kept
    do
      local s <close> = aap.connect({ url = "https://gw.example.com/" })
      kept = s
    end
    assert.equals("aap.Session(closed)", tostring(kept))
    kept:close()
  end)

  it("reads HTTP dates with libcurl's parser, and nothing else as one", function()
    assert.equals(1796288400, aap.parse_http_date("Thu, 03 Dec 2026 09:00:00 GMT"))
    assert.equals("2026-12-03T09:00:00Z", aap.format_time(aap.parse_http_date("Thu, 03 Dec 2026 09:00:00 GMT")))
    for _, bad in ipairs({ "", "tomorrow", "Thu, 03 Dec 2026 09:00:00 GMT\0x", ("x"):rep(100) }) do
      assert.is_nil(aap.parse_http_date(bad))
    end
    assert.has_error(function() aap.parse_http_date(nil) end)
  end)

  it("survives the garbage collector, open or closed: every session is finalized, the shared caches stay", function()
    local weak = setmetatable({}, { __mode = "k" })
    for _ = 1, 50 do weak[aap.connect({ url = "https://gw.example.com/" })] = true end
    local s = aap.connect({ url = "https://gw.example.com/" })
    s:close()
    weak[s] = true
    s = nil -- luacheck: ignore
    collectgarbage()
    collectgarbage()
    assert.is_nil(next(weak))
    -- a session made after them still works with the state's shared caches
    local t = aap.connect({ url = "https://gw.example.com/" })
    assert.matches("^aap%.Session%(", tostring(t))
    assert.is_table(t:stats())
    t:close()
  end)

  it("raises on wrong argument types to calls", function()
    local s = aap.connect({ url = "https://gw.example.com/", flavor = "gateway" })
    assert.has_error(function() s:token("seven") end)
    assert.has_error(function() s:token(1.5) end)
    assert.has_error(function() s:tokens("x") end)
    assert.has_error(function() s:create_token({ bogus = 1 }) end)
    assert.has_error(function() s:create_token({ application = "3" }) end)
    assert.has_error(function() s:create_token({ application = 1.5 }) end)
    assert.has_error(function() s:update_token(1) end)
    assert.has_error(function() s:application({}) end)
    assert.has_error(function() s:application("x", { org = 1 }) end)
    assert.has_error(function() s:application("by name is aap.apps.find") end)
    assert.has_error(function() s:application(1.5) end)
    local apps = require("aap.apps")
    assert.has_error(function() apps.find(s, {}) end)
    assert.has_error(function() apps.find(s, "x", { org = 1 }) end)
    assert.has_error(function() apps.find(s, "x", { organization = 1.5 }) end)
    assert.has_error(function() apps.find(s, "x", { organization = true }) end)
    assert.has_error(function() apps.find(s, "x", "Default") end)
    assert.has_error(function() s:create_application({ name = "x" }) end)
    assert.has_error(function() s:refresh({ client_id = "c" }) end)
    assert.has_error(function() s:refresh({ refresh_token = "r", client_id = "c", extra = 1 }) end)
    assert.has_error(function() s:revoke({ token = "t" }) end)
    assert.has_error(function() s:request("FETCH", "ping/") end)
    assert.has_error(function() s:request("GET", "ping/", { headers = {} }) end)
    assert.has_error(function() s:request("POST", "x/", { json = {}, form = {} }) end)
    assert.has_error(function() s.ping(42) end)
    s:close()
  end)

  it("rejects paths and query values with NUL, CR or LF, and absolute URLs as paths", function()
    local s = aap.connect({ url = "http://127.0.0.1:" .. dead_port(), flavor = "gateway" })
    assert.has_error(function() s:request("GET", "ping/\r\nX-Evil: 1") end)
    assert.has_error(function() s:request("GET", "ping/\0") end)
    assert.has_error(function() s:request("GET", "ping/ x") end)
    assert.has_error(function() s:request("GET", "http://other.example/") end)
    assert.has_error(function() s:request("GET", "//other.example/x") end)
    assert.has_error(function() s:tokens({ description = "a\r\nb" }) end)
    assert.has_error(function() s:tokens({ ["x\n"] = "1" }) end)
    assert.has_error(function() s:tokens({ user = {} and function() end }) end)
    s:close()
  end)
end)

describe("transport failures", function()
  it("returns connect for a refused connection, with no secret in the error", function()
    local s = aap.connect({ url = "http://127.0.0.1:" .. dead_port(), username = "admin",
                            password = "Pa55-secret", retries = 0 })
    local r, err = s:ping()
    assert.is_nil(r)
    assert.equals("aap.Error", getmetatable(err).__name)
    assert.equals("connect", err.code)
    assert.is_nil(err.status)
    assert.equals("GET", err.method)
    assert.equals("/api/gateway/v1/ping/", err.path)
    local line = tostring(err)
    assert.matches("^connect: ", line)
    assert.is_nil(line:find("\n", 1, true))
    assert.is_nil(line:find("Pa55", 1, true))
    assert.equals(1, s:stats().requests)
    s:close()
  end)

  it("retries a refused connection (nothing was sent), even for POST", function()
    local s = aap.connect({ url = "http://127.0.0.1:" .. dead_port(), flavor = "gateway", token = "t",
                            retries = 2, backoff = 0.001 })
    local tok, err = s:create_token({ description = "x" })
    assert.is_nil(tok)
    assert.equals("connect", err.code)
    assert.equals("POST", err.method)
    assert.equals(3, s:stats().requests)
    assert.equals(2, s:stats().retries)
    s:close()
  end)

  it("times out against a server that never answers", function()
    -- The kernel completes the handshake on a listening socket nobody accepts from.
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local s = aap.connect({ url = "http://127.0.0.1:" .. port, flavor = "gateway", timeout = 0.3, retries = 0 })
    local r, err = s:ping()
    assert.is_nil(r)
    assert.equals("timeout", err.code)
    s:close()
    srv:close()
  end)

  it("reports a host that does not resolve as connect", function()
    local s = aap.connect({ url = "https://no-such-host.invalid", flavor = "gateway", retries = 0 })
    local r, err = s:ping()
    assert.is_nil(r)
    assert.equals("connect", err.code)
    s:close()
  end)

  it("reports detection failures through flavor()", function()
    local s = aap.connect({ url = "http://127.0.0.1:" .. dead_port(), retries = 0 })
    local f, err = s:flavor()
    assert.is_nil(f)
    assert.equals("connect", err.code)
    local it = s:each_token()
    local tok, e2 = it()
    assert.is_false(tok)
    assert.equals("connect", e2.code)
    assert.is_nil(it())
    s:close()
  end)
end)
