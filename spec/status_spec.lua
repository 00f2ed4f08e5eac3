-- `aap token status` against the emulator: what the gateway says of each token in an env
-- file (accepted, expiry, last use), in text and JSON, and the exit code for alerting.
local helper = require("helper")
local cjson = require("cjson")

local DAY = 86400

describe("aap token status", function()
  local sim

  setup(function()
    -- one-day tokens, so that "expires within --warn" can be reached
    sim = helper.start_sim({ args = { "--access-lifetime", tostring(DAY) } })
  end)
  teardown(function()
    sim:stop()
    helper.cleanup()
  end)
  before_each(function() sim:reset() end)

  local function aap(argv, extra) return sim:aap(argv, extra) end

  local function both(path)
    local r = aap({ "token", "create", "--pat", "--application", "RHDH Integration", "--env-file", path })
    assert.equal(0, r.code, r.stderr)
    return helper.source_env(path, { "AAP_PAT", "AAP_TOKEN", "REFRESH_TOKEN" })
  end

  local function json_status(path, extra, more)
    local argv = { "token", "status", "--env-file", path, "--output", "json" }
    for _, a in ipairs(more or {}) do argv[#argv + 1] = a end
    local r = aap(argv, extra)
    local ok, report = pcall(cjson.decode, r.stdout)
    assert(ok, "not JSON: " .. r.stdout .. r.stderr)
    local by = {}
    for _, e in ipairs(report) do by[e.key] = e end
    return r, report, by
  end

  local FIELDS = { "key", "id", "kind", "application", "accepted", "checked_by", "expires", "expires_in",
                   "last_used", "refresh_key", "status", "reason" }

  it("reports each token by id with credentials, every field present, no secret, without using them", function()
    local path = helper.tmpdir() .. "/.env"
    local v = both(path)
    local pat_id, app_id = sim:token_id(v.AAP_PAT), sim:token_id(v.AAP_TOKEN)
    sim:clear_log()
    local r, report, by = json_status(path, nil, { "--warn", "1h" })
    assert.equal(0, r.code, r.stderr)
    assert.equal(2, #report)
    assert.equal("AAP_PAT", report[1].key)
    for _, e in ipairs(report) do
      for _, f in ipairs(FIELDS) do
        assert.is_true(e[f] ~= nil, "field " .. f .. " missing")
      end
      assert.equal("ok", e.status)
      assert.is_true(e.accepted)
      assert.equal("id", e.checked_by)
      assert.is_true(e.expires_in > 0 and e.expires_in <= DAY)
    end
    assert.equal(pat_id, by.AAP_PAT.id)
    assert.equal(app_id, by.AAP_TOKEN.id)
    assert.equal("personal", by.AAP_PAT.kind)
    assert.equal(cjson.null, by.AAP_PAT.application)
    assert.equal(sim.seed.application.id, by.AAP_TOKEN.application)
    assert.equal("REFRESH_TOKEN", by.AAP_TOKEN.refresh_key)
    -- looked up by id with the admin's credentials: neither token was used
    for _, e in ipairs(sim:log()) do assert.not_equal("bearer", e.auth) end
    for _, secret in ipairs({ v.AAP_PAT, v.AAP_TOKEN, v.REFRESH_TOKEN, sim.admin_password }) do
      assert.is_nil(r.stdout:find(secret, 1, true))
      assert.is_nil(r.stderr:find(secret, 1, true))
    end
  end)

  it("exits 5 when a token expires within --warn (default 7d), and says which", function()
    local path = helper.tmpdir() .. "/.env"
    both(path)
    local r, _, by = json_status(path)
    assert.equal(5, r.code, r.stderr)
    assert.equal("expiring", by.AAP_PAT.status)
    assert.is_true(by.AAP_PAT.accepted)
    local t = aap({ "token", "status", "--env-file", path })
    assert.equal(5, t.code)
    assert.matches("AAP_PAT%s+%d+%s+personal%s+expiring", t.stdout)
  end)

  it("exits 3 when a token expired, by the gateway's clock", function()
    local path = helper.tmpdir() .. "/.env"
    both(path)
    sim:advance(2 * DAY)
    local r, _, by = json_status(path)
    assert.equal(3, r.code, r.stderr)
    assert.equal("expired", by.AAP_TOKEN.status)
    assert.is_false(by.AAP_TOKEN.accepted)
  end)

  it("exits 3 when a recorded token was revoked on the gateway", function()
    local path = helper.tmpdir() .. "/.env"
    local v = both(path)
    local id = sim:token_id(v.AAP_PAT)
    local st = sim:control("DELETE", ("/api/gateway/v1/tokens/%d/"):format(id))
    assert.equal(204, st)
    local r, _, by = json_status(path, nil, { "--warn", "1h" })
    assert.equal(3, r.code, r.stderr)
    assert.equal("revoked", by.AAP_PAT.status)
    assert.equal("ok", by.AAP_TOKEN.status)
  end)

  it("without credentials uses each token once and says so; a value aap never recorded is refused", function()
    local path = helper.tmpdir() .. "/.env"
    both(path)
    local f = assert(io.open(path, "a"))
    f:write("OTHER=not-a-token\n")
    f:close()
    local r, report, by = json_status(path, { AAP_PASSWORD = false }, { "--warn", "1h", "--key", "AAP_PAT",
                                                                         "--key", "OTHER" })
    assert.equal(3, r.code, r.stderr)
    assert.equal(2, #report)
    assert.equal("use", by.AAP_PAT.checked_by)
    assert.equal("ok", by.AAP_PAT.status)
    assert.equal("refused", by.OTHER.status)
    assert.equal(cjson.null, by.OTHER.id)
  end)

  it("reports an empty file as [] and exits 0", function()
    local path = helper.tmpdir() .. "/.env"
    helper.writefile(path, "RHDH_BASE_URL=https://rhdh.example.com\n")
    local r = aap({ "token", "status", "--env-file", path, "--output", "json" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("[]\n", r.stdout)
  end)

  it("never sends a refresh token or a client credential as a Bearer token", function()
    local path = helper.tmpdir() .. "/.env"
    local v = both(path)
    sim:clear_log()
    for _, k in ipairs({ "REFRESH_TOKEN", "AAP_CLIENT_ID" }) do
      local r = aap({ "token", "status", "--env-file", path, "--key", k }, { AAP_PASSWORD = false })
      assert.equal(1, r.code, r.stderr)
      assert.matches("never sent", r.stderr)
    end
    assert.equal(0, #sim:log())
    assert.is_string(v.REFRESH_TOKEN)
  end)

  it("refuses a bad --warn or --key before any request", function()
    sim:clear_log()
    local r = aap({ "token", "status", "--warn", "soon" })
    assert.equal(1, r.code)
    assert.matches("^aap: %-%-warn", r.stderr)
    r = aap({ "token", "status", "--key", "1BAD" })
    assert.equal(1, r.code)
    assert.equal(0, #sim:log())
  end)
end)
