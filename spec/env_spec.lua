-- aap.env: parse / edit / serialize .env files, and update them atomically on disk.
-- Values written are read back by bash (`set -a; . file`), python-dotenv (when installed) and
-- kubectl --from-env-file (when installed, for values it can carry) and compared.
local helper = require("helper")
local env = require("aap.env")
local cjson = require("cjson.safe").new()

local shquote, readfile, writefile = helper.shquote, helper.readfile, helper.writefile

local function has(cmd)
  return os.execute(cmd .. " >/dev/null 2>&1") == true
end
local HAVE_DOTENV = helper.PYTHON_DOTENV ~= nil
local HAVE_KUBECTL = has("kubectl version --client")
local IS_ROOT = io.popen("id -u"):read("l") == "0"
local AAP_CPATH = os.getenv("AAP_CPATH") or "build"
local CPATH = (AAP_CPATH:sub(1, 1) == "/" and AAP_CPATH or (helper.ROOT .. "/" .. AAP_CPATH)) .. "/?.so"

-- What python-dotenv reads from a file (interpolation on, as load_dotenv does).
local function dotenv_values(path)
  local p = io.popen(helper.PYTHON_DOTENV .. " -c " .. shquote([[
import json, sys
from dotenv import dotenv_values
sys.stdout.write(json.dumps(dotenv_values(sys.argv[1])))]]) .. " " .. shquote(path))
  local out = p:read("a")
  p:close()
  return assert(cjson.decode(out), "python-dotenv output")
end

-- What kubectl puts in a Secret created --from-env-file.
local function kubectl_values(path)
  local p = io.popen("kubectl create secret generic probe --dry-run=client -o json --from-env-file="
    .. shquote(path) .. " 2>/dev/null")
  local out = p:read("a")
  p:close()
  local secret = assert(cjson.decode(out), "kubectl output")
  local mime = require("mime")
  local vals = {}
  for k, v in pairs(secret.data or {}) do vals[k] = (mime.unb64(v)) or "" end
  return vals
end

