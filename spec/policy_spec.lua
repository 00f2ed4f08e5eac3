local policy = require("aap.policy")
local helper = require("helper")

local DAY = 86400

local function write(dir, name, text) return helper.writefile(dir .. "/" .. name, text) end

describe("aap.policy validate", function()
  it("normalizes durations and fills defaults", function()
    local p = assert(policy.validate({ max_age = "90d", renew_before = 3600 }))
    assert.equal(90 * DAY, p.max_age)
    assert.equal(3600, p.renew_before)
    assert.equal("recreate", p.strategy)
    assert.is_true(p.verify)
    assert.equal(0, p.grace)
    assert.is_false(p.wait_for_use)
    assert.equal(p, policy.get(p))
  end)

  it("does not change its input", function()
    local t = { max_age = "1d" }
    policy.validate(t)
    assert.same({ max_age = "1d" }, t)
  end)

  it("refuses unknown keys with a suggestion and the list of keys", function()
    local p, err = policy.validate({ max_agee = "90d" }, "x.lua")
    assert.is_nil(p)
    assert.equal("policy", err.code)
    assert.truthy(err.message:find('x.lua: unknown key "max_agee" (did you mean "max_age"?)', 1, true), err.message)
    assert.truthy(err.message:find("renew_before", 1, true))
    local _, err2 = policy.validate({ max_age = "1d", [1] = "x" })
    assert.truthy(err2.message:find("keys are names", 1, true))
    local _, err3 = policy.validate({ max_age = "1d", zzzzzzzz = 1 })
    assert.falsy(err3.message:find("did you mean", 1, true))
  end)

  it("refuses bad values naming the key", function()
    local cases = {
      { { max_age = "90x" }, "max_age: \"90x\" is not a duration" },
      { { max_age = "1d", strategy = "rotate" }, 'strategy: must be "recreate" or "refresh", not "rotate"' },
      { { max_age = "1d", verify = "yes" }, 'verify: must be true or false, not "yes"' },
      { { max_age = "1d", scope = "admin" }, "scope: must be" },
      { { max_age = "1d", grace = -1 }, "grace: -1 is not a duration" },
      { { max_age = "1d", on_rotated = "echo" }, "on_rotated: must be a function, not a string" },
      { { max_age = "1d", description = "a\nb" }, "description: must be one line" },
      { { max_age = "1d", description = ("x"):rep(201) }, "at most 200" },
      { { strategy = "recreate" }, "needs max_age or renew_before" },
      { { max_age = "1d", min_age = "2d" }, "min_age (2d) must be shorter than max_age (1d)" },
      { { max_age = "1d", max_wait = "1h" }, "max_wait only makes sense with wait_for_use" },
    }
    for _, c in ipairs(cases) do
      local p, err = policy.validate(c[1], "p.lua")
      assert.is_nil(p)
      assert.truthy(err.message:find(c[2], 1, true), err.message)
      assert.equal(err.message, tostring(err))
    end
    local _, err = policy.validate("nope", "p.lua")
    assert.truthy(err.message:find("must be a table, not a string", 1, true))
  end)
end)

describe("aap.policy load", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

  it("loads a file and points errors at its line", function()
    local ok = write(dir, "ok.lua", 'return { max_age = "90d", renew_before = "30d", grace = "1h" }\n')
    local p = assert(policy.load(ok))
    assert.equal(3600, p.grace)
    assert.equal(ok, p.origin)
    local bad = write(dir, "bad.lua", 'return {\n  max_age = "90d",\n  grace = "1y",\n}\n')
    local _, err = policy.load(bad)
    assert.truthy(err.message:find(bad .. ":3: grace: \"1y\" is not a duration", 1, true), err.message)
    local unk = write(dir, "unk.lua", 'return {\n  max_age = "90d",\n  ["renew"] = "1d",\n}\n')
    _, err = policy.load(unk)
    assert.truthy(err.message:find(unk .. ":3: unknown key \"renew\"", 1, true), err.message)
  end)

  it("reports syntax errors, missing files and non-table results", function()
    local _, err = policy.load(write(dir, "syn.lua", "return { max_age = }"))
    assert.truthy(err.message:find("syn.lua:1:", 1, true), err.message)
    _, err = policy.load(dir .. "/absent.lua")
    assert.truthy(err.message:find("absent.lua", 1, true), err.message)
    assert.equal("policy", err.code)
    _, err = policy.load(write(dir, "nil.lua", "local x = 1"))
    assert.truthy(err.message:find("must return a policy table (it returned nothing)", 1, true), err.message)
    _, err = policy.load(write(dir, "str.lua", "return 'x'"))
    assert.truthy(err.message:find("it returned a string", 1, true), err.message)
    _, err = policy.load(write(dir, "bin.lua", string.dump(function() return {} end)))
    assert.truthy(err.message:find("binary", 1, true), err.message)
  end)

  it("refuses a policy table with a metatable, and hostile values, without running their metamethods", function()
    local _, err = policy.load(write(dir, "pairs.lua",
      "return setmetatable({}, {__pairs = function() while true do end end})"))
    assert.truthy(err.message:find("must be a plain table", 1, true), err.message)
    local loop = "setmetatable({}, {__tostring = function() while true do end end})"
    _, err = policy.load(write(dir, "tostr.lua", "return { max_age = " .. loop .. " }"))
    assert.truthy(err.message:find("max_age: a table is not a duration", 1, true), err.message)
    _, err = policy.load(write(dir, "tostr2.lua", "return { max_age = '1d', verify = " .. loop .. " }"))
    assert.truthy(err.message:find("verify: must be true or false, not a table", 1, true), err.message)
    -- a key is not a pattern: a backtracking bomb as a key is only an unknown key
    _, err = policy.load(write(dir, "key.lua", "return { max_age = '1d', [string.rep('a*', 30) .. 'b'] = 1 }"))
    assert.truthy(err.message:find("unknown key", 1, true), err.message)
  end)
end)

