-- The README's workflows against a real gateway of yours, checked by the server's state
-- after each step, leaving nothing behind and deleting nothing it did not create. Runs only
-- when AAP_LIVE_URL is set (it is never set in CI, whose network is loopback only):
--
--   AAP_LIVE_URL=https://aap.example.com AAP_LIVE_USERNAME=me AAP_LIVE_PASSWORD=... \
--   [AAP_LIVE_CA_FILE=ca.pem] [AAP_LIVE_APPLICATION="RHDH Integration" \
--    AAP_LIVE_CLIENT_ID=... AAP_LIVE_CLIENT_SECRET=...] scripts/test.sh spec/live_gateway_spec.lua
--
-- The server's state is read with the C core's plain calls (GET tokens/ID/, me/), not with
-- the workflows under test.
local helper = require("helper")
local aap = require("aap")

local LIVE = os.getenv("AAP_LIVE_URL")

describe("a live gateway (AAP_LIVE_URL)", function()
  if not LIVE or LIVE == "" then
    it("is skipped: AAP_LIVE_URL is not set", function()
      pending("set AAP_LIVE_URL, AAP_LIVE_USERNAME and AAP_LIVE_PASSWORD to run the workflows against a real gateway")
    end)
    return
  end

  local user, password = os.getenv("AAP_LIVE_USERNAME") or "admin", os.getenv("AAP_LIVE_PASSWORD")
  local ca, app = os.getenv("AAP_LIVE_CA_FILE"), os.getenv("AAP_LIVE_APPLICATION")
  local client_id, client_secret = os.getenv("AAP_LIVE_CLIENT_ID"), os.getenv("AAP_LIVE_CLIENT_SECRET")
  local tag = "aap live check " .. require("aap.state").random_hex(6)
  local s, dir, path, baseline

  local function env(extra)
    local e = { AAP_HOSTNAME = LIVE, AAP_USERNAME = user, AAP_PASSWORD = password, AAP_CA_FILE = ca,
                AAP_CLIENT_ID = client_id, AAP_CLIENT_SECRET = client_secret }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end
  local function run(argv)
    local r = helper.run(argv, { env = env() })
    assert.is_nil(r.stderr:find(password, 1, true), "the password on stderr")
    return r
  end
  local function exists(id)
    local t, err = s:token(id)
    if t then return true end
    assert.equal("not_found", err.code, tostring(err))
    return false
  end
  local function works(value)
    local b = assert(aap.connect({ url = LIVE, ca_file = ca, token = value }))
    local me = b:me()
    b:close()
    return me ~= nil
  end
  local function value(key) return helper.source_env(path, { key })[key] end
  local function recorded(key)
    return math.tointeger(helper.json.decode(helper.readfile(path .. ".aap-state.json")).keys[key].id)
  end
  local function own_ids()
    local me = assert(s:me())
    local ids = {}
    for _, t in ipairs(assert(s:tokens({ user = me.id }))) do ids[#ids + 1] = t.id end
    return ids
  end

  setup(function()
    assert(password, "AAP_LIVE_PASSWORD is required")
    s = assert(aap.connect({ url = LIVE, ca_file = ca, username = user, password = password }))
    dir = helper.tmpdir()
    path = dir .. "/.env"
    baseline = own_ids()
  end)
  teardown(function()
    -- Whatever a failed step left: only tokens carrying this run's tag.
    if s then
      for _, t in ipairs(s:tokens({ description__contains = tag }) or {}) do
        if (t.description or ""):find(tag, 1, true) then s:delete_token(t.id) end
      end
      s:close()
    end
    helper.cleanup()
  end)

  local pat_id, app_id
  it("pings and knows who we are", function()
    assert.equal(0, run({ "ping" }).code)
    local r = run({ "whoami" })
    assert.equal(0, r.code, r.stderr)
    assert.matches(user, r.stdout, 1, true)
  end)

  it("creates a PAT recorded by its real id, which works", function()
    local r = run({ "token", "create", "--env-file", path, "--description", tag })
    assert.equal(0, r.code, r.stderr)
    pat_id = recorded("AAP_PAT")
    assert.is_true(exists(pat_id))
    assert.is_true(works(value("AAP_PAT")))
    assert.matches("id=" .. pat_id .. " ", r.stdout, 1, true)
  end)

  it("creates an application token and refreshes it, recording the new token's real id", function()
    if not app then pending("set AAP_LIVE_APPLICATION (and its client) for application tokens") return end
    local r = run({ "token", "create", "--application", app, "--env-file", path, "--description", tag })
    assert.equal(0, r.code, r.stderr)
    local old_id, old = recorded("AAP_TOKEN"), value("AAP_TOKEN")
    assert.is_true(exists(old_id))
    if not client_id then pending("set AAP_LIVE_CLIENT_ID and AAP_LIVE_CLIENT_SECRET to refresh") return end
    r = run({ "token", "refresh", "--env-file", path })
    assert.equal(0, r.code, r.stderr)
    app_id = recorded("AAP_TOKEN")
    assert.are_not.equal(old_id, app_id)
    assert.is_false(exists(old_id), "the refresh replaced the old token")
    assert.is_false(works(old))
    assert.is_true(exists(app_id))
    assert.is_true(works(value("AAP_TOKEN")))
    -- the recorded id is the value's: revoking by the file removes exactly it (next test)
  end)

  it("revokes exactly the tokens in the file, and nothing that was there before", function()
    local pat = value("AAP_PAT")
    local r = run({ "token", "revoke", "--env-file", path, "--key", "AAP_PAT" })
    assert.equal(0, r.code, r.stderr)
    assert.is_false(exists(pat_id))
    assert.is_false(works(pat))
    if app_id then
      local v = value("AAP_TOKEN")
      r = run({ "token", "revoke", "--env-file", path })
      assert.equal(0, r.code, r.stderr)
      assert.is_false(exists(app_id))
      assert.is_false(works(v))
    end
    for _, id in ipairs(baseline) do assert.is_true(exists(id), "token id=" .. id .. " existed before the run") end
  end)
end)