-- Check that bash (and dotenv) read exactly `expected` ({KEY = value}) from path.
local function assert_readers_agree(path, expected, opts)
  opts = opts or {}
  local keys = {}
  for k in pairs(expected) do keys[#keys + 1] = k end
  table.sort(keys)
  local bash = helper.source_env(path, keys)
  for _, k in ipairs(keys) do
    local got = bash[k]
    if opts.crlf then got = got:gsub("\r$", "") end
    assert.equal(expected[k], got, "bash reads " .. k)
  end
  if HAVE_DOTENV then
    local py = dotenv_values(path)
    for _, k in ipairs(keys) do assert.equal(expected[k], py[k], "python-dotenv reads " .. k) end
  end
end

describe("aap.env quoting", function()
  it("writes token-like values bare and everything else quoted", function()
    assert.equal("abcXYZ019", env.quote("abcXYZ019"))
    assert.equal("a-b_c.d/e:f@g%h+i,j=k", env.quote("a-b_c.d/e:f@g%h+i,j=k"))
    assert.equal("", env.quote(""))
    assert.equal("'a b'", env.quote("a b"))
    assert.equal("'$HOME'", env.quote("$HOME"))
    assert.equal("'x\"y'", env.quote('x"y'))
    assert.equal("'~/x'", env.quote("~/x"))
    assert.equal("'a:~x'", env.quote("a:~x"))
    assert.equal("a~x", env.quote("a~x"))
    assert.equal("'#x'", env.quote("#x"))
    assert.equal("'a\\b'", env.quote("a\\b"))
    assert.equal([["it's"]], env.quote("it's"))
    assert.equal([["a\\\\b"]], env.quote("a\\\\b"))
    assert.equal([["it's \"q\""]], env.quote([[it's "q"]]))
  end)

  it("refuses values no quoting carries to every reader, never echoing them", function()
    for _, v in ipairs({ "it's $5", "a\\\\b$c", "x`y`'", "a\\\\`", "${USER}", "a ${B:-x} c",
                          "end\\", "a b\\", "a\nb", "a\rb", "a\0b" }) do
      local q, why = env.quote(v)
      assert.is_nil(q)
      assert.is_string(why)
      assert.falsy(why:find(v, 1, true))
    end
    assert.has_error(function() env.quote(42) end)
  end)

  it("needs_quotes and kubectl_safe", function()
    assert.is_false(env.needs_quotes("Tok3n"))
    assert.is_true(env.needs_quotes("a b"))
    assert.is_true(env.needs_quotes("é"))
    assert.is_true(env.kubectl_safe("Tok3n/+="))
    assert.is_false(env.kubectl_safe("'quoted'"))
    assert.is_false(env.kubectl_safe(" lead"))
    assert.has_error(function() env.needs_quotes(nil) end)
    assert.has_error(function() env.kubectl_safe({}) end)
  end)
end)

describe("aap.env.parse", function()
  local nasty = table.concat({
    "# a comment\r\n",
    "\n",
    "   \t\n",
    "export EXP=exported\r\n",
    "  INDENT=yes # trailing note\n",
    "PLAIN=a#b\n",
    "SQ='single $HOME \\n'\n",
    'DQ="double \\"q\\" \\\\ \\$x \\` \\n \\z"\n',
    "SPACED = dotenv style\n",
    "EMPTY=\n",
    "EMPTYC= # only a comment\n",
    'MULTI="line one\n',
    "FAKE=inside the quote\n",
    'line three"\n',
    "GLUED='a'b\n",
    "not a key line\n",
    "export\n",
    "1NUM=x\n",
    "SQ2='it''s'\n",
    "BAD='unterminated\n",
    "LAST=final value" -- no final newline
  })

  it("keeps every byte of the text", function()
    assert.equal(nasty, env.parse(nasty):serialize())
    assert.equal("", env.parse(""):serialize())
    assert.equal("\239\187\191A=1\n", env.parse("\239\187\191A=1\n"):serialize())
  end)

  it("reads the values", function()
    local doc = env.parse(nasty)
    local expect = {
      EXP = "exported", INDENT = "yes", PLAIN = "a#b", SQ = "single $HOME \\n",
      DQ = 'double "q" \\ $x ` \n \\z', SPACED = "dotenv style", EMPTY = "", EMPTYC = "",
      MULTI = "line one\nFAKE=inside the quote\nline three", LAST = "final value",
    }
    for k, v in pairs(expect) do assert.equal(v, doc:get(k), k) end
    assert.is_nil(doc:get("FAKE"))
    assert.is_nil(doc:get("BAD"))
    assert.is_nil(doc:get("GLUED"))
    assert.is_nil(doc:get("SQ2"))
    assert.is_nil(doc:get("NUM"))
    assert.same({ "EXP", "INDENT", "PLAIN", "SQ", "DQ", "SPACED", "EMPTY", "EMPTYC", "MULTI", "GLUED",
                  "SQ2", "BAD", "LAST" }, doc:keys())
    local problems = doc:problems()
    assert.same({ { line = 15, key = "GLUED", message = "unexpected text after the closing quote" },
                  { line = 19, key = "SQ2", message = "unexpected text after the closing quote" },
                  { line = 20, key = "BAD", message = "unterminated single quote" } },
                problems)
    assert.equal("\239\187\191A=1\n", env.parse("\239\187\191A=1\n"):serialize())
    assert.equal("1", env.parse("\239\187\191A=1\n"):get("A"))
  end)

  it("agrees with bash and python-dotenv on the values they agree on", function()
    local dir = helper.tmpdir()
    local text = table.concat({
      "export EXP=exported\n", "  INDENT=yes # trailing note\n", "PLAIN=a#b\n",
      "SQ='single $HOME \\n'\n", 'DQ="double \\"q\\" \\\\ x"\n', "EMPTY=\n",
      'MULTI="line one\n', "FAKE=inside\n", 'line three"\n', "LAST=final",
    })
    writefile(dir .. "/.env", text)
    local doc = env.parse(text)
    local expected = {}
    for _, k in ipairs(doc:keys()) do expected[k] = doc:get(k) end
    expected.FAKE = nil
    assert_readers_agree(dir .. "/.env", expected)
    assert.equal("<unset>", helper.source_env(dir .. "/.env", { "FAKE" }).FAKE)
    helper.cleanup()
  end)

  it("the last assignment wins, as in bash", function()
    assert.equal("2", env.parse("A=1\nA=2\n"):get("A"))
    assert.is_nil(env.parse("A=1\nA='bad\n"):get("A"))
  end)

  it("raises on bad arguments", function()
    assert.has_error(function() env.parse(nil) end)
    assert.has_error(function() env.parse(""):get("bad-key") end)
    assert.has_error(function() env.parse(""):get(1) end)
  end)
end)

describe("aap.env document edits", function()
  it("replaces a key in place by KEY=value: other lines byte-for-byte, the inline comment moved above", function()
    local text = "# top\r\n  A = old # note\r\nB=keep\r\n  A=dup\r\nC='x'\r\nA=\"again\"\r\n"
    local doc = env.parse(text)
    doc:set("A", "new value")
    assert.equal("# top\r\n# note\r\nA='new value'\r\nB=keep\r\nC='x'\r\n", doc:serialize())
    assert.equal("new value", doc:get("A"))
    assert.same({ "A", "B", "C" }, doc:keys())
    doc:set("A", "again") -- the comment moves once
    assert.equal("# top\r\n# note\r\nA=again\r\nB=keep\r\nC='x'\r\n", doc:serialize())
    doc = env.parse("A=1 #last")
    doc:set("A", "2")
    assert.equal("#last\nA=2", doc:serialize())
  end)

  it("set raises on an export line of the key (check_owned says so first), not on another key's", function()
    local doc = env.parse("X=1\nexport A=old\nexport B=1\n")
    local ok, err = pcall(doc.set, doc, "A", "new")
    assert.is_false(ok)
    assert.matches("line 2: `export A=...`", tostring(err), 1, true)
    local cok, cerr = doc:check_owned({ "X", "A" }, "f.env")
    assert.is_nil(cok)
    assert.equal("format", cerr.code)
    assert.matches("^f.env line 2: `export A=...`", cerr.message)
    assert.is_true(doc:check_owned({ "X", "C" }))
    doc:set("X", "2")
    assert.equal("X=2\nexport A=old\nexport B=1\n", doc:serialize())
    assert.has_error(function() doc:check_owned({ "bad key" }) end)
  end)

  it("appends a new key, adding the missing final newline first", function()
    local doc = env.parse("A=1")
    doc:set("B", "2")
    assert.equal("A=1\nB=2\n", doc:serialize())
    doc = env.parse("A=1\r\nZ=9")
    doc:set("B", "two words")
    assert.equal("A=1\r\nZ=9\r\nB='two words'\r\n", doc:serialize())
    doc = env.parse("")
    doc:set("K", "v")
    assert.equal("K=v\n", doc:serialize())
  end)

  it("replaces a line that could not be parsed and a multi-line value", function()
    local doc = env.parse("A='broken\nB=ok\nM=\"one\ntwo\"\nC=3\n")
    doc:set("A", "fixed")
    doc:set("M", "single")
    assert.equal("A=fixed\nB=ok\nM=single\nC=3\n", doc:serialize())
    assert.same({}, doc:problems())
  end)

  it("replacing the last line keeps a missing final newline missing", function()
    local doc = env.parse("A=1\nB=2")
    doc:set("B", "3")
    assert.equal("A=1\nB=3", doc:serialize())
  end)

  it("unset removes every assignment and reports whether there was one", function()
    local doc = env.parse("A=1\n# c\nB=2\nA=3\n")
    assert.is_true(doc:unset("A"))
    assert.is_false(doc:unset("A"))
    assert.equal("# c\nB=2\n", doc:serialize())
    assert.is_nil(doc:get("A"))
  end)

  it("set raises on bad keys and values, without echoing the value", function()
    local doc = env.parse("A=1\n")
    for _, key in ipairs({ "", "1A", "A-B", "A B", "É", "A\n" }) do
      assert.has_error(function() doc:set(key, "v") end)
    end
    assert.has_error(function() doc:set(nil, "v") end)
    assert.has_error(function() doc:set("A", 1) end)
    for _, v in ipairs({ "sec\nret", "sec\rret", "sec\0ret", "sec'ret$" }) do
      local ok, err = pcall(doc.set, doc, "A", v)
      assert.is_false(ok)
      assert.falsy(tostring(err):find("sec", 1, true), err)
    end
    assert.equal("A=1\n", doc:serialize())
  end)
end)

describe("aap.env.read", function()
  after_each(function() helper.cleanup() end)

  it("reads a missing file as an empty document", function()
    local doc = assert(env.read(helper.tmpdir() .. "/none.env"))
    assert.is_false(doc.exists)
    assert.equal("", doc:serialize())
  end)

  it("refuses a directory (unsafe) and returns a format error for a binary file", function()
    local dir = helper.tmpdir()
    local doc, err = env.read(dir)
    assert.is_nil(doc)
    assert.equal("unsafe", err.code)
    assert.equal(dir, err.path)
    assert.truthy(tostring(err):find("^unsafe: " .. dir:gsub("%p", "%%%0") .. " is a directory"), tostring(err))
    writefile(dir .. "/bin", "A=SECRET\0\n")
    doc, err = env.read(dir .. "/bin")
    assert.is_nil(doc)
    assert.equal("format", err.code)
    assert.falsy(tostring(err):find("SECRET", 1, true))
    assert.has_error(function() env.read(nil) end)
  end)

  it("checks and opens again a file replaced between its check and its open (another writer's rename)", function()
    local dir = helper.tmpdir()
    writefile(dir .. "/.env", "A=1\n")
    local os_ = require("aap").os
    local real, calls = os_.open, 0
    -- the first opens find the file swapped (EAGAIN), as a concurrent atomic write makes them
    os_.open = function(p)
      calls = calls + 1
      if calls <= 2 then return nil, p .. ": changed while being opened", 11 end
      return real(p)
    end
    local ok, doc, err = pcall(env.read, dir .. "/.env")
    os_.open = real
    assert.is_true(ok, doc)
    assert.truthy(doc, err and tostring(err))
    assert.equal("1", doc:get("A"))
    assert.equal(3, calls)
    -- a file that keeps changing is refused, not read
    os_.open = function(p) return nil, p .. ": changed while being opened", 11 end
    ok, doc, err = pcall(env.read, dir .. "/.env")
    os_.open = real
    assert.is_true(ok, doc)
    assert.is_nil(doc)
    assert.equal("unsafe", err.code)
  end)

  it("returns an io error for an unreadable file", function()
    local dir = helper.tmpdir()
    writefile(dir .. "/.env", "A=SECRET\n", 0)
    local prefix = IS_ROOT and "setpriv --bounding-set=-dac_override,-dac_read_search -- " or ""
    local p = io.popen(prefix .. "lua5.4 -e " .. shquote(([[
      package.path = %q .. "/lua/?.lua;" .. package.path
      package.cpath = %q .. ";" .. package.cpath
      local doc, err = require("aap.env").read(%q)
      io.write(tostring(doc), "|", tostring(err))]]):format(helper.ROOT, CPATH, dir .. "/.env")))
    local out = p:read("a")
    p:close()
    assert.equal(("nil|io: cannot read %s/.env: Permission denied"):format(dir), out)
  end)
end)

describe("aap.env.update", function()
  local dir, path
  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/.env"
  end)
  after_each(function() helper.cleanup() end)

  local function listdir()
    local names = {}
    for name in io.popen("ls -A " .. shquote(dir)):lines() do names[#names + 1] = name end
    return names
  end

  it("creates a new file with mode 0600", function()
    assert.is_true(env.update(path, { AAP_TOKEN = "abc123", AAP_URL = "https://gw.example:8443/x" }))
    assert.equal("AAP_TOKEN=abc123\nAAP_URL=https://gw.example:8443/x\n", readfile(path))
    assert.equal("600", helper.mode(path))
    assert_readers_agree(path, { AAP_TOKEN = "abc123", AAP_URL = "https://gw.example:8443/x" })
  end)

  it("updates a file with comments and other keys, touching only its key", function()
    local text = "# service settings\nDB_HOST=db.local\n\nAAP_TOKEN=old # rotated by aap\nOTHER='x y'\n"
    writefile(path, text, tonumber("644", 8))
    assert.is_true(env.update(path, { AAP_TOKEN = "n3wT0ken" }))
    assert.equal("# service settings\nDB_HOST=db.local\n\n# rotated by aap\nAAP_TOKEN=n3wT0ken\nOTHER='x y'\n",
                 readfile(path))
    assert.equal("600", helper.mode(path))
    assert_readers_agree(path, { DB_HOST = "db.local", AAP_TOKEN = "n3wT0ken", OTHER = "x y" })
  end)

  it("collapses duplicate keys onto the first one", function()
    writefile(path, "A=1\nAAP_TOKEN=first\nB=2\nAAP_TOKEN=second\n  AAP_TOKEN = third\n")
    assert.is_true(env.update(path, { AAP_TOKEN = "T" }))
    assert.equal("A=1\nAAP_TOKEN=T\nB=2\n", readfile(path))
    assert_readers_agree(path, { A = "1", AAP_TOKEN = "T", B = "2" })
  end)

  it("keeps the export prefixes of other keys, refuses one on a key it writes", function()
    writefile(path, "AAP_TOKEN=old\nexport KEEP=1\n")
    assert.is_true(env.update(path, { AAP_TOKEN = "has space" }))
    assert.equal("AAP_TOKEN='has space'\nexport KEEP=1\n", readfile(path))
    assert_readers_agree(path, { AAP_TOKEN = "has space", KEEP = "1" })
    local ok, err = env.update(path, { KEEP = "2" })
    assert.is_nil(ok)
    assert.equal("format", err.code)
    assert.equal("AAP_TOKEN='has space'\nexport KEEP=1\n", readfile(path))
  end)

  it("keeps CRLF line endings and uses them for new lines", function()
    writefile(path, "# crlf\r\nA=1\r\nAAP_TOKEN=old\r\n")
    assert.is_true(env.update(path, { AAP_TOKEN = "new", NEW = "n" }))
    assert.equal("# crlf\r\nA=1\r\nAAP_TOKEN=new\r\nNEW=n\r\n", readfile(path))
    -- bash keeps the CR of a CRLF line in the value; dotenv drops it.
    assert_readers_agree(path, { A = "1", AAP_TOKEN = "new", NEW = "n" }, { crlf = true })
  end)

  it("adds the missing final newline before appending", function()
    writefile(path, "A=1\nB=2")
    assert.is_true(env.update(path, { C = "3" }))
    assert.equal("A=1\nB=2\nC=3\n", readfile(path))
    assert_readers_agree(path, { A = "1", B = "2", C = "3" })
  end)

  it("writes values that need quotes so that every reader agrees", function()
    local values = {
      SPACE = "two words", DOLLAR = "$HOME/$USER ${open", NOTEXPANDED = "${a:b}", BACKTICK = "`id`", HASH = "#nope",
      QUOTE = "it's", DQUOTE = 'say "hi"', BACKSLASH = "a\\b", DBACKSLASH = "a\\\\b",
      MIDBS = "a\\ b\\\"c", TAB = "a\tb", UTF8 = "größe", GLOB = "*?[a]", SEMI = "a;b&c|d",
      TILDE = "~root", LEADING = "  padded  ", BANG = "wow!", BRACES = "{a,b}", PAREN = "(x)",
      LT = "<in >out", EQ = "==",
    }
    assert.is_true(env.update(path, values))
    assert_readers_agree(path, values)
    local doc = assert(env.read(path))
    for k, v in pairs(values) do assert.equal(v, doc:get(k), k) end
  end)

  it("gives kubectl the exact value of every kubectl-safe value", function()
    if not HAVE_KUBECTL then return pending("kubectl not installed") end
    local values = { TOK = "Abc123xyz", B64 = "a+b/c==", URL = "https://h:1/p?q", ODD = "a b" }
    assert.is_true(env.update(path, values))
    local kv = kubectl_values(path)
    for k, v in pairs(values) do
      if env.kubectl_safe(v) then
        assert.equal(v, kv[k], k)
      else
        assert.are_not.equal(v, kv[k], k)
      end
    end
  end)

  it("removes keys and appends listed pairs in the given order", function()
    writefile(path, "OLD=1\nKEEP=2\nOLD=3\n")
    assert.is_true(env.update(path, { { "Z", "26" }, { "A", "1" } }, { remove = { "OLD", "ABSENT" } }))
    assert.equal("KEEP=2\nZ=26\nA=1\n", readfile(path))
  end)

  it("keeps a stricter existing mode", function()
    writefile(path, "A=1\n", tonumber("400", 8))
    assert.is_true(env.update(path, { A = "2" }))
    assert.equal("400", helper.mode(path))
    assert.equal("A=2\n", readfile(path))
  end)

  it("fails in a read-only directory, leaving the file byte-for-byte and no temporary file", function()
    local text = "# keep me\r\nA=1\nB='x'"
    writefile(path, text, tonumber("640", 8))
    assert(os.execute("chmod 555 " .. shquote(dir)))
    local prefix = IS_ROOT and "setpriv --bounding-set=-dac_override,-dac_read_search,-fowner -- " or ""
    local p = io.popen(prefix .. "lua5.4 -e " .. shquote(([[
      package.path = %q .. "/lua/?.lua;" .. package.path
      package.cpath = %q .. ";" .. package.cpath
      local ok, err = require("aap.env").update(%q, {A = "SECRET-VALUE"})
      io.write(tostring(ok), "|", err.code, "|", tostring(err))]]):format(helper.ROOT,
        CPATH, path)))
    local out = p:read("a")
    p:close()
    assert(os.execute("chmod 755 " .. shquote(dir)))
    local ok, code, msg = out:match("^(.-)|(.-)|(.*)$")
    assert.equal("nil", ok)
    assert.equal("io", code)
    assert.truthy(msg:find(path, 1, true), msg)
    assert.falsy(msg:find("SECRET", 1, true))
    assert.equal(text, readfile(path))
    assert.equal("640", helper.mode(path))
    assert.same({ ".env" }, listdir())
  end)

  it("fails on a directory path without writing", function()
    local ok, err = env.update(dir, { A = "1" })
    assert.is_nil(ok)
    assert.equal("unsafe", err.code)
    assert.same({}, listdir())
  end)

  it("raises on bad arguments before touching the file", function()
    writefile(path, "A=1\n")
    assert.has_error(function() env.update(nil, {}) end)
    assert.has_error(function() env.update(path, "A=1") end)
    assert.has_error(function() env.update(path, { ["bad key"] = "1" }) end)
    assert.has_error(function() env.update(path, { A = "x\ny" }) end)
    assert.has_error(function() env.update(path, { A = 1 }) end)
    assert.has_error(function() env.update(path, { { "A" } }) end)
    assert.has_error(function() env.update(path, {}, { remove = { "bad-key" } }) end)
    assert.has_error(function() env.update(path, {}, { bogus = true }) end)
    assert.has_error(function() env.update(path, {}, { mode = "0600" }) end)
    assert.equal("A=1\n", readfile(path))
    assert.same({ ".env" }, listdir())
  end)

  describe("refuses files aap may not trust", function()
    local function refused(p, pattern)
      local ok, err = env.update(p, { AAP_TOKEN = "SECRET-1" })
      assert.is_nil(ok)
      assert.equal("unsafe", err.code)
      assert.truthy(err.message:find(pattern), err.message)
      assert.falsy(err.message:find("SECRET", 1, true))
      local doc, rerr = env.read(p)
      assert.is_nil(doc)
      assert.equal("unsafe", rerr.code)
    end

    it("refuses a symlink: the file it points to is neither rewritten nor chmod'ed", function()
      local target = dir .. "/bashrc"
      writefile(target, "echo hi\n", tonumber("644", 8))
      assert(os.execute(("ln -s bashrc %s"):format(shquote(path))))
      refused(path, "is a symbolic link")
      assert.equal("echo hi\n", readfile(target))
      assert.equal("644", helper.mode(target))
    end)

    it("refuses a FIFO without blocking, and a device node without replacing it", function()
      assert(os.execute("mkfifo " .. shquote(path)))
      -- a reader that opens the FIFO blocks until a writer comes: `timeout` turns a hang into a failure
      local p = io.popen("timeout 20 lua5.4 -e " .. shquote(([[
        package.path = %q .. "/lua/?.lua;" .. package.path
        package.cpath = %q .. ";" .. package.cpath
        local doc, err = require("aap.env").read(%q)
        io.write(tostring(doc), "|", tostring(err))]]):format(helper.ROOT, CPATH, path)))
      local out = p:read("a")
      p:close()
      assert.equal(("nil|unsafe: %s is a FIFO, not a regular env file"):format(path), out)
      if IS_ROOT then
        local node = dir .. "/null"
        assert(os.execute("mknod " .. shquote(node) .. " c 1 3"))
        refused(node, "is a character device")
        assert.equal("char", require("aap").os.stat(node).type)
      end
    end)

    it("refuses a file of another user, and one writable by group or others, saying how to fix it", function()
      writefile(path, "A=1\n", tonumber("600", 8))
      if IS_ROOT then
        assert(os.execute("chown 65534 " .. shquote(path)))
        refused(path, "belongs to uid 65534, not to you")
        assert(os.execute("chown 0 " .. shquote(path)))
      end
      for _, m in ipairs({ "666", "620", "602" }) do
        assert(os.execute(("chmod %s %s"):format(m, shquote(path))))
        refused(path, "is writable by group or others %(mode 0" .. m .. "%): run `chmod 600 ")
        assert.equal("A=1\n", readfile(path))
      end
    end)

    it("narrows a file of the user's that others may only read to 0600", function()
      writefile(path, "A=1\n", tonumber("644", 8))
      assert.is_true(env.update(path, { AAP_TOKEN = "t" }))
      assert.equal("600", helper.mode(path))
    end)

    it("refuses a directory anyone may write to, unless it is sticky", function()
      local open = dir .. "/open"
      assert(os.execute(("mkdir %s && chmod 777 %s"):format(shquote(open), shquote(open))))
      refused(open .. "/.env", "which anyone may write to %(mode 0777, not sticky%)")
      assert.is_nil(readfile(open .. "/.env"))
      assert(os.execute("chmod 1777 " .. shquote(open)))
      assert.is_true(env.update(open .. "/.env", { AAP_TOKEN = "t" }))
      assert.equal("600", helper.mode(open .. "/.env"))
    end)
  end)
end)

describe("aap.env fuzz", function()
  after_each(function() helper.cleanup() end)

  -- A small deterministic PRNG (xorshift32), independent of math.random's algorithm.
  local function prng(seed)
    local s = seed
    return function(n)
      s = s ~ ((s << 13) & 0xffffffff)
      s = s ~ (s >> 17)
      s = s ~ ((s << 5) & 0xffffffff)
      return s % n + 1
    end
  end

  local ALPHABET = {}
  for c in ("abcXYZ019_-./:@%+,=~ \t'\"\\$`#!*?[]{}();&|<>^"):gmatch(".") do ALPHABET[#ALPHABET + 1] = c end
  for _, u in ipairs({ "é", "ß", "→", "😀" }) do ALPHABET[#ALPHABET + 1] = u end

  local function random_value(rand)
    local out = {}
    for i = 1, rand(12) - 1 do out[i] = ALPHABET[rand(#ALPHABET)] end
    return table.concat(out)
  end

  local function random_key(rand)
    local first = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
    local rest = first .. "0123456789"
    -- The FZ prefix keeps clear of bash's own variables (_, IFS, PPID, UID, ...).
    local i = rand(#first)
    local k = { "FZ", first:sub(i, i) }
    for j = 3, rand(6) + 1 do
      local r = rand(#rest)
      k[j] = rest:sub(r, r)
    end
    return table.concat(k)
  end

  it("set / serialize / parse round-trips random keys and values, and bash and dotenv agree", function()
    local rand = prng(20261129)
    local expected, count, refused = {}, 0, 0
    local doc = env.parse("# fuzz\n")
    for _ = 1, 2000 do
      local k, v = random_key(rand), random_value(rand)
      if env.quote(v) then
        doc:set(k, v)
        expected[k] = v
        count = count + 1
      else
        refused = refused + 1
        assert.has_error(function() doc:set(k, v) end)
      end
      if rand(10) == 1 then
        local victim = random_key(rand)
        doc:unset(victim)
        expected[victim] = nil
      end
    end
    assert.is_true(count > 1000 and refused > 0)
    local text = doc:serialize()
    local again = env.parse(text)
    assert.equal(text, again:serialize())
    local n = 0
    for k, v in pairs(expected) do
      assert.equal(v, again:get(k), k)
      n = n + 1
    end
    assert.equal(n, #again:keys())
    assert.same({}, again:problems())
    -- The same file through the real readers.
    local path = helper.tmpdir() .. "/fuzz.env"
    writefile(path, text)
    assert_readers_agree(path, expected)
  end)

  it("keeps random text byte-for-byte, and set only appends a new key to it", function()
    local rand = prng(7)
    local pieces = { "A=1", "export B='x'", "# c", "", "  ", 'Q="open', "close\"", "\r", "x y z",
                     "C=\"a\\\"b\"", "=", "D='", "E=\\", "F=a # b", "export", "G=`x`" }
    for _ = 1, 300 do
      local parts = {}
      for i = 1, rand(8) do
        parts[i] = pieces[rand(#pieces)] .. (rand(3) == 1 and "\r\n" or "\n")
      end
      if rand(2) == 1 then parts[#parts] = parts[#parts]:gsub("\r?\n$", "") end
      local text = table.concat(parts)
      local doc = env.parse(text)
      assert.equal(text, doc:serialize())
      doc:set("NEW_KEY", "v a l")
      local out = doc:serialize()
      -- Exactly one new line, and without it the text is the old one (plus a final newline).
      local s, e = out:find("NEW_KEY='v a l'\r?\n")
      assert.truthy(s)
      assert.falsy(out:find("NEW_KEY", e, true))
      local rest = out:sub(1, s - 1) .. out:sub(e + 1)
      assert.is_true(rest == text or rest == text .. "\n" or rest == text .. "\r\n")
      assert.equal("v a l", env.parse(out):get("NEW_KEY"))
    end
  end)
end)