describe("aap.policy hook_timeout", function()
  it("defaults to a minute, and may be set up to the maximum", function()
    assert.equal(60, assert(policy.validate({ max_age = "1d" })).hook_timeout)
    assert.equal(5, assert(policy.validate({ max_age = "1d", hook_timeout = "5s" })).hook_timeout)
    local _, err = policy.validate({ max_age = "1d", hook_timeout = "1h" })
    assert.truthy(err.message:find("hook_timeout: must be 1s to 10m", 1, true), err.message)
    _, err = policy.validate({ max_age = "1d", hook_timeout = 0 })
    assert.truthy(err.message:find("hook_timeout: must be 1s", 1, true), err.message)
  end)
end)

describe("aap.policy and aap.sandbox", function()
  it("loads files through the sandbox, whose limits and evaluation aap.policy still offers", function()
    local sandbox = require("aap.sandbox")
    assert.equal(sandbox.LIMITS, policy.LIMITS)
    assert.equal(sandbox.evaluate, policy.evaluate)
    assert.equal(sandbox.describe, policy.describe)
    assert.equal(sandbox.pattern_cost, policy.pattern_cost)
  end)
end)

describe("aap.policy decide", function()
  local now = 1800000000
  local p = assert(policy.validate({ max_age = "90d", renew_before = "30d", min_age = "1d" }))
  local function tok(age_days, left_days)
    return { created = now - age_days * DAY, expires = now + left_days * DAY }
  end

  it("keeps a token that is not due", function()
    local d = policy.decide(p, tok(10, 355), now)
    assert.equal("keep", d.action)
    assert.equal("not_due", d.code)
    assert.equal("not due: age 10d < max_age 90d; expires in 355d > renew_before 30d", d.reason)
    assert.equal(10 * DAY, d.age)
  end)

  it("keeps a token younger than min_age, even inside the renew window", function()
    local d = policy.decide(p, { created = now - 3600, expires = now + 2 * DAY }, now)
    assert.equal("keep", d.action)
    assert.equal("too_young", d.code)
    assert.equal("too young: age 1h < min_age 1d", d.reason)
  end)

  it("rotates inside the renew window", function()
    local d = policy.decide(p, tok(20, 30), now)
    assert.equal("rotate", d.action)
    assert.equal("renew_window", d.code)
    assert.truthy(d.reason:find("expires in 30d <= renew_before 30d", 1, true))
    assert.equal("keep", policy.decide(p, { created = now - 20 * DAY, expires = now + 30 * DAY + 1 }, now).action)
  end)

  it("rotates at max age", function()
    local d = policy.decide(p, tok(90, 300), now)
    assert.equal("max_age", d.code)
    assert.equal("max age reached: age 90d >= max_age 90d", d.reason)
    assert.equal("not_due", policy.decide(p, { created = now - 90 * DAY + 1, expires = now + 300 * DAY }, now).code)
  end)

  it("rotates an expired token whatever its age", function()
    local d = policy.decide(p, { created = now - 60, expires = now - 3600 }, now)
    assert.equal("rotate", d.action)
    assert.equal("expired", d.code)
    assert.equal("expired 1h ago", d.reason)
    assert.equal("expired", policy.decide(p, { created = now - 60, expires = now }, now).code)
  end)

  it("rotates a token that is gone", function()
    assert.equal("missing", policy.decide(p, nil, now).code)
    assert.equal("missing", policy.decide(p, { missing = true }, now).code)
  end)

  it("works with one trigger only", function()
    local only_window = assert(policy.validate({ renew_before = "7d" }))
    assert.equal("not due: expires in 8d > renew_before 7d", policy.decide(only_window, tok(1000, 8), now).reason)
    local only_age = assert(policy.validate({ max_age = "7d" }))
    assert.equal("not due: age 6d < max_age 7d", policy.decide(only_age, tok(6, 1), now).reason)
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() policy.decide(p, tok(1, 1)) end)
  end)
end)
