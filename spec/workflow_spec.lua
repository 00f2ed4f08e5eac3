-- aap.workflow's parts that need no gateway: which token values and answers are usable, the
-- marker format, the checks before an env file is written, and the writer that keeps the env
-- file and its state file together. (The gateway workflows themselves: workflow_create_spec,
-- workflow_identify_spec, and the reference suite.)
local helper = require("helper")
local workflow = require("aap.workflow")
local state = require("aap.state")
local envfile = require("aap.env")

describe("aap.workflow", function()
  local dir, path
  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/.env"
  end)
  after_each(helper.cleanup)

  it("keeps the lesson's key names", function()
    assert.same({ pat = "AAP_PAT", token = "AAP_TOKEN", refresh = "REFRESH_TOKEN" }, workflow.KEYS)
  end)

  it("takes token values a gateway makes, and nothing that would break a file or a header", function()
    for _, v in ipairs({ "abc", "A-b_c.d~e+f/g", "Zm9v==", ("x"):rep(4096) }) do
      assert.is_true(workflow.token_value_ok(v), v:sub(1, 20))
    end
    for _, v in ipairs({ "", "a b", "a\nb", "a'b", 'a"b', "a=b", "a#b", "a$b", ("x"):rep(4097), 7 }) do
      assert.is_false(workflow.token_value_ok(v), tostring(v):sub(1, 20))
    end
  end)

  it("says what is wrong with a token answer", function()
    local ok = { id = 7, token = "abc", refresh_token = "def" }
    assert.is_nil(workflow.odd_answer(ok, true))
    assert.equal("its id is not an integer: string", workflow.odd_answer({ id = 7.5, token = "abc",
      raw = { id = "7" } }, false))
    assert.is_nil(workflow.odd_answer({ token = "abc" }, false, true))   -- a refresh's answer has no id
    assert.equal("no token value", workflow.odd_answer({ id = 7 }, false))
    assert.equal("the token value has characters no token has", workflow.odd_answer({ id = 7, token = "a b" }))
    assert.equal("no refresh token", workflow.odd_answer({ id = 7, token = "abc" }, true))
    assert.equal("the refresh token has characters no token has",
      workflow.odd_answer({ id = 7, token = "abc", refresh_token = "x\n" }, true))
  end)

  it("makes markers state files accept, each one new", function()
    local a, b = workflow.new_marker(), workflow.new_marker()
    assert.is_true(state.valid_marker(a, state.MARKERS.create))
    assert.are_not.equal(a, b)
    assert.equal(state.MARKERS.create, workflow.MARKER)
  end)

  it("refuses a value not every .env reader takes literally, naming the key and never the value", function()
    local doc = envfile.parse("AAP_PAT=old\n")
    assert.is_true(workflow.check_values(doc, path, { { "AAP_PAT", "abc.def/ghi=" } }))
    local ok, e = workflow.check_values(doc, path, { { "AAP_PAT", "se cret#1" } })
    assert.is_nil(ok)
    assert.equal("format", e.code)
    assert.matches("^the value for AAP_PAT has characters that not every reader of .* takes literally", e.message)
    assert.is_nil(e.message:find("se cret", 1, true))
    -- a line of a key aap writes that carries `export`
    ok, e = workflow.check_values(envfile.parse("export AAP_PAT=old\n"), path, { { "AAP_PAT", "new" } })
    assert.is_nil(ok)
    assert.matches("export", e.message)
  end)

  it("saves values and their records together, 0600, keeping the file's other lines", function()
    helper.writefile(path, "# mine\nOTHER=1\nAAP_PAT=old\n", 384)
    local rec = state.record({ id = 7, kind = "personal", user = 1, scope = "write" },
      { fp = state.fingerprint("new") })
    assert.is_true(workflow.save(path, { { "AAP_PAT", "new" }, { "AAP_CLIENT_ID", "cid" } }, { AAP_PAT = rec }))
    assert.equal("# mine\nOTHER=1\nAAP_PAT=new\nAAP_CLIENT_ID=cid\n", helper.readfile(path))
    assert.equal("600", helper.mode(path))
    local st = assert(state.load(path))
    assert.equal(7, st.keys.AAP_PAT.id)
    assert.equal(state.fingerprint("new"), st.keys.AAP_PAT.fp)
    -- removing a key drops its line and its record
    assert.is_true(workflow.save(path, {}, {}, { "AAP_PAT" }))
    assert.is_nil(assert(envfile.read(path)):get("AAP_PAT"))
    assert.is_nil(assert(state.load(path)).keys.AAP_PAT)
  end)

  it("writes nothing when one value is refused", function()
    helper.writefile(path, "AAP_PAT=old\n", 384)
    local ok, e = workflow.save(path, { { "AAP_TOKEN", "fine" }, { "REFRESH_TOKEN", "not fine" } })
    assert.is_nil(ok)
    assert.equal("format", e.code)
    assert.equal("AAP_PAT=old\n", helper.readfile(path))
  end)

  it("reads an env file only when it and its state file can be trusted", function()
    helper.writefile(path, "AAP_PAT=old\n", 384)
    assert.equal("old", assert(workflow.read_env(path, { "AAP_PAT" })):get("AAP_PAT"))
    helper.writefile(path .. ".aap-state.json", "{not json", 384)
    local doc, e = workflow.read_env(path)
    assert.is_nil(doc)
    assert.equal("usage", e.code)
    assert.matches("is not an aap state file", e.message)
  end)

  it("checks that a file can be replaced before an operation that spends the old token", function()
    helper.writefile(path, "AAP_TOKEN=old\n", 384)
    local doc = assert(envfile.read(path))
    assert.is_true(workflow.preflight(path, doc))
    assert.equal("AAP_TOKEN=old\n", helper.readfile(path))
    os.execute("chmod 500 " .. dir)
    local ok, e = workflow.preflight(path, doc)
    os.execute("chmod 700 " .. dir)
    if io.popen("id -u"):read("l") ~= "0" then   -- root writes anywhere
      assert.is_nil(ok)
      assert.equal("io", e.code)
    end
  end)
end)
