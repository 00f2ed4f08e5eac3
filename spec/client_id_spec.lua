-- An application token's env file holds its OAuth client id (AAP_CLIENT_ID), so that
-- `aap token refresh` needs only the client secret, which the gateway never shows again; the
-- errors of a refresh without them say where to get them. Against the emulator.
local helper = require("helper")
local envfile = require("aap.env")

describe("AAP_CLIENT_ID recorded with an application token", function()
  local sim, dir, path, app

  local function aap(argv, extra)
    local e = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password }
    for k, v in pairs(extra or {}) do e[k] = v end
    return helper.run(argv, { env = e })
  end

  local function keys_of(p)
    local doc = assert(envfile.read(p))
    return doc:keys(), doc
  end

  local function works(token)
    return sim:raw("GET", "/api/gateway/v1/me/", { bearer = token }) == 200
  end

  -- Another application, with a client id of its own.
  local function other_app()
    local r = aap({ "app", "create", "--name", "Other App", "--format", "json" })
    assert.equal(0, r.code, r.stderr)
    return helper.json.decode(r.stdout)
  end

  setup(function()
    sim = helper.start_sim()
    app = sim.seed.application
  end)
  teardown(function()
    assert.is_true((sim:stop()))
    helper.cleanup()
  end)
  before_each(function()
    sim:reset()
    dir = helper.tmpdir()
    path = dir .. "/.env"
  end)

  it("token create --application records it; refresh then works with only AAP_CLIENT_SECRET", function()
    local r = aap({ "token", "create", "--application", app.name, "--env-file", path })
    assert.equal(0, r.code, r.stderr)
    assert.matches("%(AAP_TOKEN, REFRESH_TOKEN, AAP_CLIENT_ID%)", r.stdout)
    local keys, doc = keys_of(path)
    assert.same({ "AAP_TOKEN", "REFRESH_TOKEN", "AAP_CLIENT_ID" }, keys)
    assert.equal(app.client_id, doc:get("AAP_CLIENT_ID"))
    local old = doc:get("AAP_TOKEN")
    r = aap({ "token", "refresh", "--env-file", path },
      { AAP_PASSWORD = false, AAP_CLIENT_SECRET = app.client_secret })
    assert.equal(0, r.code, r.stderr)
    local _, after = keys_of(path)
    assert.are_not.equal(old, after:get("AAP_TOKEN"))
    assert.is_true(works(after:get("AAP_TOKEN")))
    assert.is_false(works(old))
    assert.equal(app.client_id, after:get("AAP_CLIENT_ID"))
    assert.is_nil(r.stderr:find(app.client_secret, 1, true))
  end)

  it("token refresh records it in a file written before aap did (from the client the gateway accepted)", function()
    local r = aap({ "token", "create", "--application", app.name, "--env-file", path })
    assert.equal(0, r.code, r.stderr)
    -- as an older aap wrote it: no AAP_CLIENT_ID line
    local _, doc = keys_of(path)
    doc:unset("AAP_CLIENT_ID")
    assert(envfile.write(path, doc))
    r = aap({ "token", "refresh", "--env-file", path },
      { AAP_PASSWORD = false, AAP_CLIENT_ID = app.client_id, AAP_CLIENT_SECRET = app.client_secret })
    assert.equal(0, r.code, r.stderr)
    local keys, after = keys_of(path)
    assert.same({ "AAP_TOKEN", "REFRESH_TOKEN", "AAP_CLIENT_ID" }, keys)
    assert.equal(app.client_id, after:get("AAP_CLIENT_ID"))
    -- the next refresh needs only the secret
    r = aap({ "token", "refresh", "--env-file", path }, { AAP_PASSWORD = false, AAP_CLIENT_SECRET = app.client_secret })
    assert.equal(0, r.code, r.stderr)
    assert.is_true(works(assert(envfile.read(path)):get("AAP_TOKEN")))
  end)

  it("--pat --application records it once; a PAT alone does not", function()
    local r = aap({ "token", "create", "--pat", "--application", app.name, "--env-file", path })
    assert.equal(0, r.code, r.stderr)
    assert.same({ "AAP_PAT", "AAP_TOKEN", "REFRESH_TOKEN", "AAP_CLIENT_ID" }, (keys_of(path)))
    local pat_path = dir .. "/pat.env"
    r = aap({ "token", "create", "--env-file", pat_path })
    assert.equal(0, r.code, r.stderr)
    assert.same({ "AAP_PAT" }, (keys_of(pat_path)))
  end)

  it("keeps the file's own AAP_CLIENT_ID line when it is the application's", function()
    local text = "# the RHDH client\nAAP_CLIENT_ID=" .. app.client_id .. "   # from app show\n"
    helper.writefile(path, text, 384)
    local r = aap({ "token", "create", "--application", app.name, "--env-file", path })
    assert.equal(0, r.code, r.stderr)
    assert.equal(text, helper.readfile(path):sub(1, #text))
    assert.matches("%(AAP_TOKEN, REFRESH_TOKEN%)", r.stdout)
  end)

  it("refuses a file holding another application's AAP_CLIENT_ID before anything is made", function()
    local other = other_app()
    local text = "AAP_CLIENT_ID=" .. other.client_id .. "\nAAP_CLIENT_SECRET=" .. other.client_secret .. "\n"
    helper.writefile(path, text, 384)
    local before = #(sim:token_ids())
    for _, argv in ipairs({ { "token", "create", "--application", app.name, "--env-file", path },
                            { "token", "create", "--pat", "--application", app.name, "--env-file", path } }) do
      local r = aap(argv)
      assert.equal(1, r.code, r.stderr)
      assert.matches("holds the AAP_CLIENT_ID of another application, not of \"" .. app.name, r.stderr, 1, true)
      assert.matches("remove AAP_CLIENT_ID", r.stderr, 1, true)
      assert.matches("nothing was created", r.stderr, 1, true)
      assert.equal(1, select(2, r.stderr:gsub("\n", "")))
      assert.is_nil(r.stderr:find(other.client_secret, 1, true))
      assert.equal(text, helper.readfile(path))
      assert.equal(before, #(sim:token_ids()))
    end
  end)

  it("refresh without a client secret fails with where to get it, spending nothing", function()
    assert.equal(0, aap({ "token", "create", "--application", app.name, "--env-file", path }).code)
    local text = helper.readfile(path)
    local token = select(2, keys_of(path)):get("AAP_TOKEN")
    local r = aap({ "token", "refresh", "--env-file", path }, { AAP_PASSWORD = false, AAP_CLIENT_SECRET = false })
    assert.equal(3, r.code, r.stderr)
    assert.matches("no client secret was given: set AAP_CLIENT_SECRET in the environment or in " .. path, r.stderr,
      1, true)
    assert.matches("shown once, when the application is created", r.stderr, 1, true)
    assert.matches("regenerate it in the AAP UI", r.stderr, 1, true)
    assert.matches("nothing was refreshed", r.stderr, 1, true)
    assert.equal(1, select(2, r.stderr:gsub("\n", "")))
    assert.equal(text, helper.readfile(path))
    assert.is_true(works(token))
    -- a wrong secret: the same hint, about both values
    r = aap({ "token", "refresh", "--env-file", path }, { AAP_PASSWORD = false, AAP_CLIENT_SECRET = "wrongsecret" })
    assert.equal(3, r.code, r.stderr)
    assert.matches("check AAP_CLIENT_ID and AAP_CLIENT_SECRET", r.stderr, 1, true)
    assert.is_nil(r.stderr:find("wrongsecret", 1, true))
    assert.is_true(works(token))
  end)

  it("refresh without a client id says where to get it", function()
    assert.equal(0, aap({ "token", "create", "--application", app.name, "--env-file", path }).code)
    local doc = assert(envfile.read(path))
    doc:unset("AAP_CLIENT_ID")
    helper.writefile(path, doc:serialize(), 384)
    local r = aap({ "token", "refresh", "--env-file", path },
      { AAP_PASSWORD = false, AAP_CLIENT_ID = false, AAP_CLIENT_SECRET = app.client_secret })
    assert.equal(1, r.code, r.stderr)
    assert.matches("no OAuth client id: set AAP_CLIENT_ID", r.stderr, 1, true)
    assert.matches("`aap app show NAME` shows it", r.stderr, 1, true)
    assert.matches("records it in the file", r.stderr, 1, true)
  end)

  describe("token rotate, recreating an application token", function()
    local function rotate_now(extra)
      local pol = dir .. "/policy.lua"
      helper.writefile(pol, 'return { max_age = "0s", strategy = "recreate" }')
      return aap({ "token", "rotate", "--env-file", path, "--policy", pol }, extra)
    end

    it("records the client id a file made before this lacks", function()
      assert.equal(0, aap({ "token", "create", "--application", app.name, "--env-file", path }).code)
      local doc = assert(envfile.read(path))
      doc:unset("AAP_CLIENT_ID")
      helper.writefile(path, doc:serialize(), 384)
      local old = doc:get("AAP_TOKEN")
      local r = rotate_now()
      assert.equal(0, r.code, r.stderr)
      local _, after = keys_of(path)
      assert.are_not.equal(old, after:get("AAP_TOKEN"))
      assert.equal(app.client_id, after:get("AAP_CLIENT_ID"))
    end)

    it("keeps another application's client id, saying so", function()
      local other = other_app()
      assert.equal(0, aap({ "token", "create", "--application", app.name, "--env-file", path }).code)
      local doc = assert(envfile.read(path))
      doc:set("AAP_CLIENT_ID", other.client_id)
      helper.writefile(path, doc:serialize(), 384)
      local r = rotate_now()
      assert.equal(0, r.code, r.stderr)
      assert.matches("holds the AAP_CLIENT_ID of another application", r.stderr, 1, true)
      assert.equal(other.client_id, select(2, keys_of(path)):get("AAP_CLIENT_ID"))
    end)
  end)
end)
