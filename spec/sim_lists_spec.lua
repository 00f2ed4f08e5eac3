-- aap sim: lists (pagination, filters, ordering), applications, organizations, users,
-- me/, ping/ and the API roots (API doc §3, §6, §10).
local helper = require("helper")

local B = "/api/gateway/v1/"
local function n(x) return math.tointeger(x) end

describe("aap sim lists and resources", function()
  local sim

  local function admin() return { "admin", sim.admin_password } end
  local function get(path, who) return sim:json("GET", path, { basic = who or admin() }) end

  setup(function() sim = helper.start_sim() end)
  teardown(function() sim:stop() end)
  before_each(function() sim:reset() end)

  describe("pagination over 500 tokens", function()
    before_each(function()
      local st, body = sim:control("POST", "/__sim/tokens", { count = 500, description = "bulk" })
      assert.equal(201, st)
      assert.same({ 1, 500 }, body.ids)
    end)

    it("pages of 50 by default with relative next/previous", function()
      local st, p1 = get(B .. "tokens/")
      assert.equal(200, st)
      assert.equal(500, p1.count)
      assert.equal(50, #p1.results)
      assert.equal(1, p1.results[1].id)
      assert.equal(B .. "tokens/?page=2", p1.next)
      assert.equal(helper.json.null, p1.previous)
      local _, p2 = get(p1.next)
      assert.equal(B .. "tokens/", p2.previous) -- page 1 link drops the page parameter
      assert.equal(B .. "tokens/?page=3", p2.next)
      assert.equal(51, p2.results[1].id)
    end)

    it("walks every page with page_size=200 (capped) and keeps the other parameters, sorted", function()
      local seen, url, pages = {}, B .. "tokens/?page_size=1000&description=bulk", 0
      while url ~= helper.json.null do
        local st, p = get(url)
        assert.equal(200, st)
        pages = pages + 1
        assert.is_true(#p.results <= 200)
        for _, t in ipairs(p.results) do
          assert.is_nil(seen[t.id])
          seen[t.id] = true
          assert.equal("$encrypted$", t.token)
        end
        if p.next ~= helper.json.null then
          assert.matches("^/api/gateway/v1/tokens/%?description=bulk&page=%d&page_size=1000$", p.next)
        end
        url = p.next
      end
      assert.equal(3, pages)
      local count = 0
      for _ in pairs(seen) do count = count + 1 end
      assert.equal(500, count)
    end)

    it("falls back to the default for invalid page sizes", function()
      for _, ps in ipairs{ "0", "abc", "-3" } do
        local _, p = get(B .. "tokens/?page_size=" .. ps)
        assert.equal(50, #p.results)
      end
    end)

    it("404 Invalid page. past the end, for 0 and for non-numbers; 'last' works", function()
      for _, pg in ipairs{ "11", "0", "x" } do
        local st, body = get(B .. "tokens/?page=" .. pg)
        assert.equal(404, st)
        assert.same({ detail = "Invalid page." }, body)
      end
      local _, last = get(B .. "tokens/?page=last")
      assert.equal(451, last.results[1].id)
      assert.equal(helper.json.null, last.next)
    end)

    it("count_disabled gives only results", function()
      local st, body = get(B .. "tokens/?count_disabled=1&page_size=5")
      assert.equal(200, st)
      assert.same({ "results" }, (function() local k = {} for x in pairs(body) do k[#k + 1] = x end return k end)())
      assert.equal(5, #body.results)
    end)

    it("orders by -id", function()
      local _, p = get(B .. "tokens/?order_by=-id&page_size=3")
      assert.same({ 500, 499, 498 }, { p.results[1].id, p.results[2].id, p.results[3].id })
      local _, q = get(B .. "tokens/?order=-id&page_size=1")
      assert.equal(500, q.results[1].id)
    end)
  end)

  describe("filters", function()
    local app
    before_each(function()
      app = sim.seed.application
      sim:control("POST", "/__sim/tokens", { count = 3 })
      sim:control("POST", "/__sim/tokens", { count = 2, application = app.id })
      sim:control("POST", "/__sim/tokens", { count = 1, user = sim.seed.user.id, description = "dev's" })
    end)

    it("application, application__isnull, user", function()
      local _, a = get(B .. "tokens/?application=" .. n(app.id))
      assert.equal(2, a.count)
      local _, pats = get(B .. "tokens/?application__isnull=true")
      assert.equal(4, pats.count)
      local _, apps = get(B .. "tokens/?application__isnull=false")
      assert.equal(2, apps.count)
      local _, u = get(B .. "tokens/?user=" .. n(sim.seed.user.id))
      assert.equal(1, u.count)
      local _, none = get(B .. "tokens/?application=null")
      assert.equal(4, none.count)
      local _, notapp = get(B .. "tokens/?not__application__isnull=true")
      assert.equal(2, notapp.count)
      local _, inq = get(B .. "tokens/?id__in=1,2,99")
      assert.equal(2, inq.count)
    end)

    it("refuses filtering on secret values with 403", function()
      for f, name in pairs{ token = "token", refresh_token__token = "token", token__startswith = "token" } do
        local st, body = get(B .. "tokens/?" .. f .. "=abc")
        assert.equal(403, st)
        assert.same({ detail = "Filtering on " .. name .. " is not allowed." }, body)
      end
      -- refresh_token itself is the relation to the refresh token, by id
      local st, body = get(B .. "tokens/?refresh_token=abc")
      assert.equal(400, st)
      assert.same({ detail = "Invalid refresh_token id: abc" }, body)
      local _, with = get(B .. "tokens/?refresh_token__isnull=false")
      for _, t in ipairs(with.results) do assert.equal("$encrypted$", t.refresh_token) end
      assert.is_true(#with.results > 0)
      st, body = get(B .. "applications/?client_secret=x")
      assert.equal(403, st)
      assert.same({ detail = "Filtering on client_secret is not allowed." }, body)
    end)

    it("400 for unknown fields, bad values and unknown order fields", function()
      local st, body = get(B .. "tokens/?order_by=foo")
      assert.equal(400, st)
      assert.same({ detail = "OAuth2AccessToken has no field named 'foo'" }, body)
      st, body = get(B .. "tokens/?bogus=1")
      assert.equal(400, st)
      assert.same({ detail = "OAuth2AccessToken has no field named 'bogus'" }, body)
      st, body = get(B .. "tokens/?user=abc")
      assert.equal(400, st)
      assert.same({ detail = "Invalid user id: abc" }, body)
      st, body = get(B .. "tokens/?id=abc")
      assert.equal(400, st)
      assert.same({ detail = '["\u{201c}abc\u{201d} value must be an integer."]' }, body)
      st, body = get(B .. "tokens/?id__in=")
      assert.equal(400, st)
      assert.same({ detail = "cannot provide empty value for __in" }, body)
    end)

    it("the user sub-lists; unknown users give an empty list", function()
      local uid = n(sim.seed.admin.id)
      local _, all = get(B .. "users/" .. uid .. "/tokens/")
      assert.equal(5, all.count)
      local _, personal = get(B .. "users/" .. uid .. "/personal_tokens/")
      assert.equal(3, personal.count)
      local _, authorized = get(B .. "users/" .. uid .. "/authorized_tokens/")
      assert.equal(2, authorized.count)
      local st, empty = get(B .. "users/999/tokens/")
      assert.equal(200, st)
      assert.equal(0, empty.count)
      local st3, page, h3 = sim:raw("GET", B .. "users/abc/tokens/", { basic = admin() })
      assert.equal(500, st3)
      assert.equal("text/html; charset=utf-8", h3["content-type"])
      assert.matches("Server Error %(500%)", page)
      local st2, body, h = sim:json("POST", B .. "users/" .. uid .. "/tokens/", { basic = admin(), json = {} })
      assert.equal(405, st2)
      assert.same({ detail = 'Method "POST" not allowed.' }, body)
      assert.equal("GET, HEAD, OPTIONS", h.allow)
    end)

    it("applications/{id}/tokens/ is GET only", function()
      local _, list = get(B .. "applications/" .. n(app.id) .. "/tokens/")
      assert.equal(2, list.count)
      local st = sim:json("POST", B .. "applications/" .. n(app.id) .. "/tokens/", { basic = admin(), json = {} })
      assert.equal(405, st)
    end)

    it("the user sub-lists ignore filters and order_by, and paginate (behaviour 2024)", function()
      local uid = n(sim.seed.admin.id)
      local function ids(body)
        local out = {}
        for i, t in ipairs(body.results) do out[i] = n(t.id) end
        return out
      end
      local _, all = get(B .. "users/" .. uid .. "/tokens/")
      for _, q in ipairs{ "?description=nothing", "?order_by=-id", "?order_by=bogus", "?token=x",
                          "?last_used__isnull=false&order_by=-last_used", "?id__in=" } do
        local st, body = get(B .. "users/" .. uid .. "/tokens/" .. q)
        assert.equal(200, st)
        assert.same(ids(all), ids(body))
      end
      local _, p2 = get(B .. "users/" .. uid .. "/personal_tokens/?page_size=1&page=2&order_by=-id")
      assert.equal(3, p2.count)
      assert.same({ ids(select(2, get(B .. "users/" .. uid .. "/personal_tokens/")))[2] }, ids(p2))
      assert.equal(B .. "users/" .. uid .. "/personal_tokens/?order_by=-id&page=3&page_size=1", p2.next)
      assert.equal(B .. "users/" .. uid .. "/personal_tokens/?order_by=-id&page_size=1", p2.previous)
    end)

    it("behaviour 2025: the user sub-lists honour filters and order_by", function()
      sim:configure({ behaviour = "2025" })
      local uid = n(sim.seed.admin.id)
      local _, none = get(B .. "users/" .. uid .. "/tokens/?description=nothing")
      assert.equal(0, none.count)
      local _, desc = get(B .. "users/" .. uid .. "/tokens/?order_by=-id")
      assert.is_true(desc.results[1].id > desc.results[2].id)
      local st, body = get(B .. "users/" .. uid .. "/tokens/?token=x")
      assert.equal(403, st)
      assert.same({ detail = "Filtering on token is not allowed." }, body)
      st = sim:raw("GET", B .. "users/abc/tokens/", { basic = admin() })
      assert.equal(400, st)
    end)

    it("normal users see every user's tokens, masked; behaviour 2025 shows their own", function()
      local u = sim.seed.user
      local _, all = get(B .. "tokens/", { u.username, u.password })
      assert.equal(6, all.count)
      for _, t in ipairs(all.results) do assert.equal("$encrypted$", t.token) end
      local st = get(B .. "tokens/" .. n(all.results[1].id) .. "/", { u.username, u.password })
      assert.equal(403, st)
      sim:configure({ behaviour = "2025" })
      local _, own = get(B .. "tokens/", { u.username, u.password })
      assert.equal(1, own.count)
      assert.equal("dev's", own.results[1].description)
      sim:configure({ list_visibility = "all" })
      assert.equal(6, select(2, get(B .. "tokens/", { u.username, u.password })).count)
    end)
  end)

  describe("applications", function()
    local valid = { name = "ci", organization = 1, client_type = "confidential", authorization_grant_type = "password" }

    it("filters by exact name, name__icontains and organization", function()
      local st, body = get(B .. "applications/?name=RHDH%20Integration")
      assert.equal(200, st)
      assert.equal(1, body.count)
      st, body = get(B .. "applications/?name__icontains=rhdh&organization=1")
      assert.equal(1, body.count)
      assert.equal(200, st)
      st, body = get(B .. "applications/?name=rhdh%20integration")
      assert.equal(200, st)
      assert.equal(0, body.count)
      st, body = get(B .. "applications/?organization=2")
      assert.equal(200, st)
      assert.equal(0, body.count)
    end)

    it("create: plaintext secret once, masked after; public apps have no client_secret key", function()
      local st, a = sim:json("POST", B .. "applications/", { basic = admin(), json = valid })
      assert.equal(201, st)
      assert.equal(128, #a.client_secret)
      assert.equal(40, #a.client_id)
      local _, again = get(B .. "applications/" .. n(a.id) .. "/")
      assert.equal("$encrypted$", again.client_secret)
      local st2, p = sim:json("PATCH", B .. "applications/" .. n(a.id) .. "/", { basic = admin(),
        json = { description = "x", skip_authorization = false, redirect_uris = "https://x.example/cb" } })
      assert.equal(200, st2)
      assert.equal("$encrypted$", p.client_secret)
      assert.is_false(p.skip_authorization)
      assert.equal("https://x.example/cb", p.redirect_uris)
      local st3, put = sim:json("PUT", B .. "applications/" .. n(a.id) .. "/", { basic = admin(),
        json = { name = "ci2", organization = 1, client_type = "confidential",
                 authorization_grant_type = "password" } })
      assert.equal(200, st3)
      assert.equal("ci2", put.name)
      assert.equal("x", put.description)
      local pub = { name = "pub", organization = 1, client_type = "public", authorization_grant_type = "password" }
      local _, pa = sim:json("POST", B .. "applications/", { basic = admin(), json = pub })
      assert.is_nil(pa.client_secret)
      assert.is_nil(select(2, get(B .. "applications/" .. n(pa.id) .. "/")).client_secret)
    end)

    it("validation errors", function()
      local st, body = sim:json("POST", B .. "applications/", { basic = admin(), json = { name = "x" } })
      assert.equal(400, st)
      assert.same({ client_type = { "This field is required." },
                    authorization_grant_type = { "This field is required." } }, body)
      local bad = { name = "x", organization = 999, client_type = "secret", authorization_grant_type = "password" }
      st, body = sim:json("POST", B .. "applications/", { basic = admin(), json = bad })
      assert.equal(400, st)
      assert.same({ organization = { 'Invalid pk "999" - object does not exist.' },
                    client_type = { '"secret" is not a valid choice.' } }, body)
      bad = { name = "x", organization = helper.json.null, client_type = "public",
              authorization_grant_type = "password" }
      st, body = sim:json("POST", B .. "applications/", { basic = admin(), json = bad })
      assert.equal(400, st)
      assert.same({ organization = { "This field may not be null." } }, body)
      local dup = { name = "RHDH Integration", organization = 1, client_type = "public",
                    authorization_grant_type = "password" }
      st, body = sim:json("POST", B .. "applications/", { basic = admin(), json = dup })
      assert.equal(400, st)
      assert.same({ non_field_errors = { "The fields name, organization must make a unique set." } }, body)
      sim:configure({ behaviour = "2025" })
      st, body = sim:json("POST", B .. "applications/", { basic = admin(), json = { name = "x" } })
      assert.equal(400, st)
      assert.same({ organization = { "This field is required." }, client_type = { "This field is required." },
                    authorization_grant_type = { "This field is required." } }, body)
    end)

    it("an application without organization (behaviour 2024): 201, null, and no name clash", function()
      local noorg = { name = "loose", client_type = "public", authorization_grant_type = "password" }
      for _ = 1, 2 do
        local st, body, h = sim:json("POST", B .. "applications/", { basic = admin(), json = noorg })
        assert.equal(201, st)
        assert.equal(helper.json.null, body.organization)
        assert.is_nil(body.related.organization)
        assert.is_nil(body.summary_fields.organization)
        assert.equal(B .. "applications/" .. n(body.id) .. "/", h.location)
      end
    end)

    it("non-superusers get 403 even for GET (configurable); anonymous 401", function()
      local u = sim.seed.user
      local st, body = get(B .. "applications/", { u.username, u.password })
      assert.equal(403, st)
      assert.same({ detail = "You do not have permission to perform this action." }, body)
      st = sim:json("GET", B .. "applications/")
      assert.equal(401, st)
      sim:configure({ app_read_for_members = true })
      st = get(B .. "applications/", { u.username, u.password })
      assert.equal(200, st)
      st = sim:json("POST", B .. "applications/", { basic = { u.username, u.password }, json = valid })
      assert.equal(403, st)
    end)

    it("DELETE cascades to the application's tokens", function()
      local app = sim.seed.application
      local _, t = sim:json("POST", B .. "tokens/", { basic = admin(), json = { application = app.id } })
      local st, body = sim:raw("DELETE", B .. "applications/" .. n(app.id) .. "/", { basic = admin() })
      assert.equal(204, st)
      assert.equal("", body)
      assert.equal(404, (get(B .. "tokens/" .. n(t.id) .. "/")))
      local st2, b2 = get(B .. "applications/" .. n(app.id) .. "/")
      assert.equal(404, st2)
      assert.same({ detail = "No OAuth2Application matches the given query." }, b2)
    end)

    it("summary_fields.tokens counts and masks up to 10", function()
      local app = sim.seed.application
      sim:control("POST", "/__sim/tokens", { count = 12, application = app.id })
      local _, a = get(B .. "applications/" .. n(app.id) .. "/")
      assert.equal(12, a.summary_fields.tokens.count)
      assert.equal(10, #a.summary_fields.tokens.results)
      assert.equal("$encrypted$", a.summary_fields.tokens.results[1].token)
    end)
  end)

  describe("organizations, users, me, ping and roots", function()
    it("organizations: list, create, duplicate, detail", function()
      local _, list = get(B .. "organizations/")
      assert.equal("Default", list.results[1].name)
      local st, o = sim:json("POST", B .. "organizations/", { basic = admin(), json = { name = "Eng" } })
      assert.equal(201, st)
      assert.equal("Eng", o.name)
      st, o = sim:json("POST", B .. "organizations/", { basic = admin(), json = { name = "Eng" } })
      assert.equal(400, st)
      assert.same({ name = { "organization with this name already exists." } }, o)
      st = get(B .. "organizations/1/")
      assert.equal(200, st)
    end)

    it("me/ is a page holding the requester", function()
      local u = sim.seed.user
      local st, body = get(B .. "me/", { u.username, u.password })
      assert.equal(200, st)
      assert.equal(1, body.count)
      assert.equal(u.username, body.results[1].username)
      assert.is_false(body.results[1].is_superuser)
      assert.equal(401, (sim:json("GET", B .. "me/")))
    end)

    it("ping/ is anonymous unless configured", function()
      local st, body, h = sim:json("GET", B .. "ping/")
      assert.equal(200, st)
      assert.equal("good", body.status)
      assert.is_string(body.pong)
      assert.is_nil(h["x-api-product-version"])
      sim:configure({ ping_requires_auth = true })
      assert.equal(401, (sim:json("GET", B .. "ping/")))
      assert.equal(200, (get(B .. "ping/")))
    end)

    it("the roots for detection", function()
      local st, body = sim:json("GET", "/api/")
      assert.equal(200, st)
      assert.is_string(body.description)
      assert.is_table(body.apis)
      st, body = sim:json("GET", "/api/gateway/")
      assert.equal(200, st)
      assert.equal("/api/gateway/v1/", body.current_version)
      st, body = sim:json("GET", B)
      assert.equal(200, st)
      assert.equal(B .. "tokens/", body.tokens)
      st = sim:json("GET", "/api/v2/ping/")
      assert.equal(404, st)
    end)

    it("HEAD answers GET's headers without a body; OPTIONS describes the view", function()
      local st, body, h = sim:raw("HEAD", B .. "ping/")
      assert.equal(200, st)
      assert.equal("", body)
      assert.is_true(tonumber(h["content-length"]) > 0)
      local st2, o = sim:json("OPTIONS", B .. "tokens/", { basic = admin() })
      assert.equal(200, st2)
      assert.equal("Token List", o.name)
    end)

    it("a path without its trailing slash redirects; unknown paths are 404", function()
      local p = io.popen("curl -s -o /dev/null -w '%{http_code} %header{location}' "
        .. helper.shquote(sim.url .. "/api/gateway/v1/ping?x=1"))
      local out = p:read("a")
      p:close()
      assert.equal("301 /api/gateway/v1/ping/?x=1", out)
      local st = sim:raw("GET", "/api/gateway/v1/nothing/")
      assert.equal(404, st)
    end)
  end)
end)
