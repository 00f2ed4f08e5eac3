-- timefmt.c: ISO-8601 times as the gateway writes them (aap.parse_time), epoch seconds
-- written back (aap.format_time), and HTTP dates (aap.parse_http_date, the Date and
-- Retry-After headers' format). No server.
local aap = require("aap")

describe("aap.parse_time", function()
  it("reads microseconds and Z", function()
    local t = aap.parse_time("2026-11-29T10:21:27.047839Z")
    assert.equals(1795947687, math.floor(t))
    assert.near(0.047839, t - 1795947687, 1e-6)
  end)

  it("reads whole seconds (DRF drops zero microseconds)", function()
    assert.equals(1795947687, aap.parse_time("2026-11-29T10:21:27Z"))
  end)

  it("handles year 3026 with 64-bit arithmetic", function()
    local t = aap.parse_time("3026-04-01T10:21:27.044063Z")
    assert.equals(33331947687, math.floor(t))
    assert.equals("3026-04-01T10:21:27Z", aap.format_time(t))
  end)

  it("applies +HH:MM, -HH:MM and +HHMM offsets", function()
    local z = aap.parse_time("2026-11-29T10:21:27Z")
    assert.equals(z, aap.parse_time("2026-11-29T12:21:27+02:00"))
    assert.equals(z, aap.parse_time("2026-11-29T05:51:27-04:30"))
    assert.equals(z, aap.parse_time("2026-11-29T11:21:27+0100"))
  end)

  it("crosses leap days and the epoch", function()
    assert.equals(0, aap.parse_time("1970-01-01T00:00:00Z"))
    assert.equals(-1, aap.parse_time("1969-12-31T23:59:59Z"))
    assert.equals(951782400, aap.parse_time("2000-02-29T00:00:00Z"))
    assert.equals(4107542400, aap.parse_time("2100-03-01T00:00:00Z"))
  end)

  it("returns nil, err for what is not a date-time with a zone", function()
    for _, bad in ipairs({ "", "nope", "2026-11-29", "2026-11-29T10:21:27", "2026-13-01T00:00:00Z",
                           "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-11-29T24:00:00Z",
                           "2026-11-29T10:61:00Z", "2026-11-29T10:21:27.Z", "2026-11-29T10:21:27Zjunk",
                           "2026-11-29T10:21:27+2", "26-11-29T10:21:27Z", "2026-11-29T10:21:27\0Z" }) do
      local t, err = aap.parse_time(bad)
      assert.is_nil(t, bad)
      assert.equals("invalid", err.code)
    end
  end)

  it("raises on a non-string", function()
    assert.has_error(function() aap.parse_time({}) end)
  end)

  it("reads the variants gateways and Python write: fractions of any length, t/z, a space, +00:00", function()
    local z = aap.parse_time("2026-11-29T10:21:27Z")
    assert.equals(z + 0.5, aap.parse_time("2026-11-29T10:21:27.5Z"))
    assert.equals(z + 0.5, aap.parse_time("2026-11-29T10:21:27,5Z"))           -- ISO-8601's comma
    assert.near(z + 0.123456789, aap.parse_time("2026-11-29T10:21:27.123456789Z"), 1e-6)
    assert.near(z + 0.047839, aap.parse_time("2026-11-29T10:21:27.047839+00:00"), 1e-6) -- isoformat()
    assert.equals(z, aap.parse_time("2026-11-29t10:21:27z"))
    assert.equals(z, aap.parse_time("2026-11-29 10:21:27Z"))
    assert.equals(z, aap.parse_time("2026-11-29T10:21:27-00:00"))
    assert.equals(z - (23 * 3600 + 59 * 60), aap.parse_time("2026-11-29T10:21:27+23:59"))
    assert.equals(1709164800, aap.parse_time("2024-02-29T00:00:00Z"))            -- a leap year's day
    -- a leap second is the next second's first instant (epoch time has none)
    assert.equals(1483228800, aap.parse_time("2016-12-31T23:59:60Z"))
    assert.equals(-62167219200, aap.parse_time("0000-01-01T00:00:00Z"))
  end)

  it("refuses offsets out of range, a missing seconds field, blanks around, day 31 of a short month", function()
    for _, bad in ipairs({ "2026-11-29T10:21:27+24:00", "2026-11-29T10:21:27+12:60", "2026-11-29T10:21Z",
                           "2026-11-29T10:21:27.123", " 2026-11-29T10:21:27Z", "2026-11-29T10:21:27Z ",
                           "2026-04-31T00:00:00Z", "2026-11-29T10:21:61Z", "2026-11-29T10:21:27+02:0" }) do
      local t, err = aap.parse_time(bad)
      assert.is_nil(t, bad)
      assert.equals("invalid", err.code, bad)
      assert.equals("invalid: not an ISO-8601 date-time with a zone", tostring(err))
      assert.equals("aap.Error", getmetatable(err).__name)
    end
  end)
end)

describe("aap.format_time", function()
  it("formats integers and floors fractions", function()
    assert.equals("2026-11-29T10:21:27Z", aap.format_time(1795947687))
    assert.equals("2026-11-29T10:21:27Z", aap.format_time(1795947687.99))
    assert.equals("1969-12-31T23:59:59Z", aap.format_time(-0.5))
  end)

  it("round-trips across centuries", function()
    for _, t in ipairs({ 0, 86399, 951782400, 4107456000, 33331947687, 253402300799 }) do
      assert.equals(t, aap.parse_time(aap.format_time(t)))
    end
  end)

  it("raises outside years 0000..9999 and on non-numbers", function()
    assert.has_error(function() aap.format_time(253402300800) end)
    assert.has_error(function() aap.format_time(0 / 0) end)
    assert.has_error(function() aap.format_time("x") end)
  end)
end)

describe("aap.parse_http_date", function()
  it("reads HTTP dates with libcurl's parser, and nothing else as one", function()
    assert.equals(1796288400, aap.parse_http_date("Thu, 03 Dec 2026 09:00:00 GMT"))
    assert.equals("2026-12-03T09:00:00Z", aap.format_time(aap.parse_http_date("Thu, 03 Dec 2026 09:00:00 GMT")))
    for _, bad in ipairs({ "", "tomorrow", "Thu, 03 Dec 2026 09:00:00 GMT\0x", ("x"):rep(100) }) do
      assert.is_nil(aap.parse_http_date(bad))
    end
    assert.has_error(function() aap.parse_http_date(nil) end)
  end)

  it("takes the three forms HTTP allows (RFC 7231 7.1.1.1), GMT when the zone is left out", function()
    local t = 1796288400
    assert.equals(t, aap.parse_http_date("Thursday, 03-Dec-26 09:00:00 GMT"))  -- RFC 850
    assert.equals(t, aap.parse_http_date("Thu Dec  3 09:00:00 2026"))          -- asctime
    assert.equals(t, aap.parse_http_date("Thu, 03 Dec 2026 09:00:00"))
    assert.equals(t - 3600, aap.parse_http_date("03 Dec 2026 09:00:00 +0100"))
    assert.is_nil(aap.parse_http_date("2026-12-03T09:00:00Z"))                 -- ISO-8601 is not one
  end)
end)
