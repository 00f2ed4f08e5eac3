-- The machine-readable report contract (issue #13): aap.report's encoding, and the JSON of
-- the commands an operator's pipeline reads — stable keys, null for missing values, [] for
-- empty lists, no token value — plus rotate's --detailed-exit-code.
local helper = require("helper")
local cjson = require("cjson")

describe("aap.report", function()
  local report = require("aap.report")

  it("writes every field of an object, null for the missing, keys sorted", function()
    local o = report.object({ "b", "a", "c" }, { a = 1, c = "x" })
    assert.equal('{"a":1,"b":null,"c":"x"}', report.encode(o))
  end)

  it("writes a list as an array even when empty, and an empty object as {}", function()
    assert.equal("[]", report.encode(report.list()))
    assert.equal('{"l":[],"o":{}}', report.encode({ l = report.list(), o = {} }))
    assert.equal('[1,"two",[3]]', report.encode({ 1, "two", { 3 } }))
  end)

  it("escapes strings as lua-cjson does, and refuses keys that are not strings", function()
    assert.equal('{"k":"a\\"b\\n\\u0000"}', report.encode({ k = 'a"b\n\0' }))
    assert.has_error(function() report.encode({ [true] = 1 }) end)
  end)
end)

describe("command reports", function()
  local sim, dir

  setup(function()
    sim = helper.start_sim()
    dir = helper.tmpdir()
  end)
  teardown(function()
    sim:stop()
    helper.cleanup()
  end)
  before_each(function() sim:reset() end)

  local function aap(argv, extra) return sim:aap(argv, extra) end

  local function json(r)
    local ok, v = pcall(cjson.decode, r.stdout)
    assert(ok, "stdout is not one JSON document: " .. r.stdout .. r.stderr)
    return v
  end

  local function policy(text)
    local p = dir .. "/policy-" .. tostring(math.random(1e9)) .. ".lua"
    helper.writefile(p, text)
    return p
  end

  it("token list: [] when nothing matches, every field of a token otherwise", function()
    local r = aap({ "token", "list", "--format", "json", "--user", "999999" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("[]\n", r.stdout)
    assert.equal(0, aap({ "token", "create", "--format", "env", "--description", "listed" }).code)
    local list = json(aap({ "token", "list", "--format", "json", "--kind", "personal" }))
    assert.is_true(#list >= 1)
    for _, t in ipairs(list) do
      for _, f in ipairs({ "id", "kind", "user", "application", "scope", "description", "created", "expires",
                           "last_used" }) do
        assert.is_true(t[f] ~= nil, "field " .. f)
      end
      assert.equal(cjson.null, t.application)
    end
  end)

  it("token rotate --output json: the decision and reason, tokens by id, no value; exit 6 only when rotated",
    function()
      local path = dir .. "/rot.env"
      assert.equal(0, aap({ "token", "create", "--env-file", path, "-q" }).code)
      local value = helper.source_env(path, { "AAP_PAT" }).AAP_PAT
      local keep = policy('return { max_age = "30d" }\n')
      local r = aap({ "token", "rotate", "--env-file", path, "--policy", keep, "--output", "json",
                      "--detailed-exit-code" })
      assert.equal(0, r.code, r.stderr)
      local k = json(r)
      assert.equal("keep", k.decision)
      assert.equal("not_due", k.code)
      assert.is_false(k.rotated)
      assert.equal(cjson.null, k.new)
      assert.same({}, k.revoked)
      assert.is_nil(r.stdout:find(value, 1, true))
      local now = policy('return { max_age = "0s" }\n')
      r = aap({ "token", "rotate", "--env-file", path, "--policy", now, "--output", "json", "--detailed-exit-code" })
      assert.equal(6, r.code, r.stderr)
      local d = json(r)
      assert.equal("rotated", d.decision)
      assert.is_true(d.rotated)
      assert.equal(k.old.id, d.old.id)
      assert.not_equal(d.old.id, d.new.id)
      assert.equal(sim:token_id(helper.source_env(path, { "AAP_PAT" }).AAP_PAT), d.new.id)
      assert.same({ d.old.id }, d.revoked)
      local new_value = helper.source_env(path, { "AAP_PAT" }).AAP_PAT
      assert.is_nil(r.stdout:find(new_value, 1, true))
      -- without the flag a rotation exits 0, as before
      r = aap({ "token", "rotate", "--env-file", path, "--policy", now, "-q" })
      assert.equal(0, r.code, r.stderr)
    end)

  it("token rotate refuses --format with --output json before anything changes", function()
    local path = dir .. "/both.env"
    assert.equal(0, aap({ "token", "create", "--env-file", path, "-q" }).code)
    local before = helper.readfile(path)
    local r = aap({ "token", "rotate", "--env-file", path, "--policy", policy('return { max_age = "0s" }\n'),
                    "--output", "json", "--format", "env" })
    assert.equal(1, r.code)
    assert.equal(before, helper.readfile(path))
  end)

  it("token prune --output json: candidates with why, revoked, [] when empty; only JSON on stdout", function()
    local r = aap({ "token", "prune", "--description-like", "nothing-like-this", "--dry-run", "--output", "json" })
    assert.equal(0, r.code, r.stderr)
    local e = json(r)
    assert.same({}, e.candidates)
    assert.same({}, e.revoked)
    assert.is_true(e.dry_run)
    assert.equal(0, aap({ "token", "create", "--format", "env", "--description", "prune-me-please" }).code)
    r = aap({ "token", "prune", "--description-like", "prune-me-please", "--unused-for", "0s", "--yes",
              "--output", "json" })
    assert.equal(0, r.code, r.stderr)
    local p = json(r)
    assert.equal(1, #p.candidates)
    assert.is_string(p.candidates[1].why)
    assert.same({ p.candidates[1].id }, p.revoked)
    assert.same({}, p.failed)
    assert.equal(cjson.null, p.refused)
  end)

  local function log_lines(r)
    local lines = {}
    for l in r.stderr:gmatch("[^\n]+") do
      local ok, v = pcall(cjson.decode, l)
      assert(ok and type(v) == "table", "not a JSON log line: " .. l)
      assert.is_string(v.time)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", v.time)
      assert.is_string(v.message)
      lines[#lines + 1] = v
    end
    return lines
  end

  it("--log-format json / AAP_LOG_FORMAT=json: every stderr line one JSON object, errors with code and exit",
    function()
      local path = dir .. "/log.env"
      local r = aap({ "token", "create", "--env-file", path, "--format", "env", "--log-format", "json" })
      assert.equal(0, r.code, r.stderr)
      local l = log_lines(r)
      assert.is_true(#l >= 1)
      assert.equal("info", l[1].level)
      assert.equal("token create", l[1].command)
      local value = helper.source_env(path, { "AAP_PAT" }).AAP_PAT
      assert.is_nil(r.stderr:find(value, 1, true))
      -- a policy's ctx:log line names the policy
      local p = policy('return { max_age = "0s", on_rotated = function(ctx) ctx:log("switched") end }\n')
      r = aap({ "token", "rotate", "--env-file", path, "--policy", p }, { AAP_LOG_FORMAT = "json" })
      assert.equal(0, r.code, r.stderr)
      local saw
      for _, e in ipairs(log_lines(r)) do
        if e.message == "switched" then saw = e end
      end
      assert.truthy(saw, r.stderr)
      assert.equal(p, saw.policy)
      assert.equal("token rotate", saw.command)
      -- an error, and a usage error before any command is known
      r = aap({ "whoami", "--log-format", "json" }, { AAP_PASSWORD = "wrong-pw-xyz" })
      assert.equal(3, r.code)
      local e = log_lines(r)
      assert.equal(1, #e)
      assert.same({ "error", "auth", 3, "whoami" }, { e[1].level, e[1].code, e[1].exit, e[1].command })
      assert.is_nil(r.stderr:find("wrong-pw-xyz", 1, true))
      r = aap({ "token", "list", "--bogus" }, { AAP_LOG_FORMAT = "json" })
      assert.equal(1, r.code)
      e = log_lines(r)
      assert.same({ "error", "usage", 1 }, { e[1].level, e[1].code, e[1].exit })
      -- a secret on the command line is refused in the log's format too
      r = aap({ "whoami", "--password", "x" }, { AAP_LOG_FORMAT = "json" })
      assert.equal(1, r.code)
      e = log_lines(r)
      assert.same({ "error", "usage", 1 }, { e[1].level, e[1].code, e[1].exit })
      -- --log-format text wins over the environment
      r = aap({ "whoami", "--log-format", "text" }, { AAP_LOG_FORMAT = "json", AAP_PASSWORD = "wrong-pw-xyz" })
      assert.matches("^aap: auth", r.stderr)
    end)

  it("token status, app list and show: every field, arrays", function()
    local apps = json(aap({ "app", "list", "--format", "json" }))
    assert.is_true(#apps >= 1)
    for _, f in ipairs({ "id", "name", "organization", "client_id", "client_type", "authorization_grant_type",
                         "description", "redirect_uris" }) do
      assert.is_true(apps[1][f] ~= nil, "field " .. f)
    end
    assert.is_nil(aap({ "app", "list", "--format", "json" }).stdout:find("client_secret", 1, true))
  end)
end)
