-- aap sim: the token resource, authentication and permissions (API doc §4, §5, §11).
local helper = require("helper")

local B = "/api/gateway/v1/"
local function n(x) return math.tointeger(x) end

describe("aap sim tokens", function()
  local sim, admin, user, ext

  local function as_admin() return { "admin", sim.admin_password } end
  local function pat(who, body)
    return sim:json("POST", B .. "tokens/", { basic = who or as_admin(), json = body or { description = "t" } })
  end

  setup(function()
    sim = helper.start_sim()
    admin, user, ext = sim.seed.admin, sim.seed.user, sim.seed.external
  end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset() end)

  describe("create a PAT", function()
    it("answers 201 with the plaintext once, refresh_token null, user forced to the requester", function()
      local st, body, h = pat(nil, { description = "my PAT", scope = "write", user = user.id })
      assert.equal(201, st)
      assert.matches("^[A-Za-z0-9]+$", body.token)
      assert.equal(30, #body.token)
      assert.equal(helper.json.null, body.refresh_token)
      assert.equal(admin.id, body.user)
      assert.equal(admin.id, body.created_by)
      assert.equal(admin.id, body.modified_by)
      assert.equal("my PAT", body.description)
      assert.equal(helper.json.null, body.last_used)
      assert.equal(B .. "tokens/" .. n(body.id) .. "/", body.url)
      assert.equal("application/json", h["content-type"])
      assert.equal("2.5", h["x-api-product-version"])
      local st2, again = sim:json("GET", B .. "tokens/" .. n(body.id) .. "/", { basic = as_admin() })
      assert.equal(200, st2)
      assert.equal("$encrypted$", again.token)
      assert.equal(helper.json.null, again.refresh_token)
    end)

    it("defaults scope to write and description to empty", function()
      local st, body = sim:json("POST", B .. "tokens/", { basic = as_admin(), json = {} })
      assert.equal(201, st)
      assert.equal("write", body.scope)
      assert.equal("", body.description)
    end)

    it("sets expires to now + the access lifetime, with microseconds and Z", function()
      sim:configure({ access_token_lifetime = 3600 })
      local _, body = pat()
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[.%d]*Z$", body.created)
      local function secs(s)
        local y, mo, d, hh, mi, ss = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
        return os.time({ year = y, month = mo, day = d, hour = hh, min = mi, sec = ss })
      end
      local diff = secs(body.expires) - secs(body.created)
      assert.is_true(diff == 3600 or diff == 3599)
    end)

    it("the token authenticates as its owner and updates last_used", function()
      local _, body = pat(nil, { scope = "read" })
      local st, me = sim:json("GET", B .. "me/", { bearer = body.token })
      assert.equal(200, st)
      assert.equal("admin", me.results[1].username)
      local _, again = sim:json("GET", B .. "tokens/" .. n(body.id) .. "/", { basic = as_admin() })
      assert.is_string(again.last_used)
    end)

    it("any authenticated user may create a PAT", function()
      local st, body = pat({ user.username, user.password })
      assert.equal(201, st)
      assert.equal(user.id, body.user)
    end)

    it("accepts form-encoded and multipart bodies as DRF does", function()
      local st, body = sim:json("POST", B .. "tokens/", { basic = as_admin(),
        headers = { ["content-type"] = "application/x-www-form-urlencoded" }, body = "description=form+one&scope=" })
      assert.equal(201, st)
      assert.equal("form one", body.description)
      assert.equal("write", body.scope) -- blank form value: the default
      local mp = "--XyZ\r\nContent-Disposition: form-data; name=\"scope\"\r\n\r\nread\r\n--XyZ--\r\n"
      st, body = sim:json("POST", B .. "tokens/", { basic = as_admin(),
        headers = { ["content-type"] = "multipart/form-data; boundary=XyZ" }, body = mp })
      assert.equal(201, st)
      assert.equal("read", body.scope)
    end)

    it("curl -d without a content type is a form whose only key is the JSON text: a default PAT", function()
      local st, body = sim:json("POST", B .. "tokens/", { basic = as_admin(),
        headers = { ["content-type"] = "application/x-www-form-urlencoded" },
        body = '{"description":"RHDH","scope":"read"}' })
      assert.equal(201, st)
      assert.equal("", body.description)
      assert.equal("write", body.scope)
    end)

    it("?validate=true answers 202 and creates nothing", function()
      local st, body = sim:json("POST", B .. "tokens/?validate=true", { basic = as_admin(), json = {} })
      assert.equal(202, st)
      assert.same({ detail = "Request would have been accepted" }, body)
      local _, list = sim:json("GET", B .. "tokens/", { basic = as_admin() })
      assert.equal(0, list.count)
    end)
  end)

  describe("scope validation", function()
    local cases = {
      { "admin", { "Invalid scope: admin. Must be one of: read, write" } },
      { "read  write", { "Invalid scope: . Must be one of: read, write" } },
      { "read read", { "Must be a simple space-separated string with allowed scopes ['read', 'write']." } },
      { "", { "This field may not be blank." } },
      { string.rep("read ", 8) .. "read", { "Ensure this field has no more than 32 characters." } },
      { string.rep("x", 33), { "Invalid scope: " .. string.rep("x", 33) .. ". Must be one of: read, write",
                               "Ensure this field has no more than 32 characters." } },
      { helper.json.null, { "This field may not be null." } },
      { true, { "Not a valid string." } },
    }
    for _, c in ipairs(cases) do
      it("rejects " .. helper.json.encode(c[1]), function()
        local st, body = pat(nil, { scope = c[1] })
        assert.equal(400, st)
        assert.same({ scope = c[2] }, body)
      end)
    end

    it("accepts 'read write' and trims surrounding blanks", function()
      local st, body = pat(nil, { scope = " read write " })
      assert.equal(201, st)
      assert.equal("read write", body.scope)
    end)

    it("reports field errors in serializer order", function()
      local st, raw = sim:raw("POST", B .. "tokens/", { basic = as_admin(),
        json = { scope = "bad", description = true, application = 999 } })
      assert.equal(400, st)
      local a, d, s = raw:find('"application"'), raw:find('"description"'), raw:find('"scope"')
      assert.is_truthy(a and d and s)
      assert.is_true(a < d and d < s)
    end)
  end)

  describe("application tokens", function()
    it("a superuser gets the token and refresh token in plaintext once", function()
      local app = sim.seed.application
      local st, body = pat(nil, { application = app.id, description = "app token", scope = "read" })
      assert.equal(201, st)
      assert.equal(30, #body.token)
      assert.equal(30, #body.refresh_token)
      assert.equal(app.id, body.application)
      assert.same({ id = app.id, name = app.name }, body.summary_fields.application)
      assert.equal(B .. "applications/" .. n(app.id) .. "/", body.related.application)
      local _, again = sim:json("GET", B .. "tokens/" .. n(body.id) .. "/", { basic = as_admin() })
      assert.equal("$encrypted$", again.token)
      assert.equal("$encrypted$", again.refresh_token)
    end)

    it("is forbidden to a normal user, even with an unknown application", function()
      for _, app in ipairs{ sim.seed.application.id, 999, "7" } do
        local st, body = pat({ user.username, user.password }, { application = app })
        assert.equal(403, st)
        assert.same({ detail = "You do not have permission to perform this action." }, body)
      end
    end)

    it("rejects unknown and ill-typed application ids", function()
      local st, body = pat(nil, { application = 999 })
      assert.equal(400, st)
      assert.same({ application = { 'Invalid pk "999" - object does not exist.' } }, body)
      st, body = pat(nil, { application = "abc" })
      assert.equal(400, st)
      assert.same({ application = { "Incorrect type. Expected pk value, received str." } }, body)
      st, body = pat(nil, { application = true })
      assert.equal(400, st)
      assert.same({ application = { "Incorrect type. Expected pk value, received bool." } }, body)
    end)

    it("gives the token to application.user when the application has one", function()
      local st = sim:json("PATCH", B .. "applications/" .. n(sim.seed.application.id) .. "/",
        { basic = as_admin(), json = { user = user.id } })
      assert.equal(200, st)
      local st2, body = pat(nil, { application = sim.seed.application.id })
      assert.equal(201, st2)
      assert.equal(user.id, body.user)
      assert.equal(admin.id, body.created_by)
    end)
  end)

  describe("external users", function()
    it("get the access_denied 403 on token creation", function()
      local st, body = pat({ ext.username, ext.password }, { scope = "read" })
      assert.equal(403, st)
      assert.same({ detail = "(access_denied) OAuth2 Tokens cannot be created by users associated with an "
        .. "external authentication provider (LDAP)" }, body)
    end)

    it("may create tokens when allow_external_users is on", function()
      sim:configure({ allow_external_users = true })
      local st = pat({ ext.username, ext.password })
      assert.equal(201, st)
    end)
  end)

  describe("detail, update and delete", function()
    it("PATCH and PUT change scope and description and answer masked", function()
      local _, t = pat(nil, { scope = "read" })
      local st, body = sim:json("PATCH", B .. "tokens/" .. n(t.id) .. "/", { basic = as_admin(),
        json = { scope = "write" } })
      assert.equal(200, st)
      assert.equal("write", body.scope)
      assert.equal("", body.description)
      assert.equal("$encrypted$", body.token)
      st, body = sim:json("PUT", B .. "tokens/" .. n(t.id) .. "/",
        { basic = as_admin(), json = { description = "new" } })
      assert.equal(200, st)
      assert.equal("new", body.description)
      st, body = sim:json("PATCH", B .. "tokens/" .. n(t.id) .. "/", { basic = as_admin(), json = { scope = "nope" } })
      assert.equal(400, st)
      assert.same({ scope = { "Invalid scope: nope. Must be one of: read, write" } }, body)
    end)

    it("PATCH may change the application unless token_application_read_only", function()
      local _, t = pat()
      local app = n(sim.seed.application.id)
      local st, body = sim:json("PATCH", B .. "tokens/" .. n(t.id) .. "/", { basic = as_admin(),
        json = { application = app } })
      assert.equal(200, st)
      assert.equal(app, body.application)
      sim:configure({ token_application_read_only = true })
      st, body = sim:json("PATCH", B .. "tokens/" .. n(t.id) .. "/", { basic = as_admin(),
        json = { application = helper.json.null, description = "kept" } })
      assert.equal(200, st)
      assert.equal(app, body.application)
      assert.equal("kept", body.description)
    end)

    it("DELETE answers 204 with no body; the token stops working; a second DELETE is 404", function()
      local _, t = pat()
      local st, body, h = sim:raw("DELETE", B .. "tokens/" .. n(t.id) .. "/", { bearer = t.token })
      assert.equal(204, st)
      assert.equal("", body)
      assert.is_nil(h["content-type"])
      st, body, h = sim:json("GET", B .. "tokens/", { bearer = t.token })
      assert.equal(401, st)
      assert.same({ detail = "Authentication credentials were not provided." }, body)
      assert.equal('Bearer realm="api",error="invalid_token",error_description="The access token is invalid."',
        h["www-authenticate"])
      st, body = sim:json("DELETE", B .. "tokens/" .. n(t.id) .. "/", { basic = as_admin() })
      assert.equal(404, st)
      assert.same({ detail = "No OAuth2AccessToken matches the given query." }, body)
    end)

    it("404 'Not found.' for a non-integer id", function()
      local st, body = sim:json("GET", B .. "tokens/abc/", { basic = as_admin() })
      assert.equal(404, st)
      assert.same({ detail = "Not found." }, body)
    end)

    it("another user's token is 403 to a normal user; the owner and a superuser may read it", function()
      local _, t = pat()
      local st, body = sim:json("GET", B .. "tokens/" .. n(t.id) .. "/", { basic = { user.username, user.password } })
      assert.equal(403, st)
      assert.same({ detail = "You do not have permission to perform this action." }, body)
      local _, mine = pat({ user.username, user.password })
      st = sim:json("GET", B .. "tokens/" .. n(mine.id) .. "/", { basic = { user.username, user.password } })
      assert.equal(200, st)
      st = sim:json("DELETE", B .. "tokens/" .. n(mine.id) .. "/", { basic = as_admin() })
      assert.equal(204, st)
    end)

    it("405 with Allow for methods a route lacks", function()
      local st, body, h = sim:json("POST", B .. "tokens/1/", { basic = as_admin(), json = {} })
      assert.equal(405, st)
      assert.same({ detail = 'Method "POST" not allowed.' }, body)
      assert.equal("GET, PUT, PATCH, DELETE, HEAD, OPTIONS", h["allow"])
      st, body, h = sim:json("DELETE", B .. "tokens/", { basic = as_admin() })
      assert.equal(405, st)
      assert.same({ detail = 'Method "DELETE" not allowed.' }, body)
      assert.equal("GET, POST, HEAD, OPTIONS", h["allow"])
    end)
  end)

  describe("authentication", function()
    it("no credentials: 401, Bearer realm, product name but no version", function()
      local st, body, h = sim:json("GET", B .. "tokens/")
      assert.equal(401, st)
      assert.same({ detail = "Authentication credentials were not provided." }, body)
      assert.equal('Bearer realm="api"', h["www-authenticate"])
      assert.equal("Unnamed", h["x-api-product-name"])
      assert.is_nil(h["x-api-product-version"])
      assert.equal("aap-sim", h["x-api-node"])
      assert.matches("^%d+%.%d%d%ds$", h["x-api-time"])
    end)

    it("wrong Basic password and malformed Basic headers", function()
      local st, body, h = sim:json("GET", B .. "me/", { basic = { "admin", "wrong" } })
      assert.equal(401, st)
      assert.same({ detail = "Invalid username/password." }, body)
      assert.equal('Bearer realm="api"', h["www-authenticate"])
      local cases = {
        ["Basic"] = "Invalid basic header. No credentials provided.",
        ["Basic a b"] = "Invalid basic header. Credentials string should not contain spaces.",
        ["Basic !!!"] = "Invalid basic header. Credentials not correctly base64 encoded.",
        ["Basic bm9jb2xvbg=="] = "Invalid basic header. Credentials not correctly base64 encoded.",
      }
      for header, msg in pairs(cases) do
        st, body = sim:json("GET", B .. "me/", { headers = { authorization = header } })
        assert.equal(401, st)
        assert.same({ detail = msg }, body)
      end
    end)

    it("the bearer scheme word is case-insensitive", function()
      local _, t = pat()
      local st = sim:json("GET", B .. "me/", { headers = { authorization = "bEaReR " .. t.token } })
      assert.equal(200, st)
    end)

    it("an expired token is 401 with 'The access token has expired.'", function()
      sim:configure({ access_token_lifetime = 60 })
      local _, t = pat()
      assert.equal(200, (sim:json("GET", B .. "me/", { bearer = t.token })))
      sim:advance(61)
      local st, body, h = sim:json("GET", B .. "me/", { bearer = t.token })
      assert.equal(401, st)
      assert.same({ detail = "Authentication credentials were not provided." }, body)
      assert.equal('Bearer realm="api",error="invalid_token",error_description="The access token has expired."',
        h["www-authenticate"])
    end)

    it("Basic can be switched off", function()
      sim:configure({ basic_auth = false })
      local st, body = sim:json("GET", B .. "me/", { basic = as_admin() })
      assert.equal(401, st)
      assert.same({ detail = "Authentication credentials were not provided." }, body)
    end)

    it("a read token gets 403 on writes, but not on tokens/ and applications/ (behaviour 2024)", function()
      local _, t = pat(nil, { scope = "read" })
      local st, body = sim:json("POST", B .. "organizations/", { bearer = t.token, json = { name = "nope" } })
      assert.equal(403, st)
      assert.same({ detail = "You do not have permission to perform this action." }, body)
      local created
      st, created = sim:json("POST", B .. "tokens/", { bearer = t.token, json = { scope = "write" } })
      assert.equal(201, st)
      st = sim:json("PATCH", B .. "tokens/" .. n(created.id) .. "/", { bearer = t.token, json = { description = "x" } })
      assert.equal(200, st)
      st = sim:json("PATCH", B .. "applications/1/", { bearer = t.token, json = { description = "x" } })
      assert.equal(200, st)
      sim:configure({ behaviour = "2025" })
      for _, r in ipairs{ { "POST", B .. "tokens/" }, { "PATCH", B .. "tokens/" .. n(created.id) .. "/" },
                          { "PATCH", B .. "applications/1/" } } do
        st, body = sim:json(r[1], r[2], { bearer = t.token, json = { description = "x" } })
        assert.equal(403, st)
        assert.same({ detail = "You do not have permission to perform this action." }, body)
      end
      sim:configure({ scope_permission_on_tokens = false })
      st = sim:json("POST", B .. "tokens/", { bearer = t.token, json = {} })
      assert.equal(201, st)
    end)
  end)

  describe("content negotiation", function()
    it("406 before authentication when Accept matches neither JSON nor HTML", function()
      local st, body = sim:json("GET", B .. "tokens/", { headers = { accept = "text/plain" } })
      assert.equal(406, st)
      assert.same({ detail = "Could not satisfy the request Accept header." }, body)
      for _, ok in ipairs{ "application/json", "application/*;q=0.5", "text/plain, */*", "text/*" } do
        assert.equal(200, (sim:json("GET", B .. "ping/", { headers = { accept = ok } })))
      end
    end)
  end)

  describe("request bodies", function()
    it("415 for an unsupported media type", function()
      local st, body = sim:json("POST", B .. "tokens/", { basic = as_admin(),
        headers = { ["content-type"] = "text/plain" }, body = "hello" })
      assert.equal(415, st)
      assert.same({ detail = 'Unsupported media type "text/plain" in request.' }, body)
      -- no Content-Type at all is text/plain to Django
      st, body = sim:json("POST", B .. "tokens/", { basic = as_admin(), body = "{}" })
      assert.equal(415, st)
      assert.same({ detail = 'Unsupported media type "text/plain" in request.' }, body)
    end)

    it("400 JSON parse error, and for a JSON value that is not an object", function()
      local st, body = sim:json("POST", B .. "tokens/", { basic = as_admin(),
        headers = { ["content-type"] = "application/json" }, body = "{oops" })
      assert.equal(400, st)
      assert.same({ detail = "JSON parse error - Expecting property name enclosed in double quotes: "
        .. "line 1 column 2 (char 1)" }, body)
      st, body = sim:json("POST", B .. "applications/", { basic = as_admin(),
        headers = { ["content-type"] = "application/json" }, body = "[1]" })
      assert.equal(400, st)
      assert.same({ non_field_errors = { "Invalid data. Expected a dictionary, but got list." } }, body)
      st, body = sim:json("POST", B .. "applications/", { basic = as_admin(),
        headers = { ["content-type"] = "application/json" }, body = " [] " })
      assert.equal(400, st)
      assert.same({ non_field_errors = { "Invalid data. Expected a dictionary, but got list." } }, body)
      -- on tokens/, DAB's permission class calls request.data.get() first: a 500
      for _, b in ipairs{ "[1]", "null", '"x"' } do
        local st2, page, h = sim:raw("POST", B .. "tokens/", { basic = as_admin(),
          headers = { ["content-type"] = "application/json" }, body = b })
        assert.equal(500, st2)
        assert.equal("text/html; charset=utf-8", h["content-type"])
        assert.matches("Server Error", page)
      end
    end)
  end)

  describe("gateway generations", function()
    local function span_days(body)
      local function days(s)
        local y, m, d = s:match("^(%d+)-(%d+)-(%d+)")
        return os.time({ year = tonumber(y), month = tonumber(m), day = tonumber(d), hour = 12 }) // 86400
      end
      return days(body.expires) - days(body.created)
    end

    it("behaviour 2024 (the default): 1000-year tokens, and Location on 201", function()
      local st, body, h = sim:json("POST", B .. "tokens/", { basic = as_admin(), json = {} })
      assert.equal(201, st)
      assert.equal(B .. "tokens/" .. n(body.id) .. "/", h.location)
      assert.is_true(math.abs(span_days(body) - 365000) <= 1)
      local _, cfg = sim:control("GET", "/__sim/config")
      assert.equal("2024", cfg.behaviour)
      assert.equal(31536000000, cfg.access_token_lifetime)
    end)

    it("behaviour 2025: 1-year tokens, and each of its settings may still be chosen", function()
      local st, cfg = sim:configure({ behaviour = 2025 })
      assert.equal(200, st)
      assert.equal("2025", cfg.behaviour)
      assert.same({ 31536000, "own", true, "invalid_grant", true, true, true },
        { cfg.access_token_lifetime, cfg.list_visibility, cfg.scope_permission_on_tokens, cfg.refresh_after_delete,
          cfg.nested_list_filters, cfg.app_url, cfg.app_organization_required })
      local _, body = pat()
      assert.is_true(math.abs(span_days(body) - 365) <= 1)
      _, cfg = sim:configure({ behaviour = "2024", access_token_lifetime = 60 })
      assert.equal(60, cfg.access_token_lifetime)
      assert.equal("all", cfg.list_visibility)
      assert.equal(400, (sim:configure({ behaviour = "2023" })))
    end)

    it("--behaviour 2025 at start-up; a flag or state setting wins over its profile", function()
      local s2 = helper.start_sim({ args = { "--behaviour", "2025", "--access-lifetime", "120" } })
      local _, cfg = s2:control("GET", "/__sim/config")
      s2:stop()
      assert.equal("2025", cfg.behaviour)
      assert.equal(120, cfg.access_token_lifetime)
      assert.equal("own", cfg.list_visibility)
    end)

    it("POST /__sim/token_id names the token of a value, from the store", function()
      local _, body = pat()
      assert.equal(n(body.id), sim:token_id(body.token))
      assert.is_nil(sim:token_id("NoSuchToken0123456789abcdefghi"))
      assert.equal(400, (sim:control("POST", "/__sim/token_id", {})))
      local entries = sim:log()
      for _, e in ipairs(entries) do assert.is_nil(e.path:find(body.token, 1, true)) end
    end)
  end)

  describe("storage", function()
    it("keeps no plaintext: a seeded state file's token works, lookups hash the value", function()
      local dir = helper.tmpdir()
      local state = dir .. "/state.lua"
      helper.writefile(state, [[return { tokens = { { user = 2, token = "StateFileToken0123456789abcde", scope = "read",
        description = "from state" } } }]])
      local s2 = helper.start_sim({ args = { "--state", state } })
      local st, body = s2:json("GET", B .. "tokens/", { bearer = "StateFileToken0123456789abcde" })
      s2:stop()
      helper.cleanup()
      assert.equal(200, st)
      assert.equal("from state", body.results[1].description)
      assert.equal("$encrypted$", body.results[1].token)
    end)
  end)

  describe("state files and flags", function()
    it("a JSON state with config, an inactive user, and lifetimes from flags", function()
      local dir = helper.tmpdir()
      local state = dir .. "/state.json"
      helper.writefile(state, helper.json.encode({
        config = { product_name = "Test Gateway", access_token_lifetime = 5 },
        users = { { id = 1, username = "_system", login = false },
                  { id = 2, username = "admin", is_superuser = true },
                  { id = 7, username = "gone", password = "gone-pw", is_active = false } },
      }))
      local s2 = helper.start_sim({ args = { "--state", state, "--access-lifetime", "120",
                                             "--refresh-lifetime", "300" } })
      local st, body, h = s2:json("GET", B .. "me/", { basic = { "gone", "gone-pw" } })
      local app = s2.seed.application
      local st2, t = s2:json("POST", B .. "tokens/", { basic = { "admin", s2.admin_password },
        json = { application = app.id } })
      local r_st, r_body = s2:raw("POST", "/o/token/", { headers = {
        authorization = "Basic " .. require("mime").b64(app.client_id .. ":" .. app.client_secret),
        ["content-type"] = "application/x-www-form-urlencoded" },
        body = "grant_type=refresh_token&refresh_token=" .. t.refresh_token })
      s2:advance(301)
      local e_st = s2:raw("POST", "/o/token/", { headers = {
        ["content-type"] = "application/x-www-form-urlencoded" },
        body = "grant_type=refresh_token&refresh_token=" .. helper.json.decode(r_body).refresh_token })
      s2:stop()
      helper.cleanup()
      assert.equal(401, st)
      assert.same({ detail = "User inactive or deleted." }, body)
      assert.equal("Test Gateway", h["x-api-product-name"])
      assert.equal(201, st2)
      assert.equal(201, r_st)
      assert.equal(120, helper.json.decode(r_body).expires_in) -- the flag wins over the state's config
      assert.equal(403, e_st)
    end)

    it("refuses a state file that does not load", function()
      local dir = helper.tmpdir()
      helper.writefile(dir .. "/bad.lua", "return 42")
      helper.writefile(dir .. "/bad.json", "{ nope")
      local r1 = helper.run({ "sim", "--state", dir .. "/bad.lua" })
      local r2 = helper.run({ "sim", "--state", dir .. "/bad.json" })
      helper.cleanup()
      assert.equal(1, r1.code)
      assert.matches("must return a table", r1.stderr)
      assert.equal(1, r2.code)
      assert.matches("invalid JSON", r2.stderr)
    end)
  end)

  describe("the lesson's commands", function()
    local function sh(cmd, env)
      local parts = {}
      for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. helper.shquote(v) end
      local p = io.popen("env " .. table.concat(parts, " ") .. " bash -c " .. helper.shquote(cmd))
      local out = p:read("a")
      p:close()
      return (out:gsub("%s+$", ""))
    end

    it("create a PAT, find the application id, create an app token", function()
      local env = { AAP_URL = sim.url, AAP_PASSWORD = sim.admin_password }
      local token = sh([[curl -sk -u admin:$AAP_PASSWORD -X POST $AAP_URL/api/gateway/v1/tokens/ ]]
        .. [[-H 'Content-Type: application/json' -d '{"description":"RHDH","scope":"write"}' | jq -r .token]], env)
      assert.matches("^[A-Za-z0-9]+$", token)
      assert.equal(30, #token)
      local id = sh([[curl -sk -u admin:$AAP_PASSWORD $AAP_URL/api/gateway/v1/applications/ ]]
        .. [[| jq '.results[] | select(.name=="RHDH Integration") | .id']], env)
      assert.equal(tostring(n(sim.seed.application.id)), id)
      env.ID = id
      local pair = sh([[curl -sk -u admin:$AAP_PASSWORD -X POST $AAP_URL/api/gateway/v1/tokens/ ]]
        .. [[-H 'Content-Type: application/json' ]]
        .. [[-d "{\"application\": $ID, \"description\": \"RHDH app\", \"scope\": \"write\"}" ]]
        .. [[| jq -r '.token, .refresh_token']], env)
      local t, r = pair:match("^(%w+)\n(%w+)$")
      assert.equal(30, #t)
      assert.equal(30, #r)
      -- the token works as a bearer
      local st = sim:json("GET", B .. "me/", { bearer = token })
      assert.equal(200, st)
    end)
  end)
end)
