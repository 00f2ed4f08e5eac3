-- Every aap.Session call against the emulator, in both flavors.
local h = require("helper")
local aap = require("aap")

local function paths_of(log)
  local out = {}
  for i, e in ipairs(log) do out[i] = e.method .. " " .. e.path end
  return out
end

for _, flavor in ipairs({ "gateway", "controller" }) do
  local api = flavor == "gateway" and "/api/gateway/v1/" or "/api/v2/"
  local oauth = flavor == "gateway" and "/o/" or "/api/o/"
  local mask = flavor == "gateway" and "$encrypted$" or "************"

  describe("aap.Session calls (" .. flavor .. ")", function()
    local sim, s, seed

    local function admin(extra)
      local o = { url = sim.url, username = "admin", password = h.ADMIN_PASSWORD, backoff = 0.01 }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(aap.connect(o))
    end

    setup(function()
      -- 1-year tokens (gateways since mid-2025), as the expiry checks below expect
      local args = { "--access-lifetime", "31536000" }
      if flavor == "controller" then args[#args + 1] = "--flavor"; args[#args + 1] = "controller" end
      sim = h.start_sim({ args = args })
      seed = sim.seed
    end)
    teardown(function() sim:stop() end)
    before_each(function()
      sim:reset()
      s = admin()
    end)
    after_each(function() s:close() end)

    it("detects the flavor once and uses its paths", function()
      assert.equals(flavor, s:flavor())
      assert.equals(flavor, s:flavor())
      assert.truthy(s:me())
      assert.matches(flavor, tostring(s))
      local log = paths_of(sim:log())
      assert.equals("GET /api/gateway/v1/ping/", log[1])
      assert.equals("GET " .. api .. "me/", log[#log])
      local pings = 0
      for _, p in ipairs(log) do if p:find("ping/", 1, true) then pings = pings + 1 end end
      assert.equals(flavor == "gateway" and 1 or 2, pings)
    end)

    it("learns the flavor from the first real call, asking nothing more of a gateway", function()
      assert.truthy(s:me())
      local log = paths_of(sim:log())
      assert.equals("GET /api/gateway/v1/me/", log[1])
      assert.equals("GET " .. api .. "me/", log[#log])
      if flavor == "gateway" then assert.equals(1, #log) end
      local n = #log
      assert.equals(flavor, s:flavor())
      assert.truthy(s:me())
      assert.equals(n + 1, #sim:log())
    end)

    if flavor == "controller" then
      it("sends the first call again on the controller's route when the gateway's answered a page", function()
        -- a front end answering any unknown path with an HTML page (here a 502) instead of a 404
        sim:fault({ kind = "502", count = 1, path = "/api/gateway/v1/me/" })
        local me = assert(s:me())
        assert.equals("admin", me.username)
        local log = paths_of(sim:log())
        assert.equals("GET /api/gateway/v1/me/", log[1])
        assert.equals("GET /api/v2/me/", log[#log])
      end)
    end

    it("skips detection when the flavor is given", function()
      local t = admin({ flavor = flavor })
      assert.truthy(t:me())
      assert.same({ "GET " .. api .. "me/" }, paths_of(sim:log()))
      t:close()
    end)

    it("pings", function()
      local p = assert(s:ping())
      assert.is_table(p)
      if flavor == "gateway" then assert.equals("good", p.status) else assert.is_not_nil(p.version) end
    end)

    it("me() is the current user, with integer ids", function()
      local me = assert(s:me())
      assert.equals("admin", me.username)
      assert.equals(seed.admin.id, me.id)
      assert.equals("integer", math.type(me.id))
      assert.is_true(me.is_superuser)
    end)

    it("creates a PAT, reads it back masked, and the PAT authenticates", function()
      local before = os.time()
      local tok = assert(s:create_token({ description = "ci PAT", scope = "write" }))
      assert.equals("aap.Token", getmetatable(tok).__name)
      assert.equals("personal", tok.kind)
      assert.is_false(tok.masked)
      assert.matches("^[A-Za-z0-9]+$", tok.token)
      assert.equals(30, #tok.token)
      assert.is_nil(tok.refresh_token)
      assert.is_nil(tok.application)
      assert.equals("write", tok.scope)
      assert.equals("ci PAT", tok.description)
      assert.equals(seed.admin.id, tok.user)
      assert.equals("integer", math.type(tok.id))
      assert.is_true(tok.expires >= before + 31536000 - 5 and tok.expires <= os.time() + 31536000 + 5)
      assert.is_nil(tostring(tok):find(tok.token, 1, true))

      local again = assert(s:token(tok.id))
      assert.is_true(again.masked)
      assert.is_nil(again.token)
      assert.equals(mask, again.raw.token)
      assert.equals(tok.id, again.id)

      local b = assert(aap.connect({ url = sim.url, token = tok.token }))
      local me = assert(b:me())
      assert.equals("admin", me.username)
      b:close()
      local log = sim:log()
      assert.equals("bearer", log[#log].auth)
    end)

    it("creates an application token with a refresh token", function()
      local tok = assert(s:create_token({ application = seed.application.id, scope = "read", description = "app" }))
      assert.equals("application", tok.kind)
      assert.equals(seed.application.id, tok.application)
      assert.equals(30, #tok.refresh_token)
      assert.equals("read", tok.scope)
      assert.is_nil(tostring(tok):find(tok.refresh_token, 1, true))
    end)

    it("updates and deletes a token", function()
      local tok = assert(s:create_token({ description = "old" }))
      local up = assert(s:update_token(tok.id, { description = "new", scope = "read" }))
      assert.equals("new", up.description)
      assert.equals("read", up.scope)
      assert.is_true(up.masked)
      assert.is_true(s:delete_token(tok.id))
      local gone, err = s:token(tok.id)
      assert.is_nil(gone)
      assert.equals("not_found", err.code)
      assert.equals(404, err.status)
      assert.equals("GET", err.method)
      assert.equals(api .. "tokens/" .. tok.id .. "/", err.path)
      local again, err2 = s:delete_token(tok.id)
      assert.is_nil(again)
      assert.equals("not_found", err2.code)
    end)

    it("lists tokens with filters and sub-list paths", function()
      local pat = assert(s:create_token({ description = "p" }))
      local app = assert(s:create_token({ application = seed.application.id }))
      local all = assert(s:tokens())
      assert.equals(2, #all)
      assert.equals(pat.id, all[1].id)
      local apps = assert(s:tokens({ application = seed.application.id }))
      assert.equals(1, #apps)
      assert.equals(app.id, apps[1].id)
      assert.is_true(apps[1].masked)
      local desc = assert(s:tokens({ order_by = "-id" }))
      assert.equals(app.id, desc[1].id)
      local mine = assert(s:tokens({ path = ("users/%d/tokens/"):format(seed.admin.id) }))
      assert.equals(2, #mine)
      local log = sim:log()
      assert.equals(api .. ("users/%d/tokens/"):format(seed.admin.id), log[#log].path)
    end)

    it("iterates tokens with each_token", function()
      for i = 1, 3 do assert(s:create_token({ description = "t" .. i })) end
      local seen = {}
      for tok, err in s:each_token({ order_by = "id" }) do
        assert.is_nil(err)
        seen[#seen + 1] = tok.description
      end
      assert.same({ "t1", "t2", "t3" }, seen)
    end)

    it("lists, finds and creates applications", function()
      local apps = assert(s:applications())
      assert.equals(1, #apps)
      assert.equals(seed.application.name, apps[1].name)
      local found = assert(require("aap.apps").find(s, seed.application.name))
      assert.equals(seed.application.id, found.id)
      local by_id = assert(s:application(seed.application.id))
      assert.equals(seed.application.name, by_id.name)
      local created = assert(s:create_application({ name = "ci app", organization = seed.organization.id,
                                                    description = "made by a spec" }))
      assert.equals("confidential", created.client_type)
      assert.is_string(created.client_secret)
      assert.not_equals(mask, created.client_secret)
      local again = assert(require("aap.apps").find(s, "ci app", { organization = seed.organization.id }))
      assert.equals(created.id, again.id)
      local no, err = s:application(424242)
      assert.is_nil(no)
      assert.equals("not_found", err.code)
    end)

    it("lists organizations, filtered by the gateway; finds one by name (aap.workflow)", function()
      local orgs = assert(s:organizations())
      assert.is_true(#orgs >= 1)
      local named = assert(s:organizations({ name = seed.organization.name }))
      assert.equals(1, #named)
      assert.equals(seed.organization.id, named[1].id)
      assert.same({}, assert(s:organizations({ name = "no such organization" })))
      local workflow = require("aap.workflow")
      assert.equals(seed.organization.id, workflow.organization_id(s, seed.organization.name))
      local id, err = workflow.organization_id(s, "no such organization")
      assert.is_nil(id)
      assert.equals("not_found", err.code)
      assert.equals('no organization named "no such organization"', err.message)
    end)

    it("refreshes an application token: new pair, old refresh token spent", function()
      local tok = assert(s:create_token({ application = seed.application.id, scope = "read" }))
      local client = { client_id = seed.application.client_id, client_secret = seed.application.client_secret }
      local before = aap.parse_time(aap.format_time(os.time()))
      local r = assert(s:refresh({ refresh_token = tok.refresh_token, client_id = client.client_id,
                                   client_secret = client.client_secret }))
      assert.is_nil(r.id)
      assert.equals("application", r.kind)
      assert.equals("read", r.scope)
      assert.not_equals(tok.token, r.token)
      assert.not_equals(tok.refresh_token, r.refresh_token)
      assert.is_true(r.expires >= before + r.raw.expires_in)
      local log = sim:log()
      assert.equals("POST " .. oauth .. "token/", log[#log].method .. " " .. log[#log].path)
      assert.equals(flavor == "gateway" and 201 or 200, log[#log].status)

      local spent, err = s:refresh({ refresh_token = tok.refresh_token, client_id = client.client_id,
                                     client_secret = client.client_secret })
      assert.is_nil(spent)
      assert.equals("invalid", err.code)
      assert.equals("invalid_grant", err.oauth_error)
      assert.is_nil(tostring(err):find(tok.refresh_token, 1, true))

      local bad, err2 = s:refresh({ refresh_token = r.refresh_token, client_id = client.client_id,
                                    client_secret = "wrong-secret" })
      assert.is_nil(bad)
      assert.equals("auth", err2.code)
      assert.equals(401, err2.status)
      assert.equals("invalid_client", err2.oauth_error)
    end)

    it("refreshes for a public client (client_id in the form, no Basic)", function()
      local app = assert(s:create_application({ name = "public app", organization = seed.organization.id,
                                                client_type = "public" }))
      assert.is_nil(app.client_secret)
      local tok = assert(s:create_token({ application = app.id }))
      local r = assert(s:refresh({ refresh_token = tok.refresh_token, client_id = app.client_id }))
      assert.equals(30, #r.token)
      local bad, err = s:refresh({ refresh_token = r.refresh_token, client_id = "not-a-client" })
      assert.is_nil(bad)
      assert.equals("auth", err.code)
    end)

    it("reports an expired refresh token as expired", function()
      local tok = assert(s:create_token({ application = seed.application.id }))
      assert.equals(200, (sim:advance(2628000 + 60)))
      local r, err = s:refresh({ refresh_token = tok.refresh_token, client_id = seed.application.client_id,
                                 client_secret = seed.application.client_secret })
      assert.is_nil(r)
      assert.equals("expired", err.code)
      assert.equals(403, err.status)
      assert.matches("expired", err.message)
    end)

    it("revokes a token by value", function()
      local tok = assert(s:create_token({ application = seed.application.id }))
      assert.is_true(s:revoke({ token = tok.token, client_id = seed.application.client_id,
                                client_secret = seed.application.client_secret }))
      local b = assert(aap.connect({ url = sim.url, token = tok.token, flavor = flavor }))
      local me, err = b:me()
      assert.is_nil(me)
      assert.equals("auth", err.code)
      b:close()
      local none, err2 = s:revoke({ token = "x", client_id = seed.application.client_id, client_secret = "nope" })
      assert.is_nil(none)
      assert.equals("auth", err2.code)
    end)

    it("request() is the raw escape hatch: status, decoded body, headers; non-2xx is data", function()
      local st, body, headers = s:request("GET", "tokens/", { query = { page_size = 1 } })
      assert.equals(200, st)
      assert.equals(0, body.count)
      assert.matches("json", headers["content-type"])
      local st2, body2 = s:request("GET", "tokens/999999/")
      assert.equals(404, st2)
      assert.is_string(body2.detail)
      local st3, body3 = s:request("POST", "tokens/", { json = { description = "raw", scope = "read" } })
      assert.equals(201, st3)
      assert.equals("raw", body3.description)
      local st4, body4 = s:request("GET", oauth)
      assert.equals(200, st4)
      assert.matches("token/", body4.token)
      local st5 = s:request("POST", oauth .. "token/", { form = { grant_type = "refresh_token", refresh_token = "x",
                                                                 client_id = seed.application.client_id } })
      assert.is_true(st5 == 400 or st5 == 401)
    end)

    it("maps a wrong password to auth, with the server's message and no secret", function()
      local t = assert(aap.connect({ url = sim.url, username = "admin", password = "wrong-Pa55word",
                                     flavor = flavor }))
      local me, err = t:me()
      assert.is_nil(me)
      assert.equals("auth", err.code)
      assert.equals(401, err.status)
      assert.is_true(#err.message > 0)
      assert.is_nil(tostring(err):find("wrong-Pa55word", 1, true))
      t:close()
    end)

    it("tells an invalid bearer token from missing credentials (WWW-Authenticate)", function()
      local t = assert(aap.connect({ url = sim.url, token = "NotARealToken0123456789", flavor = flavor }))
      local me, err = t:me()
      assert.is_nil(me)
      assert.equals("auth", err.code)
      if flavor == "gateway" then assert.equals("The access token is invalid.", err.message) end
      assert.is_nil(tostring(err):find("NotARealToken", 1, true))
      t:close()
    end)

    it("maps validation errors to invalid with fields", function()
      local tok, err = s:create_token({ scope = "admin" })
      assert.is_nil(tok)
      assert.equals("invalid", err.code)
      assert.equals(400, err.status)
      assert.is_table(err.fields.scope)
      assert.matches("scope: ", err.message)
      assert.matches("^invalid: scope: .* %(HTTP 400, POST " .. api:gsub("%p", "%%%0") .. "tokens/%)$", tostring(err))
    end)

    it("maps a read-scope token writing, and an external user, to forbidden", function()
      sim:configure({ scope_permission_on_tokens = true }) -- a later gateway: the 2024 code lets it write
      local ro = assert(s:create_token({ scope = "read" }))
      local t = assert(aap.connect({ url = sim.url, token = ro.token, flavor = flavor }))
      local tok, err = t:create_token({ description = "nope" })
      assert.is_nil(tok)
      assert.equals("forbidden", err.code)
      assert.equals(403, err.status)
      t:close()
      local ext = assert(aap.connect({ url = sim.url, username = seed.external.username,
                                       password = seed.external.password, flavor = flavor }))
      local tok2, err2 = ext:create_token({ description = "nope" })
      assert.is_nil(tok2)
      assert.equals("forbidden", err2.code)
      assert.matches("external", err2.message)
      ext:close()
    end)
  end)
end

describe("flavor detection when it fails", function()
  local sim
  setup(function() sim = h.start_sim() end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset() end)

  local function session()
    return assert(aap.connect({ url = sim.url, username = "admin", password = h.ADMIN_PASSWORD, retries = 0 }))
  end

  it("finds a gateway without ping/ through me/", function()
    sim:fault({ kind = "404", count = 1, path = "/api/gateway/v1/ping/" })
    local s = session()
    assert.equals("gateway", s:flavor())
    assert.truthy(s:me())
    s:close()
  end)

  local PROBES = { "/api/gateway/v1/ping/", "/api/v2/ping/", "/api/", "/api/gateway/v1/me/" }
  local function every_probe_answers(kind)
    for _, p in ipairs(PROBES) do sim:fault({ kind = kind, count = 1, path = p }) end
    return session()
  end

  it("names every URL it tried, with its status", function()
    local s = every_probe_answers("404")
    local f, err = s:flavor()
    assert.is_nil(f)
    assert.equals("bad_response", err.code)
    for _, p in ipairs(PROBES) do
      assert.matches("GET " .. p:gsub("%p", "%%%0") .. " %-> 404", err.message)
    end
    s:close()
  end)

  it("reports a gateway answering 503 as an outage, not as a wrong URL", function()
    local s = every_probe_answers("503")
    local f, err = s:flavor()
    assert.is_nil(f)
    assert.equals("server", err.code)
    assert.equals(503, err.status)
    assert.matches("failing %(HTTP 503%)", err.message)
    assert.not_matches("no AAP gateway", err.message)
    s:close()
  end)
end)
