-- The example policies of examples/policies/, run against the emulator as an operator would.
local helper = require("helper")

local DAY = 86400
local EXAMPLES = helper.ROOT .. "/examples/policies/"

describe("example policy", function()
  -- 1-year tokens (gateways since mid-2025): the expiry arithmetic below counts on them
  local fx = require("rotate_fixture").new({ "--access-lifetime", "31536000" })
  setup(fx.start) teardown(fx.stop) before_each(fx.fresh) after_each(helper.cleanup)
  local get, run = fx.get, fx.aap

  local function rotate(name, env, extra)
    local args = { "--policy", EXAMPLES .. name }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return fx.rotate(args, env)
  end

  it("yearly-recreate.lua rotates inside the last 30 days and revokes after the grace hour", function()
    assert.equal(0, run({ "token", "create", "--env-file", fx.env_path }).code)
    local old = get("AAP_PAT")
    fx.sim:advance(300 * DAY)
    local r = rotate("yearly-recreate.lua")
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("keep AAP_PAT", 1, true), r.stdout)
    fx.sim:advance(36 * DAY)
    r = rotate("yearly-recreate.lua")
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("inside the renew window: expires in 29d <= renew_before 30d", 1, true), r.stdout)
    local at = r.stderr:find("yearly-recreate.lua: AAP_PAT in " .. fx.env_path, 1, true)
    assert.truthy(at and r.stderr:find("^: token id=%d+ replaced by id=%d+", at + #"yearly-recreate.lua: AAP_PAT in "
      + #fx.env_path), r.stderr)
    local new = get("AAP_PAT")
    assert.is_true(fx.sim:token_works(old))
    fx.sim:advance(3601)
    r = rotate("yearly-recreate.lua")
    assert.equal(0, r.code, r.stderr)
    assert.is_false(fx.sim:token_works(old))
    assert.same({ fx.sim:token_id(new) }, fx.sim:token_ids())
  end)

  it("app-refresh.lua refreshes, and creates a new token once the refresh token has expired", function()
    local app = fx.sim.seed.application
    assert.equal(0, run({ "token", "create", "--env-file", fx.env_path, "--application", app.name }).code)
    local client = { AAP_HOSTNAME = fx.sim.url, AAP_CLIENT_ID = app.client_id, AAP_CLIENT_SECRET = app.client_secret }
    fx.sim:advance(26 * DAY)
    local r = rotate("app-refresh.lua", client)
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("(refresh)", 1, true), r.stdout)
    local refreshed = get("AAP_TOKEN")
    assert.is_true(fx.sim:token_works(refreshed))
    fx.sim:advance(31 * DAY)
    -- without admin credentials the policy's on_error hook hears about it
    r = rotate("app-refresh.lua", client)
    assert.equal(3, r.code, r.stderr)
    assert.truthy(r.stderr:find("app-refresh.lua: rotation of AAP_TOKEN failed:", 1, true), r.stderr)
    client.AAP_PASSWORD = helper.ADMIN_PASSWORD
    r = rotate("app-refresh.lua", client)
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("(recreate, after the refresh failed)", 1, true), r.stdout)
    -- the refreshed token stays valid for the policy's 10-minute grace
    assert.is_true(fx.sim:token_works(refreshed))
    fx.sim:advance(11 * 60)
    r = rotate("app-refresh.lua", client)
    assert.equal(0, r.code, r.stderr)
    assert.is_false(fx.sim:token_works(refreshed))
    local ids = fx.sim:token_ids(function(t) return type(t.application) == "number" end)
    assert.same({ fx.sim:token_id(get("AAP_TOKEN")) }, ids)
  end)

  it("app-refresh.lua vetoes a personal access token", function()
    assert.equal(0, run({ "token", "create", "--env-file", fx.env_path }).code)
    fx.sim:advance(26 * DAY)
    local r = rotate("app-refresh.lua")
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("before_rotate vetoed: this policy is for application tokens", 1, true), r.stdout)
  end)

  it("strict-wait-for-use.lua keeps the old token until the consumer uses the new one", function()
    assert.equal(0, run({ "token", "create", "--env-file", fx.env_path, "--scope", "read" }).code)
    local old = get("AAP_PAT")
    fx.sim:advance(91 * DAY)
    local r = rotate("strict-wait-for-use.lua")
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stderr:find("waiting for the consumer to use it", 1, true), r.stderr)
    local new = get("AAP_PAT")
    local _, list = fx.sim:token_ids()
    for _, t in ipairs(list) do assert.equal("read", t.scope) end
    fx.sim:advance(16 * 60)
    r = rotate("strict-wait-for-use.lua")
    assert.truthy(r.stderr:find("waiting for the consumer to use the new token", 1, true), r.stderr)
    assert.is_true(fx.sim:token_works(old))
    assert.is_true(fx.sim:token_works(new))
    r = rotate("strict-wait-for-use.lua")
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stderr:find("revoked the old token", 1, true), r.stderr)
    assert.is_false(fx.sim:token_works(old))
  end)

  it("strict-wait-for-use.lua refuses to replace a write token", function()
    assert.equal(0, run({ "token", "create", "--env-file", fx.env_path }).code)
    fx.sim:advance(91 * DAY)
    local r = rotate("strict-wait-for-use.lua")
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("the current token has scope write; fix that by hand first", 1, true), r.stdout)
    assert.equal(1, #fx.sim:token_ids())
  end)
end)
