-- AAP_FLAVOR: the flavor for every command of a cron job or pipeline, so that an AAP 2.4
-- controller is not probed on every run (the flavor is otherwise learned from the first call).
local helper = require("helper")

describe("AAP_FLAVOR", function()
  local sim

  setup(function() sim = helper.start_sim({ args = { "--flavor", "controller" } }) end)
  teardown(function()
    sim:stop()
    helper.cleanup()
  end)
  before_each(function() sim:reset() end)

  local function whoami(extra, argv)
    local env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password }
    for k, v in pairs(extra or {}) do env[k] = v end
    local a = { "whoami" }
    for _, x in ipairs(argv or {}) do a[#a + 1] = x end
    return helper.run(a, { env = env })
  end

  local function paths()
    local out = {}
    for _, e in ipairs(sim:log()) do out[#out + 1] = e.method .. " " .. e.path end
    return out
  end

  it("auto learns a controller from the first call: a 404, the probes, the call again", function()
    local r = whoami()
    assert.equal(0, r.code, r.stderr)
    local p = paths()
    assert.equal("GET /api/gateway/v1/me/", p[1])
    assert.equal("GET /api/v2/me/", p[#p])
    assert.is_true(#p > 2)
  end)

  it("AAP_FLAVOR=controller asks the controller's route at once, and nothing else", function()
    local r = whoami({ AAP_FLAVOR = "controller" })
    assert.equal(0, r.code, r.stderr)
    assert.same({ "GET /api/v2/me/" }, paths())
  end)

  it("--flavor wins over AAP_FLAVOR", function()
    local r = whoami({ AAP_FLAVOR = "gateway" }, { "--flavor", "controller" })
    assert.equal(0, r.code, r.stderr)
    assert.same({ "GET /api/v2/me/" }, paths())
  end)

  it("refuses a value it does not know, before any request, with exit 1", function()
    local r = whoami({ AAP_FLAVOR = "tower" })
    assert.equal(1, r.code)
    assert.matches("AAP_FLAVOR must be auto, gateway or controller", r.stderr)
    assert.same({}, paths())
  end)
end)
