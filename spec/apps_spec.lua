-- aap.apps: an OAuth application by name, on top of the C core's paged list. A gateway keeps
-- names unique per organization only: one match, none (not_found) or several (ambiguous, with
-- the candidates), across pages of applications.
local h = require("helper")
local aap = require("aap")

describe("application lookup by name (aap.apps.find over the paged list)", function()
  local apps = require("aap.apps")
  local sim, s, org2

  setup(function()
    sim = h.start_sim()
    s = assert(aap.connect({ url = sim.url, username = "admin", password = h.ADMIN_PASSWORD }))
    local st, body = s:request("POST", "organizations/", { json = { name = "Second" } })
    assert.equals(201, st)
    org2 = body.id
    assert(s:create_application({ name = "shared", organization = sim.seed.organization.id }))
    assert(s:create_application({ name = "shared", organization = org2 }))
    assert(s:create_application({ name = "only-two", organization = org2 }))
    for i = 1, 60 do assert(s:create_application({ name = "filler " .. i, organization = org2 })) end
  end)
  teardown(function()
    s:close()
    sim:stop()
  end)

  it("finds exactly one match", function()
    local app = assert(apps.find(s, "only-two"))
    assert.equals("only-two", app.name)
    assert.equals(org2, app.organization)
  end)

  it("says not_found for no match", function()
    local app, err = apps.find(s, "absent")
    assert.is_nil(app)
    assert.equals("not_found", err.code)
    assert.matches("absent", err.message)
    assert.equals("not_found: no application named 'absent' (GET /api/gateway/v1/applications/)", tostring(err))
    assert.equals("aap.Error", getmetatable(err).__name)
  end)

  it("says ambiguous for two matches, listing the candidates", function()
    local app, err = apps.find(s, "shared")
    assert.is_nil(app)
    assert.equals("ambiguous", err.code)
    assert.equals(2, #err.candidates)
    local orgs = {}
    for _, c in ipairs(err.candidates) do
      assert.equals("shared", c.name)
      assert.is_number(c.id)
      orgs[c.organization] = true
    end
    assert.is_true(orgs[org2])
    assert.is_true(orgs[math.tointeger(sim.seed.organization.id)])
    assert.equals("ambiguous: 2 applications are named 'shared': choose one by organization or id "
      .. "(GET /api/gateway/v1/applications/)", tostring(err))
    local names = {}
    for _, c in ipairs(err.candidates) do names[c.organization_name] = c.organization end
    assert.equals(org2, names.Second)
  end)

  it("disambiguates by organization id or name", function()
    local a = assert(apps.find(s, "shared", { organization = org2 }))
    assert.equals(org2, a.organization)
    local b = assert(apps.find(s, "shared", { organization = sim.seed.organization.name }))
    assert.equals(math.tointeger(sim.seed.organization.id), b.organization)
    local c, err = apps.find(s, "only-two", { organization = sim.seed.organization.id })
    assert.is_nil(c)
    assert.equals("not_found", err.code)
    assert.equals(("no application named 'only-two' in organization %d"):format(sim.seed.organization.id),
      err.message)
    local d, err2 = apps.find(s, "only-two", { organization = "Nowhere" })
    assert.is_nil(d)
    assert.equals("no application named 'only-two' in organization Nowhere", err2.message)
  end)

  it("finds by id through s:application", function()
    local app = assert(apps.find(s, "only-two"))
    assert.equals("only-two", assert(apps.find(s, app.id)).name)
    assert.equals("only-two", assert(apps.find(s, app.id + 0.0)).name)
    local no, err = apps.find(s, 424242)
    assert.is_nil(no)
    assert.equals("not_found", err.code)
  end)

  it("passes a failing list's error on", function()
    local t = assert(aap.connect({ url = sim.url, username = "admin", password = "wrong", flavor = "gateway" }))
    local app, err = apps.find(t, "only-two")
    assert.is_nil(app)
    assert.equals("auth", err.code)
    t:close()
  end)

  it("lists every application across pages", function()
    local all = assert(s:applications())
    assert.equals(64, #all)
  end)
end)
