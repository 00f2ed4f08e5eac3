local duration = require("aap.duration")

describe("aap.duration", function()
  it("parses single units", function()
    assert.equal(45, duration.parse("45s"))
    assert.equal(30 * 60, duration.parse("30m"))
    assert.equal(12 * 3600, duration.parse("12h"))
    assert.equal(90 * 86400, duration.parse("90d"))
    assert.equal(0, duration.parse("0s"))
  end)

  it("parses compound durations and plain seconds", function()
    assert.equal(86400 + 12 * 3600, duration.parse("1d12h"))
    assert.equal(3600 + 60 + 1, duration.parse("1h1m1s"))
    assert.equal(3600, duration.parse(3600))
    assert.equal(3600, duration.parse("3600"))
    assert.equal(7, duration.parse(" 7s "))
    assert.equal("integer", math.type(duration.parse("2d")))
  end)

  it("refuses bad values with a message naming the value", function()
    local cases = {
      { "90x", "unknown unit \"x\"" }, { "", "empty" }, { "d", "unexpected" }, { "-5d", "0 or more" },
      { -1, "0 or more" }, { 1.5, "whole number" }, { "1d2", "no unit" }, { "1d1d", "given twice" },
      { "1 d", "unexpected" }, { "99999d", "longer than 10000d" }, { true, "boolean" }, { {}, "table" },
      { 0 / 0, "0 or more" }, { math.huge, "longer than" }, { "12345678901s", "longer" },
    }
    for _, c in ipairs(cases) do
      local v, err = duration.parse(c[1])
      assert.is_nil(v, tostring(c[1]))
      assert.truthy(err:find(c[2], 1, true), err)
      assert.truthy(err:find("is not a duration", 1, true), err)
    end
  end)

  it("formats largest units first and round-trips", function()
    assert.equal("1d12h", duration.format(129600))
    assert.equal("0s", duration.format(0))
    assert.equal("-2h", duration.format(-7200))
    assert.equal("1h1m2s", duration.format(3661.9))
    assert.equal("363d", duration.format(363 * 86400 - 0.004))
    for _, s in ipairs({ "90d", "1d12h", "3h5s", "59m" }) do
      assert.equal(s, duration.format(duration.parse(s)))
    end
  end)
end)
