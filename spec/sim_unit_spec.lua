-- aap sim: the emulator's modules in-process (ordered JSON, codecs, hashing, times, the
-- server's handler-error path).
local socket = require("socket")
local json = require("aap.sim.json")
local codec = require("aap.sim.codec")
local store_mod = require("aap.sim.store")
local server = require("aap.sim.server")

describe("aap.sim.json", function()
  it("keeps key order and encodes compactly, as DRF", function()
    local o = json.obj{ "z", 1, "a", json.arr{}, "m", json.null, "s", "x/é\n\"", "t", true, "e", {} }
    assert.equal('{"z":1,"a":[],"m":null,"s":"x/é\\n\\"","t":true,"e":{}}', json.encode(o))
  end)

  it("encodes as oauthlib: spaced separators, ASCII only", function()
    assert.equal('{"a": "\\u00e9\\ud83d\\ude00", "b": 31536000000}',
      json.encode_oauth(json.obj{ "a", "é😀", "b", 31536000000 }))
  end)

  it("escapes control characters as Python does, and U+2028/2029 as DRF does", function()
    assert.equal('"\\u0001\\t\127"', json.encode("\1\t\127"))
    assert.equal('"a\\u2028b\\u2029"', json.encode("a\u{2028}b\u{2029}"))
  end)

  it("decodes integers as integers and reports Python-style parse errors", function()
    local v = json.decode('{"a": 3, "b": [1, 2.5]}')
    assert.equal("integer", math.type(v.a))
    assert.equal("float", math.type(v.b[2]))
    local _, err = json.decode("")
    assert.equal("Expecting value: line 1 column 1 (char 0)", err)
    _, err = json.decode('{"a":\n x}')
    assert.equal("Expecting value: line 2 column 2 (char 7)", err)
    _, err = json.decode("\255")
    assert.is_string(err)
  end)
end)

describe("aap.sim.codec", function()
  it("decodes base64 like Python's non-validating b64decode", function()
    assert.equal("admin:pw", codec.b64decode("YWRtaW46cHc="))
    assert.equal("admin:pw", codec.b64decode("YWRt!aW46cHc="))
    assert.is_nil(codec.b64decode("YWI"))
    assert.is_nil(codec.b64decode("Y==="))
  end)

  it("parses forms and builds DRF's sorted pagination queries", function()
    assert.same({ { "a b", "1" }, { "k", "" }, { "x", "&" } }, codec.parse_pairs("a+b=1&k&x=%26"))
    assert.equal("a=1&page=2&z=%2F+x", codec.urlencode_sorted({ { "z", "/ x" }, { "page", "2" }, { "a", "1" } }))
  end)

  it("reads multipart fields and skips files", function()
    local body = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n"
      .. "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\ndata\r\n--b--\r\n"
    assert.same({ a = "one" }, codec.parse_multipart(body, "b"))
    assert.is_nil(codec.parse_multipart("garbage", "b"))
  end)
end)

describe("aap.sim.store", function()
  it("stores tokens only as $sha256$ + hex, and finds them by hashing the value", function()
    local seed = store_mod.resolve_seed({}, { admin_password = "pw" })
    local config = {}
    for k, v in pairs(store_mod.DEFAULT_CONFIG) do config[k] = v end
    local st = store_mod.new(seed, config)
    local t, value, rvalue = st:create_token{ user = 2, application = 1, with_refresh = true, created_by = 2 }
    assert.equal(30, #value)
    assert.equal("$sha256$" .. store_mod.sha256_hex(value), t.hash)
    assert.matches("^%$sha256%$%x+$", t.refresh.hash)
    for _, v in pairs(t) do assert.not_equal(value, v) end
    for _, v in pairs(t.refresh) do assert.not_equal(rvalue, v) end
    assert.equal(t, st:token_by_value(value))
    assert.equal(t.refresh, st:refresh_by_value(rvalue))
    -- client secrets are one-way hashed too
    local a = st.apps[1]
    assert.is_nil(a.client_secret)
    assert.is_true(store_mod.secret_matches(a.secret_hash, seed.applications[1].client_secret))
    assert.is_false(store_mod.secret_matches(a.secret_hash, "wrong"))
  end)

  it("formats times as DRF and parses them back", function()
    assert.equal("2026-11-29T10:21:27.047839Z", store_mod.iso(1795947687047839))
    assert.equal("2026-11-29T10:21:27Z", store_mod.iso(1795947687000000))
    assert.equal(1795947687047839, store_mod.parse_iso("2026-11-29T10:21:27.047839Z"))
    assert.equal(store_mod.parse_iso("3026-04-01T10:21:27Z"),
      store_mod.parse_iso("2026-11-29T10:21:27Z") + 31536000000 * 1000000)
    assert.is_nil(store_mod.parse_iso("yesterday"))
  end)

  it("random tokens use [A-Za-z0-9]", function()
    local s = store_mod.random_token(2000)
    assert.equal(2000, #s)
    assert.matches("^[A-Za-z0-9]+$", s)
  end)

  it("validates settings", function()
    local c = { page_size = 50 }
    assert.is_nil((store_mod.merge_config(c, { page_size = 0 })))
    assert.is_nil((store_mod.merge_config(c, { unknown = 1 })))
    assert.is_true(store_mod.merge_config(c, { flavor = "controller" }))
    assert.equal(25, c.page_size)
  end)
end)

describe("aap.sim.server", function()
  it("answers 500 when a handler raises, and keeps serving on the same connection", function()
    local logged = {}
    local srv = server.new{ port = 0, log = function(m) logged[#logged + 1] = m end, handler = function(req)
      if req.path == "/boom" then error("boom") end
      return { status = 200, headers = { { "Content-Type", "text/plain" } }, body = "ok" }
    end }
    local url = assert(srv:start())
    local port = tonumber(url:match(":(%d+)$"))
    local c = assert(socket.connect("127.0.0.1", port))
    c:send("GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
    c:settimeout(0)
    local buf = ""
    for _ = 1, 500 do
      srv:step(0.01)
      local d, _, partial = c:receive(65536)
      buf = buf .. (d or partial or "")
      if buf:find("\r\n\r\nok$") then break end
    end
    c:close()
    local stopped = false
    srv:run(function() stopped = true return true end)
    assert.is_true(stopped)
    assert.matches("^HTTP/1%.1 500 Internal Server Error\r\n", buf)
    assert.matches("HTTP/1%.1 200 OK\r\n.*ok$", buf)
    assert.matches("boom", table.concat(logged, "\n"))
  end)
end)
