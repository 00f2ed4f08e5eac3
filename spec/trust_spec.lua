-- aap.trust: the files aap keeps a token or a record of one in. What every reader of such a
-- file gets (the .env file, the state file, the lock file); the refusals as the .env module
-- meets them are in env_spec ("refuses files aap may not trust").
local helper = require("helper")
local trust = require("aap.trust")

describe("aap.trust", function()
  local dir
  before_each(function() dir = helper.tmpdir() end)
  after_each(helper.cleanup)

  it("trusts the user's own private file, and a missing one in a safe directory", function()
    local path = dir .. "/f"
    helper.writefile(path, "x", 384)
    local st = assert(trust.check_file(path))
    assert.equal("file", st.type)
    assert.equal(384, st.mode & 511)
    assert.is_false(trust.check_file(dir .. "/missing"))
    assert.equal("x", trust.read_trusted(path, "state file"))
    assert.is_false(trust.read_trusted(dir .. "/missing", "state file"))
    -- readable by others is still trusted (aap narrows it to 0600 when it rewrites it)
    os.execute("chmod 644 " .. helper.shquote(path))
    assert.is_truthy(trust.check_file(path))
  end)

  it("names the file's role in a refusal, and says how to fix it", function()
    local path = dir .. "/lock"
    helper.writefile(path, "", 384)
    os.execute("chmod 660 " .. helper.shquote(path))
    local ok, e = trust.check_file(path, "lock file")
    assert.is_nil(ok)
    assert.equal("unsafe", e.code)
    assert.equal(path, e.path)
    assert.equal(path .. " is writable by group or others (mode 0660): run `chmod 600 " .. path .. "`", e.message)
    os.execute("rm " .. helper.shquote(path) .. " && mkdir " .. helper.shquote(path))
    ok, e = trust.read_trusted(path, "lock file")
    assert.is_nil(ok)
    assert.equal(path .. " is a directory, not a regular lock file", e.message)
  end)

  it("reads nothing through a symbolic link, even to a file of the user's own", function()
    helper.writefile(dir .. "/real", "secret", 384)
    os.execute(("ln -s real %s"):format(helper.shquote(dir .. "/link")))
    local text, e = trust.read_trusted(dir .. "/link", "env file")
    assert.is_nil(text)
    assert.equal("unsafe", e.code)
    assert.matches("is a symbolic link: aap does not follow links", e.message)
    assert.is_nil(e.message:find("secret", 1, true))
  end)

  it("keeps the private mode aap writes secrets with, and refuses a path that is not a string", function()
    assert.equal(tonumber("600", 8), trust.MODE_PRIVATE)
    assert.equal(trust.MODE_PRIVATE, require("aap.env").MODE_PRIVATE)
    assert.has_error(function() trust.check_file(7) end, "bad path (string expected, got number)")
  end)
end)
