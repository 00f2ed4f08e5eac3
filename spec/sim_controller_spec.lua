-- aap sim --flavor controller: the AAP 2.4 controller's token API (API doc §12.2).
local helper = require("helper")
local mime = require("mime")

local V2 = "/api/v2/"
local function n(x) return math.tointeger(x) end

-- The keys of the top-level JSON object, in wire order.
local function top_keys(text)
  local keys, depth, i = {}, 0, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == '"' then
      local j = i + 1
      while text:sub(j, j) ~= '"' do j = j + (text:sub(j, j) == "\\" and 2 or 1) end
      if depth == 1 and text:sub(j + 1):match("^%s*:") then keys[#keys + 1] = text:sub(i + 1, j - 1) end
      i = j + 1
    else
      if c == "{" or c == "[" then depth = depth + 1 elseif c == "}" or c == "]" then depth = depth - 1 end
      i = i + 1
    end
  end
  return keys
end

describe("aap sim --flavor controller", function()
  local sim

  local function admin() return { "admin", sim.admin_password } end

  setup(function() sim = helper.start_sim({ args = { "--flavor", "controller" } }) end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset() end)

  it("answers the controller's detection routes, and 404 on the gateway's ping", function()
    local st, body = sim:json("GET", "/api/")
    assert.equal(200, st)
    assert.equal("AWX REST API", body.description)
    assert.equal("/api/v2/", body.current_version)
    assert.equal("/api/o/", body.oauth2)
    st, body = sim:json("GET", V2 .. "ping/")
    assert.equal(200, st)
    for _, k in ipairs{ "ha", "version", "active_node", "install_uuid", "instances", "instance_groups" } do
      assert.is_not_nil(body[k], k)
    end
    st, body = sim:json("GET", "/api/gateway/v1/ping/")
    assert.equal(404, st)
    assert.same({ detail = "The requested resource could not be found." }, body)
    assert.equal(404, (sim:raw("GET", "/o/")))
  end)

  it("creates tokens with the controller's fields, in order, masked with asterisks afterwards", function()
    local st, raw, h = sim:raw("POST", V2 .. "tokens/",
      { basic = admin(), json = { description = "ci", scope = "read" } })
    assert.equal(201, st)
    assert.same({ "id", "type", "url", "related", "summary_fields", "created", "modified", "description", "user",
                  "token", "refresh_token", "application", "expires", "scope" }, top_keys(raw))
    local t = helper.json.decode(raw)
    assert.equal("o_auth2_access_token", t.type)
    assert.equal(V2 .. "tokens/" .. n(t.id) .. "/", t.url)
    assert.equal(30, #t.token)
    assert.equal(helper.json.null, t.refresh_token)
    assert.equal("AWX", h["x-api-product-name"])
    assert.is_string(h["x-api-total-time"])
    assert.is_string(h["x-api-request-id"])
    local _, again = sim:json("GET", V2 .. "tokens/" .. n(t.id) .. "/", { basic = admin() })
    assert.equal("************", again.token)
  end)

  it("applications: the controller's fields, masked secret, related.tokens", function()
    local st, raw = sim:raw("GET", V2 .. "applications/" .. n(sim.seed.application.id) .. "/", { basic = admin() })
    assert.equal(200, st)
    assert.same({ "id", "type", "url", "related", "summary_fields", "created", "modified", "name", "description",
                  "client_id", "client_secret", "client_type", "redirect_uris", "authorization_grant_type",
                  "skip_authorization", "organization" }, top_keys(raw))
    local a = helper.json.decode(raw)
    assert.equal("************", a.client_secret)
    assert.equal(V2 .. "applications/" .. n(a.id) .. "/tokens/", a.related.tokens)
  end)

  it("validates scope with the serializer message only", function()
    local st, body = sim:json("POST", V2 .. "tokens/", { basic = admin(), json = { scope = "admin" } })
    assert.equal(400, st)
    assert.same({ scope = { "Must be a simple space-separated string with allowed scopes ['read', 'write']." } }, body)
  end)

  it("takes JSON bodies only", function()
    local st, body = sim:json("POST", V2 .. "tokens/", { basic = admin(),
      headers = { ["content-type"] = "application/x-www-form-urlencoded" }, body = "scope=read" })
    assert.equal(415, st)
    assert.same({ detail = 'Unsupported media type "application/x-www-form-urlencoded" in request.' }, body)
  end)

  it("the longer 401 text and its WWW-Authenticate", function()
    local st, body, h = sim:json("GET", V2 .. "me/")
    assert.equal(401, st)
    assert.same({ detail = "Authentication credentials were not provided. To establish a login session, "
      .. "visit /api/login/." }, body)
    assert.equal("Bearer realm=api authorization_url=/api/o/authorize/", h["www-authenticate"])
  end)

  it("pages of 25", function()
    sim:control("POST", "/__sim/tokens", { count = 30 })
    local _, p = sim:json("GET", V2 .. "tokens/", { basic = admin() })
    assert.equal(30, p.count)
    assert.equal(25, #p.results)
    assert.equal(V2 .. "tokens/?page=2", p.next)
  end)

  it("the POSTable sub-lists", function()
    local app = n(sim.seed.application.id)
    local uid = n(sim.seed.admin.id)
    local st, t = sim:json("POST", V2 .. "applications/" .. app .. "/tokens/", { basic = admin(), json = {} })
    assert.equal(201, st)
    assert.equal(app, t.application)
    assert.equal(30, #t.refresh_token)
    st, t = sim:json("POST", V2 .. "users/" .. uid .. "/personal_tokens/", { basic = admin(),
      json = { application = app } })
    assert.equal(201, st)
    assert.equal(helper.json.null, t.application)
    st, t = sim:json("POST", V2 .. "users/" .. uid .. "/authorized_tokens/", { basic = admin(), json = {} })
    assert.equal(400, st)
    assert.same({ application = { "This field is required." } }, t)
    st = sim:json("POST", V2 .. "users/" .. uid .. "/authorized_tokens/", { basic = admin(),
      json = { application = app } })
    assert.equal(201, st)
    st = sim:json("POST", V2 .. "users/" .. uid .. "/tokens/", { basic = admin(), json = {} })
    assert.equal(201, st)
    local st2, a = sim:json("POST", V2 .. "organizations/1/applications/", { basic = admin(), json = {
      name = "org app", client_type = "public", authorization_grant_type = "password" } })
    assert.equal(201, st2)
    assert.equal(1, a.organization)
    -- personal_tokens lists the requester's tokens, whatever the id in the path
    local _, mine = sim:json("GET", V2 .. "users/999/personal_tokens/", { basic = admin() })
    assert.equal(2, mine.count)
  end)

  it("/api/o/token/ answers 200; /api/o/revoke_token/ revokes", function()
    local app = sim.seed.application
    local auth = "Basic " .. mime.b64(app.client_id .. ":" .. app.client_secret)
    local st, body, h = sim:raw("POST", "/api/o/token/", { headers = { authorization = auth,
      ["content-type"] = "application/x-www-form-urlencoded" },
      body = "grant_type=password&username=admin&password=" .. sim.admin_password })
    assert.equal(200, st)
    assert.equal("no-store", h["cache-control"])
    local tok = helper.json.decode(body)
    st = sim:raw("POST", "/api/o/revoke_token/", { headers = { authorization = auth,
      ["content-type"] = "application/x-www-form-urlencoded" }, body = "token=" .. tok.access_token })
    assert.equal(200, st)
    assert.equal(401, (sim:json("GET", V2 .. "me/", { bearer = tok.access_token })))
  end)

  it("the external-user message names the account type", function()
    local e = sim.seed.external
    local st, body = sim:json("POST", V2 .. "tokens/", { basic = { e.username, e.password }, json = {} })
    assert.equal(403, st)
    assert.same({ detail = "(access_denied) OAuth2 Tokens cannot be created by users associated with an external "
      .. "authentication provider (ldap)" }, body)
  end)
end)
