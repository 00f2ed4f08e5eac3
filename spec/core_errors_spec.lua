-- errors.c: aap.Error - the stable codes, the fields, tostring, and how an answer's HTTP
-- status becomes a code, seen through a session against the emulator. The statuses the
-- emulator never gives (409, 412, 415, 418) and the message rules (one line, 300 bytes cut on
-- a UTF-8 boundary, no secret) are core_transport_spec's scripted stub's. The one table of
-- codes and the Lua side of the contract: errors_spec.lua.
local h = require("helper")
local aap = require("aap")

local CODES = { "auth", "forbidden", "expired", "not_found", "ambiguous", "invalid", "conflict",
                "rate_limited", "server", "bad_response", "too_large", "redirect", "timeout",
                "connect", "tls", "insecure" }

describe("aap.codes", function()
  it("is the set of the documented codes, nothing else", function()
    local n = 0
    for k, v in pairs(aap.codes) do
      n = n + 1
      assert.equals(k, v)
    end
    for _, c in ipairs(CODES) do assert.equals(c, aap.codes[c]) end
    assert.equals(#CODES, n)
  end)
end)

describe("aap.error and tostring(err)", function()
  it("makes an aap.Error with the core's metatable: the fields given, then code and message", function()
    local e = aap.error("not_found", "no application named 'x'",
      { method = "GET", path = "/api/gateway/v1/applications/" })
    assert.equals("aap.Error", getmetatable(e).__name)
    assert.equals(getmetatable(select(2, aap.parse_time("x"))), getmetatable(e))
    assert.same({ code = "not_found", message = "no application named 'x'", method = "GET",
                  path = "/api/gateway/v1/applications/" }, setmetatable(e, nil))
    -- code and message win over the fields'
    local f = aap.error("server", "down", { status = 503, code = "auth", message = "other" })
    assert.equals("server", f.code)
    assert.equals("down", f.message)
    assert.equals(503, f.status)
  end)

  it("says code: message (HTTP status, METHOD path), leaving out what is missing; plain: the message", function()
    assert.equals("auth: Invalid username/password. (HTTP 401, GET /api/gateway/v1/me/)",
      tostring(aap.error("auth", "Invalid username/password.", { status = 401, method = "GET",
                                                                 path = "/api/gateway/v1/me/" })))
    assert.equals("server: down (HTTP 503)", tostring(aap.error("server", "down", { status = 503 })))
    assert.equals("timeout: slow (GET /x/)", tostring(aap.error("timeout", "slow", { method = "GET", path = "/x/" })))
    assert.equals("invalid: bad", tostring(aap.error("invalid", "bad")))
    -- method without path says neither
    assert.equals("invalid: bad", tostring(aap.error("invalid", "bad", { method = "GET" })))
    assert.equals("a sentence for the operator", tostring(aap.error("usage", "a sentence for the operator",
      { plain = true, status = 400 })))
    -- a table that only looks like one
    local mt = getmetatable(aap.error("tls", "x"))
    assert.equals("error", mt.__tostring({}))
    assert.equals("conflict: taken (HTTP 409)", mt.__tostring({ code = "conflict", message = "taken", status = 409 }))
  end)

  it("raises on arguments of the wrong type (the code is aap.errors.new's to check)", function()
    assert.has_error(function() aap.error(nil, "x") end)
    assert.has_error(function() aap.error("server") end)
    assert.has_error(function() aap.error("server", "x", "fields") end)
  end)
end)

describe("HTTP status -> code, through a session", function()
  local sim

  setup(function() sim = h.start_sim({ args = { "--controls" } }) end)
  teardown(function()
    sim:stop()
    h.cleanup()
  end)
  before_each(function() sim:reset() end)

  local function connect(extra)
    local o = { url = sim.url, username = "admin", password = h.ADMIN_PASSWORD, flavor = "gateway",
                retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    if o.token then o.username, o.password = nil, nil end
    return assert(aap.connect(o))
  end

  it("401: auth, the server's detail, method and path, no password", function()
    local s <close> = connect({ password = "Wrong-Pa55word" })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("auth", err.code)
    assert.equals(401, err.status)
    assert.equals("GET", err.method)
    assert.equals("/api/gateway/v1/me/", err.path)
    assert.equals(("auth: %s (HTTP 401, GET /api/gateway/v1/me/)"):format(err.message), tostring(err))
    assert.is_nil(tostring(err):find("Wrong-Pa55word", 1, true))
  end)

  it("401 for a Bearer token: the WWW-Authenticate error_description when there is one", function()
    local s <close> = connect({ token = "not-a-token-at-all" })
    local _, err = s:me()
    assert.equals("auth", err.code)
    assert.equals(401, err.status)
    assert.equals("The access token is invalid.", err.message)
    assert.is_nil(tostring(err):find("not-a-token-at-all", 1, true))
  end)

  it("404: not_found; 400: invalid with the fields, sorted into the message", function()
    local s <close> = connect()
    local tok, err = s:token(424242)
    assert.is_nil(tok)
    assert.equals("not_found", err.code)
    assert.equals(404, err.status)
    assert.equals("/api/gateway/v1/tokens/424242/", err.path)
    local bad, verr = s:create_token({ scope = "everything" })
    assert.is_nil(bad)
    assert.equals("invalid", verr.code)
    assert.equals(400, verr.status)
    assert.is_table(verr.fields.scope)
    assert.matches("^scope: ", verr.message)
    assert.equals("POST", verr.method)
  end)

  it("400 from the token endpoint: invalid with the OAuth error", function()
    local s <close> = connect()
    local r, err = s:refresh({ refresh_token = "no-such-refresh-token", client_id = sim.seed.application.client_id,
                               client_secret = sim.seed.application.client_secret })
    assert.is_nil(r)
    assert.equals("invalid", err.code)
    assert.equals(400, err.status)
    assert.equals("invalid_grant", err.oauth_error)
    assert.equals("/o/token/", err.path)
    assert.is_nil(tostring(err):find("no-such-refresh-token", 1, true))
    assert.is_nil(tostring(err):find(sim.seed.application.client_secret, 1, true))
  end)

  it("429: rate_limited with retry_after; 5xx: server with the page's title", function()
    local s <close> = connect()
    sim:fault({ kind = "429", count = 1, retry_after = 7, path = "/api/gateway/v1/me/" })
    local _, rl = s:me()
    assert.equals("rate_limited", rl.code)
    assert.equals(429, rl.status)
    assert.equals(7, rl.retry_after)
    for _, st in ipairs({ 500, 502, 503, 504 }) do
      sim:fault({ kind = tostring(st), count = 1, path = "/api/gateway/v1/me/" })
      local me, err = s:me()
      assert.is_nil(me)
      assert.equals("server", err.code, "HTTP " .. st)
      assert.equals(st, err.status)
      assert.is_nil(err.message:find("<", 1, true), err.message)
      assert.is_true(#err.message > 0 and #err.message <= 303)
    end
  end)

  it("no answer: connect, with unsent when nothing left the machine", function()
    local socket = require("socket")
    local l = assert(socket.bind("127.0.0.1", 0))
    local _, port = l:getsockname()
    l:close()
    local s <close> = assert(aap.connect({ url = "http://127.0.0.1:" .. port, flavor = "gateway", retries = 0 }))
    local _, err = s:ping()
    assert.equals("connect", err.code)
    assert.is_nil(err.status)
    assert.is_true(err.unsent)
    assert.equals("/api/gateway/v1/ping/", err.path)
  end)
end)
