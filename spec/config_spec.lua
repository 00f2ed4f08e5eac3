-- aap.config: the command's connection settings from flags and the environment (AAP_HOSTNAME
-- and friends), in-process with a stand-in environment. Every refusal is a usage error (exit 1)
-- whose message names the variable or flag, never a secret.
local helper = require("helper")

describe("aap.config", function()
  local env, config
  local real_getenv = os.getenv

  -- aap.config reads the environment through os.getenv as it was when it was loaded: load it
  -- afresh over a stand-in.
  local function with_env(vars)
    env = vars
    os.getenv = function(k) return env[k] end   -- luacheck: ignore 122
    package.loaded["aap.config"] = nil
    config = require("aap.config")
    os.getenv = real_getenv                     -- luacheck: ignore 122
    return config
  end
  after_each(function()
    os.getenv = real_getenv                     -- luacheck: ignore 122
    package.loaded["aap.config"] = nil
    helper.cleanup()
  end)

  local function refused(pattern, v, e)
    assert.is_nil(v)
    assert.equal("usage", e.code)
    assert.matches(pattern, e.message)
  end

  describe("boolean", function()
    it("takes 1/true/yes/on and 0/false/no/off in any case, nil when unset or empty", function()
      with_env({})
      for _, v in ipairs({ "1", "true", "TRUE", "Yes", "on" }) do assert.is_true(config.boolean("X", v)) end
      for _, v in ipairs({ "0", "false", "No", "OFF" }) do assert.is_false(config.boolean("X", v)) end
      assert.is_nil((config.boolean("X", nil)))
      assert.is_nil((config.boolean("X", "")))
      refused('^AAP_VALIDATE_CERTS must be true or false %(1/0, yes/no, on/off%), not "maybe"$',
        config.boolean("AAP_VALIDATE_CERTS", "maybe"))
    end)
  end)

  describe("seconds", function()
    it("takes a positive number, refuses zero, negatives, NaN and infinity", function()
      with_env({})
      assert.equal(30, config.seconds("T", "30"))
      assert.equal(2.5, config.seconds("T", "2.5"))
      assert.is_nil((config.seconds("T", nil)))
      for _, v in ipairs({ "0", "-1", "nan", "inf", "abc" }) do
        refused("^T must be a positive number of seconds, not", config.seconds("T", v))
      end
    end)
  end)

  describe("url", function()
    it("adds https:// to a bare host and drops trailing slashes and the API's own path", function()
      with_env({})
      assert.equal("https://aap.example.com", config.url("aap.example.com"))
      for _, suffix in ipairs({ "/", "//", "/api/gateway/v1/", "/api/controller/v2", "/api/v2/", "/api/gateway",
                                "/api" }) do
        assert.equal("https://aap.example.com:8443", config.url("https://aap.example.com:8443" .. suffix))
      end
      assert.equal("http://127.0.0.1:8080/prefix", config.url("http://127.0.0.1:8080/prefix/api/gateway/v1"))
    end)

    it("takes the flag first, then AAP_HOSTNAME, AAP_URL, AAP_HOST, CONTROLLER_HOST", function()
      with_env({ AAP_URL = "b.example", AAP_HOST = "c.example", CONTROLLER_HOST = "d.example" })
      assert.equal("https://b.example", config.url(nil))
      assert.equal("https://flag.example", config.url("flag.example"))
      with_env({ AAP_HOSTNAME = "a.example", AAP_URL = "b.example" })
      assert.equal("https://a.example", config.url(""))
      with_env({ CONTROLLER_HOST = "d.example" })
      assert.equal("https://d.example", config.url(nil))
    end)

    it("refuses what is not a gateway's address, naming where it came from", function()
      with_env({})
      refused("^no gateway URL: set AAP_HOSTNAME", config.url(nil))
      with_env({ AAP_HOSTNAME = "ftp://x.example" })
      refused("^AAP_HOSTNAME must be an http:// or https:// URL$", config.url(nil))
      refused("^%-%-url must not carry credentials", config.url("https://admin:pw@x.example"))
      refused("^%-%-url must not have a query string or fragment$", config.url("https://x.example/?a=1"))
      refused("^%-%-url holds white space or control characters$", config.url("https://x.example\n"))
      -- what the C core would refuse is the person's mistake too
      for _, bad in ipairs({ "https://x.example:99999", "https://x.example:abc", "https://[::1", "https://" }) do
        local v, e = config.url(bad)
        refused('^%-%-url is ".*": ', v, e)
      end
    end)
  end)

  describe("connection", function()
    it("prefers a token to a password, and records which credentials were chosen", function()
      with_env({ AAP_HOSTNAME = "x.example", AAP_TOKEN = "tok", AAP_PASSWORD = "pw" })
      local c = assert(config.connection({}))
      assert.equal("tok", c.token)
      assert.is_nil(c.password)
      assert.same({ credentials = "AAP_TOKEN", both = true }, config.info[c])
      assert.equal("auto", c.flavor)
      assert.is_false(c.insecure)
      assert.is_false(c.allow_plain_http)
      assert.matches("^aap/", c.user_agent)
    end)

    it("reads the password from AAP_PASSWORD_FILE (one final newline dropped) before AAP_PASSWORD", function()
      local dir = helper.tmpdir()
      helper.writefile(dir .. "/pw", "from-file\n", 384)
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD_FILE = dir .. "/pw", AAP_PASSWORD = "from-env",
                 AAP_USERNAME = "ops" })
      local c = assert(config.connection({}))
      assert.equal("from-file", c.password)
      assert.equal("ops", c.username)
      helper.writefile(dir .. "/pw", "\n", 384)
      refused("^AAP_PASSWORD_FILE file .* is empty$", config.connection({}))
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD_FILE = dir .. "/none" })
      refused("^cannot read AAP_PASSWORD_FILE file: ", config.connection({}))
    end)

    it("asks through the prompt only when no password is set, and refuses a run without credentials", function()
      with_env({ AAP_HOSTNAME = "x.example" })
      local asked
      local c = assert(config.connection({}, { prompt = function(text) asked = text return "typed" end }))
      assert.equal("typed", c.password)
      assert.equal("admin", c.username)
      assert.equal("Password for admin at https://x.example: ", asked)
      refused("^no credentials: set AAP_PASSWORD", config.connection({}))
      -- anonymous: the refresh grant needs none
      c = assert(config.connection({}, { anonymous = true }))
      assert.is_nil(c.password)
      assert.is_nil(c.token)
    end)

    it("turns TLS checks off only when asked, and refuses settings it cannot read", function()
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD = "pw", AAP_VALIDATE_CERTS = "false",
                 AAP_TIMEOUT = "2.5", AAP_CA_FILE = "/etc/ca.pem", AAP_ALLOW_PLAIN_HTTP = "yes" })
      local c = assert(config.connection({}))
      assert.is_true(c.insecure)
      assert.equal(2.5, c.timeout)
      assert.equal("/etc/ca.pem", c.ca_file)
      assert.is_true(c.allow_plain_http)
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD = "pw", AAP_INSECURE_SKIP_VERIFY = "1" })
      assert.is_true(assert(config.connection({})).insecure)
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD = "pw", AAP_VALIDATE_CERTS = "nope" })
      refused("^AAP_VALIDATE_CERTS must be true or false", config.connection({}))
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD = "pw", AAP_TIMEOUT = "0" })
      refused("^%-%-timeout/AAP_TIMEOUT must be a positive number", config.connection({}))
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD = "pw", AAP_FLAVOR = "tower" })
      refused('^AAP_FLAVOR must be auto, gateway or controller %(not "tower"%)$', config.connection({}))
      with_env({ AAP_HOSTNAME = "x.example", AAP_PASSWORD = "pw", AAP_FLAVOR = "controller" })
      assert.equal("controller", assert(config.connection({})).flavor)
    end)

    it("never puts a secret into a message", function()
      with_env({ AAP_HOSTNAME = "https://x.example:99999", AAP_PASSWORD = "s3cret-Pw" })
      local _, e = config.connection({})
      assert.is_nil(e.message:find("s3cret", 1, true))
    end)
  end)

  describe("has_credentials and client", function()
    it("sees credentials in the environment or on stdin", function()
      with_env({})
      assert.is_false(config.has_credentials({}))
      assert.is_true(config.has_credentials({ token_stdin = true }))
      with_env({ AAP_PASSWORD_FILE = "/x" })
      assert.is_true(config.has_credentials({}))
    end)

    it("takes the OAuth client from the environment first, then the env file", function()
      local doc = require("aap.env").parse("AAP_CLIENT_ID=from-file\nAAP_CLIENT_SECRET=file-secret\n")
      with_env({ AAP_CLIENT_ID = "from-env" })
      assert.same({ client_id = "from-env", client_secret = "file-secret" }, config.client(doc))
      with_env({})
      assert.same({ client_id = "from-file", client_secret = "file-secret" }, config.client(doc))
      refused("^no OAuth client id: set AAP_CLIENT_ID", config.client(nil))
    end)
  end)
end)
