-- url.c: which URLs aap.connect (and aap.check_url, for a URL a person typed) takes as a
-- gateway's base, what it keeps of them, and which hosts count as loopback (credentials over
-- plain http only there). A bad URL is a programmer error to aap.connect (it raises, saying
-- why) and `nil, reason` from aap.check_url; a credential over plain http to another host is
-- the error code `insecure`. No I/O: connect does none.
local aap = require("aap")

local INVALID = "not a valid http:// or https:// URL"
local CREDENTIALS = "credentials do not belong in the URL: use username/password or token"

describe("aap.connect's url", function()
  local function raises(opts, pattern)
    local ok, err = pcall(aap.connect, opts)
    assert.is_false(ok)
    assert.matches(pattern, tostring(err))
  end

  it("rejects URLs that are not plain http(s) base URLs", function()
    raises({ url = "ftp://127.0.0.1/" }, "scheme must be http or https")
    raises({ url = "file:///etc/passwd" }, "url")
    raises({ url = "http://admin:pw@127.0.0.1/" }, "credentials do not belong in the URL")
    raises({ url = "http://127.0.0.1/?x=1" }, "query or fragment")
    raises({ url = "http://127.0.0.1/#frag" }, "query or fragment")
    raises({ url = "not a url" }, "url")
  end)

  -- check_url and connect agree: the same reason, raised by connect after "option 'url': ".
  local function refused(url, reason)
    local ok, why = aap.check_url(url)
    assert.is_nil(ok, url)
    assert.equals(reason, why, url)
    local cok, cerr = pcall(aap.connect, { url = url })
    assert.is_false(cok, url)
    assert.is_truthy(tostring(cerr):find("aap.connect: option 'url': " .. reason, 1, true), tostring(cerr))
  end

  it("refuses other schemes, ports out of range, an open bracket, a missing host, blanks", function()
    refused("ftp://127.0.0.1/", "scheme must be http or https")
    for _, url in ipairs({ "ws://127.0.0.1/", "gw.example.com", "https://",
                           "http://127.0.0.1:65536", "http://127.0.0.1:99999999", "http://127.0.0.1:-1",
                           "http://127.0.0.1:abc", "http://[::1", "http://[::1:8080/",
                           "https://gw.example.com/a b" }) do
      refused(url, INVALID)
    end
  end)

  it("refuses user info of any kind, a query, a fragment", function()
    refused("http://user@gw.example.com", CREDENTIALS)
    refused("http://:pw@gw.example.com", CREDENTIALS)
    refused("https://admin:secret@gw.example.com/", CREDENTIALS)
    refused("https://gw.example.com?x", "URL must not have a query or fragment")
    refused("https://gw.example.com/api/?page=2", "URL must not have a query or fragment")
    refused("https://gw.example.com/#top", "URL must not have a query or fragment")
    assert.same({ nil, "holds NUL" }, { aap.check_url("https://gw.example.com/\0") })
    assert.has_error(function() aap.check_url(nil) end)
  end)

  it("keeps scheme (lowercased), host and port as written, a path prefix without its trailing slashes", function()
    local function base(url)
      assert.is_true(aap.check_url(url), url)
      local s <close> = aap.connect({ url = url })
      return tostring(s):match("^aap%.Session%(([^,]+),")
    end
    assert.equals("https://gw.example.com", base("https://gw.example.com/"))
    assert.equals("https://gw.example.com", base("HTTPS://gw.example.com"))
    assert.equals("https://gw.example.com/prefix", base("https://gw.example.com/prefix//"))
    assert.equals("https://GW.Example.COM:443/a/b", base("https://GW.Example.COM:443/a/b/"))
    assert.equals("http://[::1]:8080", base("http://[::1]:8080/"))
    assert.equals("http://127.0.0.1:1", base("http://127.0.0.1:1"))
  end)
end)

describe("loopback: where credentials may go over plain http", function()
  it("refuses Basic and Bearer over plain http to a non-loopback host unless allowed", function()
    local s, err = aap.connect({ url = "http://gateway.example.com", username = "admin", password = "pw" })
    assert.is_nil(s)
    assert.equals("insecure", err.code)
    assert.matches("allow_plain_http", err.message)
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com", username = "admin", password = "pw",
                                   allow_plain_http = true }))
    -- the former name of the option still works
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com", username = "admin", password = "pw",
                                   allow_insecure_basic = true }))
    assert.is_truthy(aap.connect({ url = "https://gateway.example.com", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://127.0.0.1:1", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://[::1]:1", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://localhost:1", username = "admin", password = "pw" }))
    assert.is_truthy(aap.connect({ url = "http://[::ffff:127.0.0.1]:1", username = "admin", password = "pw" }))
    for _, url in ipairs({ "http://127.attacker.example", "http://127.0.0.1.attacker.example",
                           "http://localhost.attacker.example", "http://[::ffff:10.0.0.1]:1" }) do
      local t, e = aap.connect({ url = url, username = "admin", password = "pw" })
      assert.is_nil(t, url)
      assert.equals("insecure", e.code)
    end
    assert.is_truthy(aap.connect({ url = "http://127.255.0.9:1", username = "admin", password = "pw" }))
    -- a token is a credential too (issue #11)
    local t, e = aap.connect({ url = "http://gateway.example.com", token = "abc" })
    assert.is_nil(t)
    assert.equals("insecure", e.code)
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com", token = "abc", allow_plain_http = true }))
    -- no credential: nothing to protect
    assert.is_truthy(aap.connect({ url = "http://gateway.example.com" }))
  end)

  it("says insecure with the code only, before any I/O, and never raises for it", function()
    local s, err = aap.connect({ url = "http://10.0.0.1:1", token = "abc", timeout = 0.001 })
    assert.is_nil(s)
    assert.equals("insecure", err.code)
    assert.is_nil(err.status)
    assert.is_nil(tostring(err):find("abc", 1, true))
    -- 0.0.0.0 and [::] are not loopback: the kernel may route them anywhere it listens
    for _, url in ipairs({ "http://0.0.0.0:1", "http://[::]:1", "http://LOCALHOST.:1" }) do
      local t, e = aap.connect({ url = url, username = "admin", password = "pw" })
      assert.is_nil(t, url)
      assert.equals("insecure", e.code, url)
    end
    assert.is_truthy(aap.connect({ url = "http://LocalHost:1", username = "admin", password = "pw" }))
  end)
end)
