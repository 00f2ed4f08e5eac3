-- aap.export: each format read back by the tool that consumes it (bash, python-dotenv, a JSON
-- decoder, a YAML parser) and compared with what went in.
local helper = require("helper")
local export = require("aap.export")
local cjson = require("cjson.safe").new()
local lyaml = require("lyaml") -- Debian package lua-yaml

local shquote, readfile, writefile = helper.shquote, helper.readfile, helper.writefile

local HAVE_DOTENV = helper.PYTHON_DOTENV ~= nil

-- Values that break naive quoting in one format or another.
local NASTY = {
  { "PLAIN", "abcDEF0123456789" },
  { "SPACES", "  two  words  " },
  { "SQUOTE", "it's" },
  { "DQUOTE", 'say "hi"' },
  { "DOLLAR", "$HOME $(id) ${PATH}" },
  { "BACKTICK", "`id`" },
  { "BACKSLASH", "a\\b\\\\c\\" },
  { "HASH", "#not a comment" },
  { "UTF8", "größe → 😀" },
  { "YAMLISH", "yes" },
  { "NULLISH", "~" },
  { "NUMERIC", "0x1F" },
  { "COLON", "key: value - [a, b] {c: d} &anchor *alias !tag |" },
  { "EMPTY", "" },
  { "TAB", "a\tb" },
  { "BANG", "!x" },
  { "DASH", "-n" },
}

local function values_of(list)
  local map = {}
  for _, p in ipairs(list) do map[p[1]] = p[2] end
  return map
end

local function keys_of(list)
  local keys = {}
  for i, p in ipairs(list) do keys[i] = p[1] end
  return keys
end

