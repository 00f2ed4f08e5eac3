-- aap sim: /o/token/ (refresh and password grants, rotation, every §8.5 error) and
-- /o/revoke_token/ (API doc §8, §9).
local helper = require("helper")
local mime = require("mime")

local B = "/api/gateway/v1/"
local FORM = "application/x-www-form-urlencoded"
local function n(x) return math.tointeger(x) end

describe("aap sim OAuth endpoints", function()
  local sim, app

  local function admin() return { "admin", sim.admin_password } end

  local function basic(id, secret)
    return "Basic " .. mime.b64(id .. ":" .. secret)
  end

  local function post(path, form, auth, extra)
    local headers = { ["content-type"] = FORM }
    if auth then headers.authorization = auth end
    for k, v in pairs(extra or {}) do headers[k] = v end
    return sim:raw("POST", path, { headers = headers, body = form })
  end

  local function token_post(form, auth)
    local st, body, h = post("/o/token/", form, auth == nil and basic(app.client_id, app.client_secret) or auth or nil)
    return st, helper.json.decode(body) or body, h, body
  end

  local function app_token(scope)
    local st, body = sim:json("POST", B .. "tokens/", { basic = admin(),
      json = { application = app.id, description = "app token", scope = scope or "read" } })
    assert.equal(201, st)
    return body
  end

  setup(function()
    sim = helper.start_sim()
    app = sim.seed.application
  end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset() end)

  describe("refresh grant", function()
    it("answers 201 with the oauthlib body, in order, with no-store headers and no X-API headers", function()
      local t = app_token("read")
      local st, body, h, raw = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
      assert.equal(201, st)
      assert.matches('^{"access_token": "%w+", "expires_in": 31536000000, "token_type": "Bearer", '
        .. '"scope": "read", "refresh_token": "%w+"}$', raw)
      assert.equal(30, #body.access_token)
      assert.equal("application/json", h["content-type"])
      assert.equal("no-store", h["cache-control"])
      assert.equal("no-cache", h["pragma"])
      assert.is_nil(h["x-api-product-name"])
      assert.is_nil(h["x-api-time"])
    end)

    it("rotates: old access token deleted, old refresh revoked, new token by _system with source_refresh_token",
      function()
        local t = app_token("read")
        local _, body = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
        -- the old access token is gone
        local st = sim:json("GET", B .. "tokens/" .. n(t.id) .. "/", { basic = admin() })
        assert.equal(404, st)
        st = sim:json("GET", B .. "me/", { bearer = t.token })
        assert.equal(401, st)
        -- reusing the old refresh token
        local st2, err = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
        assert.equal(400, st2)
        assert.same({ error = "invalid_grant" }, err)
        -- the new token
        local _, list = sim:json("GET", B .. "users/" .. n(sim.seed.admin.id) .. "/authorized_tokens/",
          { bearer = body.access_token })
        assert.equal(1, list.count)
        local nt = list.results[1]
        assert.is_true(nt.id > t.id)
        assert.equal("", nt.description)
        assert.equal(1, nt.created_by)
        assert.equal(1, nt.modified_by)
        assert.equal("_system", nt.summary_fields.created_by.username)
        assert.is_number(nt.summary_fields.source_refresh_token.id)
        assert.equal("read", nt.scope)
        assert.equal(app.id, nt.application)
        assert.equal(sim.seed.admin.id, nt.user)
        assert.is_string(nt.last_used) -- set by the request that listed it
        -- the new refresh token works in turn
        local st3 = token_post("grant_type=refresh_token&refresh_token=" .. body.refresh_token)
        assert.equal(201, st3)
      end)

    it("narrows the scope to a subset, refuses a wider one", function()
      local t = app_token("read write")
      local st, body = token_post("grant_type=refresh_token&scope=read&refresh_token=" .. t.refresh_token)
      assert.equal(201, st)
      assert.equal("read", body.scope)
      st, body = token_post("grant_type=refresh_token&scope=write&refresh_token=" .. body.refresh_token)
      assert.equal(400, st)
      assert.same({ error = "invalid_scope" }, body)
    end)

    it("authenticates the client with form fields too", function()
      local t = app_token()
      local st = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token .. "&client_id="
        .. app.client_id .. "&client_secret=" .. app.client_secret, false)
      assert.equal(201, st)
    end)

    it("the refresh token of a deleted access token: a 500 HTML page (2024), invalid_grant (2025), or allowed",
      function()
        local t = app_token()
        assert.equal(204, (sim:raw("DELETE", B .. "tokens/" .. n(t.id) .. "/", { basic = admin() })))
        local st, body, h = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
        assert.equal(500, st)
        assert.equal("text/html; charset=utf-8", h["content-type"])
        assert.matches("<title>Server Error %(500%)</title>", body)
        sim:configure({ behaviour = "2025" })
        st, body = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
        assert.equal(400, st)
        assert.same({ error = "invalid_grant" }, body)
        sim:configure({ refresh_after_delete = true })
        st = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
        assert.equal(201, st)
      end)

    it("an expired refresh token: 403 plain text, checked before client authentication", function()
      local t = app_token()
      sim:advance(2628000 + 5)
      local st, _, h, raw = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token,
        basic(app.client_id, "wrong"))
      assert.equal(403, st)
      assert.equal("The refresh token has expired.", raw)
      assert.equal("text/html; charset=utf-8", h["content-type"])
    end)

    it("the access token expires by the clock too", function()
      sim:configure({ access_token_lifetime = 100 })
      local t = app_token()
      local _, body = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
      assert.equal(100, body.expires_in)
      assert.equal(200, (sim:json("GET", B .. "me/", { bearer = body.access_token })))
      sim:advance(101)
      local st, _, h = sim:json("GET", B .. "me/", { bearer = body.access_token })
      assert.equal(401, st)
      assert.matches("The access token has expired", h["www-authenticate"], 1, true)
    end)

    it("an external user's refresh is a 403 plain-text access_denied", function()
      local ext = sim.seed.external
      sim:configure({ allow_external_users = true })
      local st, t = token_post("grant_type=password&username=" .. ext.username .. "&password=" .. ext.password)
      assert.equal(201, st)
      sim:configure({ allow_external_users = false })
      local st2, _, _, raw = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
      assert.equal(403, st2)
      assert.equal("(access_denied) OAuth2 Tokens cannot be created by users associated with an external "
        .. "authentication provider (LDAP)", raw)
    end)
  end)

  describe("password grant", function()
    it("gives 'read write' by default and the asked scope otherwise", function()
      local a = sim.seed.admin
      local st, body = token_post("grant_type=password&username=admin&password=" .. a.password)
      assert.equal(201, st)
      assert.equal("read write", body.scope)
      st, body = token_post("grant_type=password&username=admin&scope=write&password=" .. a.password)
      assert.equal(201, st)
      assert.equal("write", body.scope)
      st, body = token_post("grant_type=password&username=admin&scope=admin&password=" .. a.password)
      assert.equal(400, st)
      assert.same({ error = "invalid_scope" }, body)
    end)

    it("bad user credentials: invalid_grant with its description, in oauthlib's separators", function()
      local st, _, _, raw = token_post("grant_type=password&username=admin&password=nope")
      assert.equal(400, st)
      assert.equal('{"error": "invalid_grant", "error_description": "Invalid credentials given."}', raw)
    end)

    it("a missing field: invalid_request", function()
      local st, body = token_post("grant_type=password&password=x")
      assert.equal(400, st)
      assert.same({ error = "invalid_request", error_description = "Request is missing username parameter." }, body)
    end)

    it("an application of another grant type: unauthorized_client", function()
      local st, created = sim:json("POST", B .. "applications/", { basic = admin(), json = {
        name = "web", organization = 1, client_type = "confidential",
        authorization_grant_type = "authorization-code" } })
      assert.equal(201, st)
      local st2, body = token_post("grant_type=password&username=admin&password=" .. sim.seed.admin.password,
        basic(created.client_id, created.client_secret))
      assert.equal(400, st2)
      assert.same({ error = "unauthorized_client" }, body)
    end)
  end)

  describe("errors", function()
    it("bad or missing client credentials: 401 invalid_client with its WWW-Authenticate", function()
      local t = app_token()
      for _, auth in ipairs{ basic(app.client_id, "wrong-secret"), basic("nobody", "x"), false,
                             "basic " .. mime.b64(app.client_id .. ":" .. app.client_secret) } do
        local st, body, h = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token, auth)
        assert.equal(401, st)
        assert.same({ error = "invalid_client" }, body)
        assert.equal('Bearer error="invalid_client"', h["www-authenticate"])
        assert.equal("no-store", h["cache-control"])
      end
    end)

    it("unknown refresh token: invalid_grant; missing: invalid_request", function()
      local st, body = token_post("grant_type=refresh_token&refresh_token=nope")
      assert.equal(400, st)
      assert.same({ error = "invalid_grant" }, body)
      st, body = token_post("grant_type=refresh_token")
      assert.equal(400, st)
      assert.same({ error = "invalid_request", error_description = "Missing refresh token parameter." }, body)
    end)

    it("another client's refresh token: invalid_grant", function()
      local _, other = sim:json("POST", B .. "applications/", { basic = admin(), json = {
        name = "other", organization = 1, client_type = "confidential", authorization_grant_type = "password" } })
      local t = app_token()
      local st, body = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token,
        basic(other.client_id, other.client_secret))
      assert.equal(400, st)
      assert.same({ error = "invalid_grant" }, body)
    end)

    it("missing or unknown grant type, and any JSON body: unsupported_grant_type", function()
      for _, form in ipairs{ "", "grant_type=magic" } do
        local st, body = token_post(form)
        assert.equal(400, st)
        assert.same({ error = "unsupported_grant_type" }, body)
      end
      local t = app_token()
      local st, body = sim:raw("POST", "/o/token/", { headers = {
        authorization = basic(app.client_id, app.client_secret) },
        json = { grant_type = "refresh_token", refresh_token = t.refresh_token } })
      assert.equal(400, st)
      assert.equal('{"error": "unsupported_grant_type"}', body)
    end)

    it("a query string: 400 plain text", function()
      local st, body = post("/o/token/?x=1", "grant_type=password", basic(app.client_id, app.client_secret))
      assert.equal(400, st)
      assert.matches("^%(invalid_request%) URL query parameters are not allowed", body)
    end)

    it("GET: 405 with an empty body and Allow: POST, OPTIONS", function()
      local st, body, h = sim:raw("GET", "/o/token/")
      assert.equal(405, st)
      assert.equal("", body)
      assert.equal("POST, OPTIONS", h["allow"])
    end)
  end)

  describe("/o/revoke_token/", function()
    it("revokes an access token: 200 with an empty text/html body", function()
      local _, t = token_post("grant_type=password&username=admin&password=" .. sim.seed.admin.password)
      local st, body, h = post("/o/revoke_token/", "token=" .. t.access_token, basic(app.client_id, app.client_secret))
      assert.equal(200, st)
      assert.equal("", body)
      assert.equal("text/html; charset=utf-8", h["content-type"])
      assert.equal(401, (sim:json("GET", B .. "me/", { bearer = t.access_token })))
    end)

    it("revokes a refresh token and its access token", function()
      local _, t = token_post("grant_type=password&username=admin&password=" .. sim.seed.admin.password)
      local st = post("/o/revoke_token/", "token_type_hint=refresh_token&token=" .. t.refresh_token,
        basic(app.client_id, app.client_secret))
      assert.equal(200, st)
      assert.equal(401, (sim:json("GET", B .. "me/", { bearer = t.access_token })))
      local st2, body = token_post("grant_type=refresh_token&refresh_token=" .. t.refresh_token)
      assert.equal(400, st2)
      assert.same({ error = "invalid_grant" }, body)
    end)

    it("answers 200 for unknown tokens, and changes nothing in noop mode", function()
      assert.equal(200, (post("/o/revoke_token/", "token=unknown", basic(app.client_id, app.client_secret))))
      sim:configure({ revoke_token = "noop" })
      local _, t = token_post("grant_type=password&username=admin&password=" .. sim.seed.admin.password)
      assert.equal(200, (post("/o/revoke_token/", "token=" .. t.access_token, basic(app.client_id, app.client_secret))))
      assert.equal(200, (sim:json("GET", B .. "me/", { bearer = t.access_token })))
    end)

    it("its errors", function()
      local st, body = post("/o/revoke_token/", "", basic(app.client_id, app.client_secret))
      assert.equal(400, st)
      assert.same({ error = "invalid_request", error_description = "Missing token parameter." },
        helper.json.decode(body))
      st, body = post("/o/revoke_token/", "token=x", basic(app.client_id, "bad"))
      assert.equal(401, st)
      assert.same({ error = "invalid_client" }, helper.json.decode(body))
      -- oauthlib ignores a hint it does not know
      st, body = post("/o/revoke_token/", "token=x&token_type_hint=id_token", basic(app.client_id, app.client_secret))
      assert.equal(200, st)
      assert.equal("", body)
      st, body = sim:raw("GET", "/o/revoke_token/")
      assert.equal(405, st)
      assert.equal("", body)
    end)
  end)

  it("/o/authorize/ is a login page: a redirect to the login with next=", function()
    local p = io.popen("curl -s -o /dev/null -w '%{http_code} %header{location}' "
      .. helper.shquote(sim.url .. "/o/authorize/?client_id=x&response_type=code"))
    local out = p:read("a")
    p:close()
    assert.equal("302 /api/gateway/v1/login/?next=/o/authorize/%3Fclient_id%3Dx%26response_type%3Dcode", out)
  end)

  it("GET /o/ answers the endpoint map anonymously, with the DRF headers", function()
    local st, body, h = sim:raw("GET", "/o/")
    assert.equal(200, st)
    assert.equal('{"authorize":"/o/authorize/","revoke_token":"/o/revoke_token/","token":"/o/token/"}', body)
    assert.equal("Unnamed", h["x-api-product-name"])
  end)
end)
