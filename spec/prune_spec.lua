-- `aap token prune` and rotate.prune against the emulator, with tokens seeded in bulk.
local helper = require("helper")
local rotate = require("aap.rotate")

local DAY = 86400

describe("aap token prune", function()
  -- 1-year tokens (gateways since mid-2025): the expiry arithmetic below counts on them
  local fx = require("rotate_fixture").new({ "--access-lifetime", "31536000" })

  local function seed(spec)
    local st, body = fx.sim:control("POST", "/__sim/tokens", spec)
    assert(st == 200 or st == 201, "POST /__sim/tokens: " .. tostring(st) .. " " .. tostring(body and body.detail))
    local ids = {}
    for id = body.ids[1], body.ids[2] do ids[#ids + 1] = math.tointeger(id) end
    return ids
  end

  local function prune(args, env, stdin)
    local argv = { "token", "prune" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return fx.aap(argv, env, stdin)
  end

  local function deletes(entries)
    local n = 0
    for _, e in ipairs(entries) do if e.method == "DELETE" then n = n + 1 end end
    return n
  end

  local function minus(all, gone)
    local set, out = {}, {}
    for _, id in ipairs(gone) do set[id] = true end
    for _, id in ipairs(all) do if not set[id] then out[#out + 1] = id end end
    return out
  end

  local stale, never, fresh, young_never
  setup(fx.start) teardown(fx.stop) after_each(helper.cleanup)
  before_each(function()
    fx.fresh()
    stale = seed({ count = 120, age = 200 * DAY, last_used_ago = 100 * DAY, description = "old CI runner" })
    never = seed({ count = 5, age = 120 * DAY, description = "forgotten" })
    fresh = seed({ count = 30, age = 200 * DAY, last_used_ago = DAY, description = "old CI runner" })
    young_never = seed({ count = 3, age = 10 * DAY, description = "new" })
  end)

  it("shows what it would revoke with --dry-run and changes nothing", function()
    local before = fx.sim:token_ids()
    fx.sim:clear_log()
    local r = prune({ "--unused-for", "90d", "--dry-run" })
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("would revoke 125 of 158 token(s) (dry run: nothing changed)", 1, true), r.stdout)
    assert.truthy(r.stdout:find("last used 100d ago", 1, true))
    assert.truthy(r.stdout:find("never used, created 120d ago", 1, true))
    assert.equal(0, deletes(fx.sim:log()))
    assert.same(before, fx.sim:token_ids())
  end)

  it("revokes unused tokens with --yes and keeps the rest", function()
    local all = fx.sim:token_ids()
    local r = prune({ "--unused-for", "90d", "--yes" })
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("revoked 125 of 125 candidate(s)", 1, true), r.stdout)
    local gone = {}
    for _, id in ipairs(stale) do gone[#gone + 1] = id end
    for _, id in ipairs(never) do gone[#gone + 1] = id end
    assert.same(minus(all, gone), fx.sim:token_ids())
    assert.equal(33, #fx.sim:token_ids())
  end)

  it("uses 90d when neither --unused-for nor --expired is given", function()
    local r = prune({ "--dry-run" })
    assert.truthy(r.stdout:find("would revoke 125 of", 1, true), r.stdout)
  end)

  it("refuses to revoke without --yes when standard input is not a terminal", function()
    local before = fx.sim:token_ids()
    local r = prune({ "--unused-for", "90d" })
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("refusing to revoke 125 token(s) without --yes", 1, true), r.stderr)
    assert.same(before, fx.sim:token_ids())
  end)

  it("narrows with --description-like, case-insensitively", function()
    local all = fx.sim:token_ids()
    local r = prune({ "--unused-for", "90d", "--description-like", "FORGOT", "--yes" })
    assert.equal(0, r.code, r.stderr)
    assert.same(minus(all, never), fx.sim:token_ids())
  end)

  it("prunes expired tokens with --expired", function()
    local expired = seed({ count = 4, age = 400 * DAY, last_used_ago = 10, description = "lapsed" })
    local all = fx.sim:token_ids()
    local r = prune({ "--expired", "--yes" })
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("expired 35d ago", 1, true), r.stdout)
    assert.same(minus(all, expired), fx.sim:token_ids())
  end)

  it("never touches the token it is authenticated with, nor those of --keep-env-file", function()
    local r = fx.aap({ "token", "create", "--env-file", fx.env_path })
    assert.equal(0, r.code, r.stderr)
    local kept = fx.sim:token_id(require("aap.env").read(fx.env_path):get("AAP_PAT"))
    r = fx.aap({ "token", "create", "--env-file", fx.dir .. "/self.env" })
    assert.equal(0, r.code, r.stderr)
    local self_value = require("aap.env").read(fx.dir .. "/self.env"):get("AAP_PAT")
    local self_id = fx.sim:token_id(self_value)
    r = prune({ "--unused-for", "0s", "--keep-env-file", fx.env_path, "--yes" },
      { AAP_HOSTNAME = fx.sim.url, AAP_TOKEN = self_value })
    assert.equal(0, r.code, r.stderr)
    assert.same({ kept, self_id }, fx.sim:token_ids())
  end)

  it("fails before revoking anything when the kept env file cannot be read", function()
    local before = fx.sim:token_ids()
    helper.writefile(fx.dir .. "/bad.env", "A=1\n")
    helper.writefile(fx.dir .. "/bad.env.aap-state.json", "{not json")
    local r = prune({ "--unused-for", "90d", "--keep-env-file", fx.dir .. "/bad.env", "--yes" })
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find("not an aap state file", 1, true), r.stderr)
    assert.same(before, fx.sim:token_ids())
  end)

  it("refuses a bad duration", function()
    local r = prune({ "--unused-for", "3 months", "--dry-run" })
    assert.equal(1, r.code)
    assert.truthy(r.stderr:find('"3 months" is not a duration', 1, true), r.stderr)
  end)

  it("is available from Lua, with progress and confirmation callbacks", function()
    local conn = { url = fx.sim.url, username = "admin", password = helper.ADMIN_PASSWORD }
    local scans, revokes, asked = 0, 0, nil
    local res = assert(rotate.prune({
      conn = conn, unused_for = "90d", kind = "personal",
      progress = function(phase) if phase == "scan" then scans = scans + 1 else revokes = revokes + 1 end end,
      confirm = function(c) asked = #c return false end,
    }))
    assert.equal(125, asked)
    assert.is_false(res.confirmed)
    assert.same({}, res.revoked)
    assert.equal(158, scans)
    assert.equal(0, revokes)
    res = assert(rotate.prune({ conn = conn, unused_for = 90 * DAY, keep_ids = { never[1] },
      progress = function(phase) if phase == "revoke" then revokes = revokes + 1 end end }))
    assert.equal(124, #res.revoked)
    assert.equal(124, revokes)
    assert.equal("kept by request", res.kept[never[1]])
    assert.same({}, res.failed)
    local _, err = rotate.prune({ conn = conn, unused_for = "x" })
    assert.equal("usage", err.code)
    assert.has_error(function() rotate.prune({ conn = conn, bogus = true }) end)
    assert.equal(3, #young_never)
    assert.equal(30, #fresh)
  end)
end)
