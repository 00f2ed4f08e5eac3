-- TLS: a throwaway CA, the right and the wrong host certificate, the insecure switch.
local h = require("helper")
local aap = require("aap")

describe("TLS", function()
  local certs, good, wrong

  setup(function()
    certs = h.make_certs(h.tmpdir())
    good = h.start_sim({ args = { "--tls-cert", certs.cert, "--tls-key", certs.key } })
    wrong = h.start_sim({ args = { "--tls-cert", certs.wrong_cert, "--tls-key", certs.wrong_key } })
  end)
  teardown(function()
    good:stop()
    wrong:stop()
    h.cleanup()
  end)

  local function connect(url, extra)
    local o = { url = url, username = "admin", password = h.ADMIN_PASSWORD, retries = 0 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(aap.connect(o))
  end

  it("verifies the server against the given CA", function()
    assert.matches("^https://", good.url)
    local s = connect(good.url, { ca_file = certs.ca })
    local me = assert(s:me())
    assert.equals("admin", me.username)
    assert.equals("gateway", s:flavor())
    assert.is_nil(tostring(s):find("insecure", 1, true))
    s:close()
  end)

  it("refuses a server whose CA it does not trust", function()
    local s = connect(good.url)
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("tls", err.code)
    s:close()
  end)

  it("refuses a certificate for another host name, even from a trusted CA", function()
    local s = connect(wrong.url, { ca_file = certs.ca })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("tls", err.code)
    s:close()
  end)

  it("reports a CA file that cannot be read as tls", function()
    local s = connect(good.url, { ca_file = "/nonexistent/ca.pem" })
    local me, err = s:me()
    assert.is_nil(me)
    assert.equals("tls", err.code)
    s:close()
  end)

  it("skips verification only with insecure = true, and says so", function()
    local s = connect(wrong.url, { insecure = true })
    assert.truthy(s:me())
    assert.matches("insecure", tostring(s))
    s:close()
  end)

  it("keeps one TLS connection alive across calls", function()
    local s = connect(good.url, { ca_file = certs.ca, flavor = "gateway" })
    for _ = 1, 5 do assert(s:me()) end
    assert.is_true(s:stats().connects <= 1)   -- 0 when an earlier session's connection was kept
    s:close()
  end)
end)
