-- Every value aap writes to an env file is read identically by each reader the README names:
-- bash (`set -a; . file`), python-dotenv (`dotenv_values`), docker compose (`env_file:`),
-- `kubectl create secret generic --from-env-file` and systemd's `EnvironmentFile=`. Each reader
-- that runs here reads the file aap wrote (workflow.save, the writer of `token create`,
-- `token refresh` and `app create`) and must find every value exactly; what would break one of
-- them on a line aap owns is moved (an inline comment) or refused (an `export ` prefix).
--
-- Where a reader cannot run here, the spec says so (busted `pending`, never a silent pass) and
-- the property that guarantees agreement is tested instead: every line aap owns is exactly
-- `KEY=value`, its value bare and made only of characters the reader's rules take literally.
local helper = require("helper")
local env = require("aap.env")
local workflow = require("aap.workflow")
local cjson = require("cjson.safe").new()

local shquote, readfile, writefile = helper.shquote, helper.readfile, helper.writefile

local function sh_ok(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end

-- kubectl comes from an apt source a fresh CI machine does not have: skipped there, visibly.
local HAVE_KUBECTL = sh_ok("kubectl version --client")
-- systemd's own parser, run offline: the user environment generator reads environment.d files
-- with the code that reads EnvironmentFile= (src/basic/env-file.c, parse_env_file_internal),
-- then prints KEY=VALUE. The one difference, noted where it matters: the generator also expands
-- $VAR, which EnvironmentFile= does not; no value aap writes holds a `$`.
local SD_GENERATOR
for _, p in ipairs({ "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator",
                     "/lib/systemd/user-environment-generators/30-systemd-environment-d-generator" }) do
  if sh_ok("test -x " .. shquote(p)) then SD_GENERATOR = p break end
end

local function popen_read(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

local READERS = {}

READERS.bash = function(path, keys) return helper.source_env(path, keys) end

READERS.dotenv = helper.PYTHON_DOTENV and function(path)
  local out = popen_read(helper.PYTHON_DOTENV .. " -c " .. shquote([[
import json, sys
from dotenv import dotenv_values
sys.stdout.write(json.dumps(dotenv_values(sys.argv[1])))]]) .. " " .. shquote(path))
  return assert(cjson.decode(out), "python-dotenv output")
end

READERS.kubectl = HAVE_KUBECTL and function(path)
  local out = popen_read("kubectl create secret generic probe --dry-run=client -o json --from-env-file="
    .. shquote(path) .. " 2>&1")
  local secret = cjson.decode(out)
  assert(secret, "kubectl refused the file: " .. out)
  local mime = require("mime")
  local vals = {}
  for k, v in pairs(secret.data or {}) do vals[k] = (mime.unb64(v)) or "" end
  return vals
end

READERS.systemd = SD_GENERATOR and function(path)
  local dir = helper.tmpdir()
  assert(os.execute("mkdir -p " .. shquote(dir .. "/environment.d")))
  writefile(dir .. "/environment.d/99-aap.conf", readfile(path))
  local out = popen_read(("env -i XDG_CONFIG_HOME=%s HOME=/nonexistent %s 2>/dev/null"):format(shquote(dir),
    shquote(SD_GENERATOR)))
  local vals = {}
  for line in out:gmatch("[^\n]+") do
    local k, v = line:match("^([^=]+)=(.*)$")
    assert(k, "systemd: " .. line)
    -- It prints a value with blanks or quotes in double quotes, escaping \ " $ `.
    local q = v:match('^"(.*)"$')
    vals[k] = q and q:gsub('\\(.)', '%1') or v
  end
  return vals
end

-- A file as an operator may have it before aap writes: an inline comment on a line aap owns,
-- indentation and blanks around `=`, a quoted value, a duplicate; other lines every reader
-- takes (docker compose and kubectl reject a file with any line they cannot read: aap's lines
-- must not be the ones).
local BEFORE = table.concat({
  "# service settings",
  "DB_HOST=db.local",
  "",
  "AAP_PAT=old   # managed by aap",
  "  AAP_TOKEN = spaced-old",
  "REFRESH_TOKEN='quoted old' # from the install script",
  "AAP_PAT=duplicate",
  "",
}, "\n")

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:@%+,=~-"

-- Random values from the whole portable alphabet (seeded: a failure is reproducible), each
-- portable; edge cases first.
local function sample_values(n)
  local vals = { "=leading-equals", "trailing=", "-dash", "a~b", "a=~b", "x/~y", "100%", "a,b+c@d:e" }
  math.randomseed(1313)
  while #vals < n do
    local t = {}
    for i = 1, math.random(1, 48) do
      local c = math.random(1, #ALPHABET)
      t[i] = ALPHABET:sub(c, c)
    end
    local v = table.concat(t)
    if env.portable(v) then vals[#vals + 1] = v end
  end
  return vals
end

-- Writes `values` ({{key, value}, ...}) over BEFORE the way aap's commands do.
local function aap_writes(path, values)
  writefile(path, BEFORE, 384)
  assert(workflow.save(path, values))
end

-- The pairs of one round: aap's keys with realistic values, plus many random portable values.
local function round_values()
  local values = {
    { "AAP_PAT", "u8gXq1Y2wM0aZkLr3TtB7cVn9PdQe4" },
    { "AAP_TOKEN", "Tok3n/+==" },
    { "REFRESH_TOKEN", "r3fR3sh-._~x" },
    { "AAP_CLIENT_ID", "kX9fQ2ZpL0aYtW3mN7rB5cVd8eS1gH4jU6iO2qRz" },
    { "AAP_CLIENT_SECRET", string.rep("aB3", 40) .. "zzzzzzzz" },
    { "MY_KEY_2", "https://h.example:8443/p" },
  }
  for i, v in ipairs(sample_values(200)) do values[#values + 1] = { ("FZ_%03d"):format(i), v } end
  return values
end

describe("env file readers agree on what aap writes", function()
  local dir, path, values, keys
  setup(function()
    dir = helper.tmpdir()
    path = dir .. "/.env"
    values = round_values()
    keys = { "DB_HOST" }
    for _, kv in ipairs(values) do keys[#keys + 1] = kv[1] end
    aap_writes(path, values)
  end)
  teardown(function() helper.cleanup() end)

  local function check(reader)
    local got = READERS[reader](path, keys)
    assert.equal("db.local", got.DB_HOST, reader .. " reads DB_HOST")
    for _, kv in ipairs(values) do assert.equal(kv[2], got[kv[1]], reader .. " reads " .. kv[1]) end
  end

  it("bash (set -a; . file)", function() check("bash") end)

  it("python-dotenv (dotenv_values)", function()
    if not READERS.dotenv then return pending("python-dotenv is not installed (scripts/deps.sh installs it)") end
    check("dotenv")
  end)

  it("kubectl create secret generic --from-env-file", function()
    -- kubectl's rules (k8s.io/kubectl/pkg/cmd/util/env_file.go): a line is `KEY=value`, leading
    -- blanks dropped, lines starting with `#` and blank lines skipped; the value is everything
    -- after the first `=`, kept as it is: no quote removal, no comment, no escape, trailing
    -- blanks kept; a key that is not a C identifier (`export AAP_PAT`) fails the whole file.
    if not READERS.kubectl then
      return pending("kubectl is not installed (no Debian package; a fresh CI machine lacks it): skipped")
    end
    check("kubectl")
  end)

  it("systemd EnvironmentFile= (its parser, through the environment.d generator)", function()
    if not READERS.systemd then
      return pending("systemd's environment-d generator is not installed (scripts/deps.sh installs systemd)")
    end
    check("systemd")
  end)

  it("every line aap owns is exactly KEY=value with a bare value every reader takes literally", function()
    -- This is what makes docker compose agree, which cannot run here (its env_file parser is
    -- compose-go's dotenv; Docker's documentation, "Set environment variables" / env_file
    -- syntax): `VAR=VAL` lines, `#` lines and blank lines ignored; an unquoted value ends at
    -- a `#` that follows a blank (an inline comment) and has its trailing blanks removed;
    -- `$VAR` and `${VAR}` are interpolated in unquoted and double-quoted values; single quotes
    -- are literal; `export ` is accepted. A value of `[A-Za-z0-9_./:@%+,=~-]` with no blank,
    -- `#`, `$`, quote or backslash is therefore read literally, unquoted - as by systemd's
    -- rules (systemd.exec(5), EnvironmentFile=: leading and trailing blanks dropped, a
    -- backslash escapes the next character, quotes are removed, `#` and `;` start a comment
    -- only at the start of a line, no $ expansion) and kubectl's (above), bash's (no blank,
    -- quote, `$`, backslash, glob, or tilde prefix: a `~` first or after `:` is not written)
    -- and python-dotenv's (an unquoted value up to a blank-`#`, ${VAR} expanded).
    local text = readfile(path)
    local owned = {}
    for _, kv in ipairs(values) do owned[kv[1]] = kv[2] end
    local seen = {}
    for line in text:gmatch("[^\n]*") do
      local k = line:match("^[ \t]*export[ \t]+([%w_]+)") or line:match("^[ \t]*([%w_]+)[ \t]*=")
      if k and owned[k] then
        assert.is_nil(seen[k], "one line for " .. k)
        seen[k] = true
        assert.equal(k .. "=" .. owned[k], line)
        assert.truthy(owned[k]:find("^[%w_./:@%%+,=~-]*$"), k)
        assert.falsy(owned[k]:find("^~") or owned[k]:find(":~", 1, true), k)
      end
    end
    for k in pairs(owned) do assert.is_true(seen[k], k) end
  end)

  it("moves the inline comment of a line aap owns to a line of its own above", function()
    local want = "# service settings\nDB_HOST=db.local\n\n# managed by aap\nAAP_PAT=u8gXq1Y2wM0aZkLr3TtB7cVn9PdQe4\n"
      .. "AAP_TOKEN=Tok3n/+==\n# from the install script\nREFRESH_TOKEN=r3fR3sh-._~x\nAAP_CLIENT_ID="
    assert.equal(want, readfile(path):sub(1, #want))
  end)
end)

describe("what would break a reader is refused, never written", function()
  local dir, path
  before_each(function()
    dir = helper.tmpdir()
    path = dir .. "/.env"
  end)
  after_each(function() helper.cleanup() end)

  it("the values portable() refuses are ones a reader would change if written bare", function()
    -- bash: a tilde prefix in an assignment (first, or after `:`) is expanded.
    writefile(path, "A=~root\nB=x:~root\nC=a~b\n", 384)
    local got = helper.source_env(path, { "A", "B", "C" })
    assert.are_not.equal("~root", got.A)
    assert.are_not.equal("x:~root", got.B)
    assert.equal("a~b", got.C)
    assert.is_false(env.portable("~root"))
    assert.is_false(env.portable("x:~root"))
    assert.is_true(env.portable("a~b"))
    -- kubectl keeps quotes: a value that needs them is not portable.
    for _, v in ipairs({ "a b", "$HOME", "a#b", "it's", 'say "x"', "a\\b", "é", "" .. "\t" }) do
      assert.is_false(env.portable(v), v)
    end
  end)

  it("workflow.save refuses a value that is not portable, naming the key, never the value", function()
    writefile(path, BEFORE, 384)
    local ok, err = workflow.save(path, { { "AAP_TOKEN", "secret with space" } })
    assert.is_nil(ok)
    assert.equal("format", err.code)
    assert.matches("AAP_TOKEN", err.message)
    assert.falsy(err.message:find("secret", 1, true))
    assert.equal(BEFORE, readfile(path))
  end)

  it("an export prefix on a line aap owns is refused, naming the line and what to do; the file is kept", function()
    local text = "# x\nexport AAP_PAT=old\nexport OTHER=1\n"
    writefile(path, text, 384)
    local ok, err = workflow.save(path, { { "AAP_PAT", "new" } })
    assert.is_nil(ok)
    assert.equal("format", err.code)
    assert.matches(path .. " line 2: `export AAP_PAT=...`", err.message, 1, true)
    assert.matches("delete `export `", err.message, 1, true)
    assert.is_nil(err.message:find("\n"))
    assert.equal(text, readfile(path))
    ok, err = env.update(path, { AAP_PAT = "new" })
    assert.is_nil(ok)
    assert.equal("format", err.code)
    assert.equal(text, readfile(path))
    -- read_env refuses it up front, before a command does anything on the gateway
    ok, err = workflow.read_env(path, { "AAP_PAT" })
    assert.is_nil(ok)
    assert.matches("line 2", err.message)
    -- a key aap does not write may keep its export
    assert.truthy(workflow.read_env(path, { "AAP_TOKEN" }))
    assert.truthy(workflow.save(path, { { "AAP_TOKEN", "t" } }))
    assert.equal(text .. "AAP_TOKEN=t\n", readfile(path))
  end)

  it("kubectl and systemd do not read an export line; bash and python-dotenv do", function()
    -- Why aap refuses rather than keeps the prefix (the behaviour before, when kubectl failed).
    writefile(path, "export AAP_PAT=tok\n", 384)
    assert.equal("tok", helper.source_env(path, { "AAP_PAT" }).AAP_PAT)
    if READERS.dotenv then assert.equal("tok", READERS.dotenv(path).AAP_PAT) end
    if READERS.systemd then assert.is_nil(READERS.systemd(path).AAP_PAT) end
    if not HAVE_KUBECTL then return pending("kubectl is not installed: its half of this check is skipped") end
    local out = popen_read("kubectl create secret generic probe --dry-run=client -o json --from-env-file="
      .. shquote(path) .. " 2>&1")
    assert.matches('"export AAP_PAT" is not a valid key name', out, 1, true)
  end)

  it("an inline comment kubectl and systemd would read as part of the value", function()
    -- Why aap moves it: before, `AAP_PAT=<token>   # managed by aap` was kept.
    writefile(path, "AAP_PAT=tok   # managed by aap\n", 384)
    assert.equal("tok", helper.source_env(path, { "AAP_PAT" }).AAP_PAT)
    if READERS.systemd then assert.equal("tok   # managed by aap", READERS.systemd(path).AAP_PAT) end
    if HAVE_KUBECTL then assert.equal("tok   # managed by aap", READERS.kubectl(path).AAP_PAT) end
    assert.truthy(workflow.save(path, { { "AAP_PAT", "new" } }))
    assert.equal("# managed by aap\nAAP_PAT=new\n", readfile(path))
  end)
end)