describe("aap.export env format", function()
  after_each(function() helper.cleanup() end)

  it("writes KEY=value lines that bash and python-dotenv read back exactly", function()
    local list = {}
    for _, p in ipairs(NASTY) do
      -- The env format refuses what no quoting carries to both bash and dotenv (see aap.env).
      if require("aap.env").quote(p[2]) then list[#list + 1] = p end
    end
    assert.is_true(#list >= #NASTY - 2)
    local text = export.render("env", list)
    local path = helper.tmpdir() .. "/out.env"
    writefile(path, text)
    local got = helper.source_env(path, keys_of(list))
    assert.same(values_of(list), got)
    if HAVE_DOTENV then
      local p = io.popen(helper.PYTHON_DOTENV .. " -c " .. shquote(
        "import json,sys\nfrom dotenv import dotenv_values\nprint(json.dumps(dotenv_values(sys.argv[1])))")
        .. " " .. shquote(path))
      local py = cjson.decode(p:read("a"))
      p:close()
      assert.same(values_of(list), py)
    end
  end)

  it("writes token values bare, one line each, in order", function()
    assert.equal("AAP_TOKEN=abc123\nAAP_REFRESH_TOKEN=def456\n",
      export.render("env", { { "AAP_TOKEN", "abc123" }, { key = "AAP_REFRESH_TOKEN", value = "def456" } }))
    assert.equal("", export.render("env", {}))
  end)

  it("raises for a value it cannot carry, without showing it", function()
    local ok, err = pcall(export.render, "env", { { "A", "sec'ret$" } })
    assert.is_false(ok)
    assert.truthy(err:find("cannot write A in env format", 1, true))
    assert.falsy(err:find("sec", 1, true))
    ok, err = pcall(export.render, "env", { { "A", "line\nbreak" } })
    assert.is_false(ok)
    assert.falsy(err:find("line", 1, true))
  end)
end)

describe("aap.export shell format", function()
  after_each(function() helper.cleanup() end)

  it("always single-quotes", function()
    assert.equal("export AAP_TOKEN='abc'\nexport B='it'\\''s'\n",
      export.render("shell", { { "AAP_TOKEN", "abc" }, { "B", "it's" } }))
  end)

  it("is safe to eval: bash gets every value back exactly, newlines included, and runs nothing", function()
    local dir = helper.tmpdir()
    local list = {}
    for _, p in ipairs(NASTY) do list[#list + 1] = p end
    list[#list + 1] = { "NEWLINE", "line1\nline2\n" }
    list[#list + 1] = { "INJECT", "'; touch " .. dir .. "/pwned; echo '" }
    local out = dir .. "/out.sh"
    writefile(out, export.render("shell", list))
    local q = {}
    for i, k in ipairs(keys_of(list)) do q[i] = ('printf "%%s\\0" "$%s"'):format(k) end
    local p = io.popen("bash -c " .. shquote('eval "$(cat ' .. shquote(out) .. ')"; ' .. table.concat(q, "; ")))
    local raw = p:read("a")
    assert.is_true(p:close())
    local got, i = {}, 1
    for v in raw:gmatch("([^%z]*)%z") do got[list[i][1]] = v; i = i + 1 end
    assert.same(values_of(list), got)
    assert.is_nil(readfile(dir .. "/pwned"))
  end)

  it("exports the variables to child processes", function()
    local dir = helper.tmpdir()
    writefile(dir .. "/out.sh", export.render("shell", { { "AAP_TOKEN", "x y" } }))
    local p = io.popen("bash -c " .. shquote('eval "$(cat ' .. shquote(dir .. "/out.sh") .. ')"; '
      .. "sh -c 'printf %s \"$AAP_TOKEN\"'"))
    assert.equal("x y", p:read("a"))
    p:close()
  end)
end)

describe("aap.export json format", function()
  local meta = { id = 7, kind = "personal", scope = "write", expires = 1827483687, created = "2026-11-29T10:21:27Z",
                 description = 'rotated "daily"', application = 3, user = 2,
                 token = "SHOULD-NOT-APPEAR", refresh_token = "NOR-THIS" }

  it("decodes to the metadata and the variables", function()
    local text = export.render("json", NASTY, { meta = meta })
    local doc = assert(cjson.decode(text))
    for k, v in pairs(values_of(NASTY)) do assert.equal(v, doc[k], k) end
    assert.equal(7, doc.id)
    assert.equal("personal", doc.kind)
    assert.equal("write", doc.scope)
    assert.equal(3, doc.application)
    assert.equal(2, doc.user)
    assert.equal('rotated "daily"', doc.description)
    assert.equal(os.date("!%Y-%m-%dT%H:%M:%SZ", 1827483687), doc.expires)
    assert.equal("2026-11-29T10:21:27Z", doc.created)
    assert.falsy(text:find("SHOULD-NOT-APPEAR", 1, true))
    assert.falsy(text:find("NOR-THIS", 1, true))
  end)

  it("keeps the keys in order: the variables as given, then the metadata", function()
    local text = export.render("json", { { "Z", "1" }, { "A", "2" }, { "M", "3" } },
                               { meta = { id = 1, kind = "application", expires = 0 } })
    local last = 0
    for _, k in ipairs({ '"Z"', '"A"', '"M"', '"id"', '"kind"', '"expires"' }) do
      local at = text:find(k, 1, true)
      assert.truthy(at and at > last, k)
      last = at
    end
    assert.equal("1970-01-01T00:00:00Z", cjson.decode(text).expires)
  end)

  it("without metadata or variables is still an object", function()
    assert.equal("{}\n", export.render("json", {}))
    assert.same({}, cjson.decode(export.render("json", {})))
    assert.equal('{\n  "A": "1"\n}\n', export.render("json", { { "A", "1" } }))
  end)

  it("refuses a variable named like a metadata field that is present", function()
    assert.has_error(function() export.render("json", { { "id", "x" } }, { meta = { id = 1 } }) end)
    assert.has_no_error(function() export.render("json", { { "id", "x" } }, { meta = { kind = "personal" } }) end)
    local text, err = export.format("json", { { "kind", "x" } }, { kind = "personal" })
    assert.is_nil(text)
    assert.equal("usage", err.code)
  end)

  it("json_string escapes what JSON and YAML need, and refuses invalid UTF-8", function()
    assert.equal('"a\\"b\\\\c\\n\\u0001\\u007F\\u0085é"', export.json_string('a"b\\c\n\1\127\194\133é'))
    assert.equal('"https://x/y"', export.json_string("https://x/y"))
    assert.has_error(function() export.json_string("\255") end)
    assert.has_error(function() export.render("json", { { "A", "\255" } }) end)
  end)
end)

describe("aap.export k8s-secret format", function()
  it("is a Secret manifest whose stringData parses back to the values", function()
    local list = {}
    for _, p in ipairs(NASTY) do list[#list + 1] = p end
    list[#list + 1] = { "CONTROL", "a\1b\127c\r\n\tend" }
    list[#list + 1] = { "NEWLINES", "line1\nline2\n" }
    local text = export.render("k8s-secret", list, {
      name = "aap-token.rhdh", namespace = "team-a",
      labels = { app = "backstage", ["example.com/tier"] = "gold" },
      annotations = { ["example.com/note"] = "rotated: daily" },
      meta = { id = 7 },
    })
    local doc = lyaml.load(text)
    assert.equal("v1", doc.apiVersion)
    assert.equal("Secret", doc.kind)
    assert.equal("Opaque", doc.type)
    assert.equal("aap-token.rhdh", doc.metadata.name)
    assert.equal("team-a", doc.metadata.namespace)
    assert.same({ ["rhdh.redhat.com/ext-config-sync"] = "true", app = "backstage", ["example.com/tier"] = "gold" },
                doc.metadata.labels)
    assert.same({ ["example.com/note"] = "rotated: daily" }, doc.metadata.annotations)
    assert.same(values_of(list), doc.stringData)
    assert.is_nil(doc.data)
  end)

  it("writes the sync label first and as the string \"true\"", function()
    local text = export.render("k8s-secret", { { "AAP_TOKEN", "abc" } }, { name = "s" })
    assert.equal(table.concat({
      "apiVersion: v1", "kind: Secret", "metadata:", '  name: "s"', "  labels:",
      '    "rhdh.redhat.com/ext-config-sync": "true"', "type: Opaque", "stringData:",
      '  "AAP_TOKEN": "abc"', "" }, "\n"), text)
    assert.equal("string", type(lyaml.load(text).metadata.labels["rhdh.redhat.com/ext-config-sync"]))
  end)

  it("an empty Secret still parses", function()
    local doc = lyaml.load(export.render("k8s-secret", {}, { name = "empty" }))
    assert.same({}, doc.stringData)
  end)

  it("validates the name as a DNS-1123 subdomain", function()
    for _, good in ipairs({ "a", "aap-token", "a.b-c.d", "0abc", ("a"):rep(63) .. "." .. ("b"):rep(63) }) do
      assert.is_true(export.check_name(good), good)
      assert.has_no_error(function() export.render("k8s-secret", {}, { name = good }) end)
    end
    for _, bad in ipairs({ "", "Aap", "a_b", "-a", "a-", "a..b", ".a", "a.", "a b", ("a"):rep(64),
                           (("a"):rep(50) .. "."):rep(5) .. "abcd" }) do
      local ok, why = export.check_name(bad)
      assert.is_nil(ok, bad)
      assert.is_string(why)
      assert.has_error(function() export.render("k8s-secret", {}, { name = bad }) end)
    end
    assert.has_error(function() export.render("k8s-secret", {}) end)
  end)

  it("validates namespace and labels", function()
    assert.is_true(export.check_namespace("team-a"))
    assert.is_nil(export.check_namespace("team.a"))
    assert.is_nil(export.check_namespace(("a"):rep(64)))
    assert.has_error(function() export.render("k8s-secret", {}, { name = "s", namespace = "Team" }) end)
    assert.is_true(export.check_label("app", "x"))
    assert.is_true(export.check_label("example.com/app.name_1", ""))
    assert.is_nil(export.check_label("Bad_Prefix/app", "x"))
    assert.is_nil(export.check_label("app", "has space"))
    assert.is_nil(export.check_label("app", ("v"):rep(64)))
    assert.is_nil(export.check_label("", "x"))
    assert.has_error(function() export.render("k8s-secret", {}, { name = "s", labels = { app = "a b" } }) end)
    assert.has_error(function() export.render("k8s-secret", {}, { name = "s", annotations = { ["a b"] = "x" } }) end)
  end)
end)

describe("aap.export.render arguments", function()
  it("raises on bad input, naming keys but never values", function()
    assert.has_error(function() export.render("yaml", {}) end)
    assert.has_error(function() export.render(nil, {}) end)
    assert.has_error(function() export.render("env", "A=1") end)
    assert.has_error(function() export.render("env", { "A=1" }) end)
    assert.has_error(function() export.render("env", { { "bad-key", "v" } }) end)
    assert.has_error(function() export.render("env", { { "A", 1 } }) end)
    assert.has_error(function() export.render("env", { { "A", "1" }, { "A", "2" } }) end)
    assert.has_error(function() export.render("env", {}, { bogus = 1 }) end)
    assert.has_error(function() export.render("json", {}, { meta = { id = {} } }) end)
    local ok, err = pcall(export.render, "shell", { { "A", "sec\0ret" } })
    assert.is_false(ok)
    assert.falsy(err:find("sec", 1, true))
  end)
end)

describe("aap.export redaction", function()
  it("redact shows only the length", function()
    assert.equal("<redacted 30 chars>", export.redact(("x"):rep(30)))
    assert.equal("<redacted 1 char>", export.redact("x"))
    assert.equal("<redacted 0 chars>", export.redact(""))
    assert.equal("<redacted 2 chars>", export.redact("éé"))
    assert.has_error(function() export.redact(nil) end)
  end)

  it("redacted_env replaces every value and keeps the rest of the file", function()
    local text = table.concat({
      "# tokens for the portal\r\n",
      "\n",
      "export AAP_TOKEN=s3cr3tT0ken # rotated by aap\r\n",
      "AAP_URL='https://gw.example'\n",
      'MULTI="secret line 1\nsecret line 2"\n',
      "BROKEN='secret-unterminated\n",
      "garbage secret-ish line\n",
      "  # indented comment\n",
      "LAST=abc",
    })
    local red = export.redacted_env(text)
    assert.equal(table.concat({
      "# tokens for the portal\r\n",
      "\n",
      "export AAP_TOKEN=<redacted 11 chars> # rotated by aap\r\n",
      "AAP_URL=<redacted 18 chars>\n",
      "MULTI=<redacted 27 chars>\n",
      "BROKEN=<redacted, unparsed>\n",
      "# <redacted line>\n",
      "  # indented comment\n",
      "LAST=<redacted 3 chars>",
    }), red)
    assert.falsy(red:find("secret", 1, true))
    assert.falsy(red:find("s3cr3t", 1, true))
    assert.has_error(function() export.redacted_env(nil) end)
  end)
end)

describe("aap.export.format (user-facing input)", function()
  it("renders like render, taking metadata from the top level of opts", function()
    local text = assert(export.format("json", { { "AAP_TOKEN", "abc" } },
      { id = 9, kind = "application", scope = "read", expires = 0 }))
    local doc = cjson.decode(text)
    assert.equal("abc", doc.AAP_TOKEN)
    assert.equal(9, doc.id)
    assert.equal("1970-01-01T00:00:00Z", doc.expires)
    assert.equal(export.render("env", { { "A", "b c" } }), export.format("env", { { "A", "b c" } }, {}))
    local k8s = assert(export.format("k8s-secret", { { "A", "1" } }, { name = "s", namespace = "ns", id = 3 }))
    assert.equal("ns", lyaml.load(k8s).metadata.namespace)
    local viameta = assert(export.format("json", {}, { meta = { id = 4 }, kind = "personal" }))
    assert.equal(4, cjson.decode(viameta).id)
    assert.equal("personal", cjson.decode(viameta).kind)
  end)

  it("returns usage errors for what a user chose", function()
    local cases = {
      { "yaml", {} },
      { "k8s-secret", {} },
      { "k8s-secret", { name = "Not_Valid" } },
      { "k8s-secret", { name = "ok", namespace = "not.valid" } },
      { "k8s-secret", { name = "ok", labels = { app = "a b" } } },
    }
    for _, c in ipairs(cases) do
      local text, err = export.format(c[1], { { "A", "1" } }, c[2])
      assert.is_nil(text)
      assert.equal("usage", err.code)
      assert.is_string(err.message)
      assert.equal("usage: " .. err.message, tostring(err))
    end
  end)

  it("returns a local error for a value the format cannot carry, without the value", function()
    local text, err = export.format("env", { { "A", "sec'ret$" } })
    assert.is_nil(text)
    assert.equal("local", err.code)
    assert.falsy(tostring(err):find("sec", 1, true))
    text, err = export.format("json", { { "A", "sec\255" } })
    assert.is_nil(text)
    assert.equal("local", err.code)
    assert.falsy(tostring(err):find("sec", 1, true))
    assert.truthy(export.format("shell", { { "A", "sec'ret$" } }))
  end)

  it("still raises on programmer errors", function()
    assert.has_error(function() export.format("env", { { "A", "1" } }, { bogus = 1 }) end)
    assert.has_error(function() export.format("env", "A=1") end)
    assert.has_error(function() export.format("env", { { "bad key", "1" } }) end)
    assert.has_error(function() export.format("json", {}, { meta = 5 }) end)
  end)
end)
