-- aap.state: the state file beside an env file is trusted only when it is the user's own
-- regular file, and acted on only when every value in it is one aap writes.
local helper = require("helper")
local state = require("aap.state")
local workflow = require("aap.workflow")
local cjson = require("cjson")

local shquote = helper.shquote
local IS_ROOT = io.popen("id -u"):read("l") == "0"

describe("aap.state", function()
  local dir, env_path, spath
  before_each(function()
    dir = helper.tmpdir()
    env_path = dir .. "/.env"
    spath = env_path .. ".aap-state.json"
  end)
  after_each(function() helper.cleanup() end)

  local M16 = "0123456789abcdef"

  -- A state as aap writes it: a key, a create intent, a rotation intent, a pending revocation.
  local function valid()
    return {
      version = 1,
      keys = { AAP_PAT = { id = 7, fp = M16, kind = "personal", user = 1, scope = "write", created = 1.7e9,
                           expires = 1.8e9 },
               AAP_TOKEN = { id = 9, kind = "application", application = 2, refresh_key = "REFRESH_TOKEN" } },
      rotations = { AAP_PAT = { strategy = "recreate", origin = "create", marker = "aap-create:" .. M16,
                                kind = "personal", started = 1700000000, old_fp = M16 },
                    AAP_TOKEN = { strategy = "recreate", marker = "aap-rotate:" .. M16, started = 1, old_id = 9,
                                  new_id = 10, new_fp = M16, kind = "application", grace = 0,
                                  wait_for_use = true, old_created = "2025-01-02T03:04:05Z", old_user = 1,
                                  old_application = 2 },
                    OTHER = { strategy = "refresh", started = 1, old_id = 3, application = 2, user = 1 } },
      pending = { { id = 5, key = "AAP_PAT", kind = "personal", rotated_at = 1, new_id = 7, not_before = 1,
                    hooks_done = false, wait_for_use = { id = 7, after = 2 }, max_wait_until = 3,
                    created = "2025-01-02T03:04:05Z", user = 1 } },
    }
  end

  local function load(st)
    helper.writefile(spath, type(st) == "string" and st or cjson.encode(st), 384)
    return state.load(env_path)
  end

  it("loads what aap writes, with integer ids, and keeps fields it does not know", function()
    local st = valid()
    st.keys.AAP_PAT.future = "kept"
    local got = assert(load(st))
    assert.equal("integer", math.type(got.keys.AAP_PAT.id))
    assert.equal("integer", math.type(got.pending[1].wait_for_use.id))
    assert.equal("kept", got.keys.AAP_PAT.future)
    assert.same({}, assert(load('{"version":1,"keys":{},"pending":{},"rotations":{}}')).pending)
    assert.is_true(state.save(env_path, got))
    assert.same(got, assert(state.load(env_path)))
  end)

  it("refuses every value aap would act on that is not what it writes", function()
    local cases = {
      { "an empty marker", function(st) st.rotations.AAP_PAT.marker = "" end, "rotations.AAP_PAT.marker" },
      { "a short marker", function(st) st.rotations.AAP_PAT.marker = "aap-create:0123" end, "marker" },
      { "a marker in capitals", function(st) st.rotations.AAP_PAT.marker = "aap-create:0123456789ABCDEF" end,
        "marker" },
      { "a rotate marker on a create", function(st) st.rotations.AAP_PAT.marker = "aap-rotate:" .. M16 end,
        "marker is not aap%-create:" },
      { "a marker with a tail", function(st) st.rotations.AAP_TOKEN.marker = "aap-rotate:" .. M16 .. " x" end,
        "rotations.AAP_TOKEN.marker" },
      { "a refresh with a marker", function(st) st.rotations.OTHER.marker = "aap-rotate:" .. M16 end,
        "rotations.OTHER" },
      { "an unknown strategy", function(st) st.rotations.OTHER.strategy = "delete" end, "rotations.OTHER" },
      { "an unknown origin", function(st) st.rotations.AAP_PAT.origin = "other" end, "origin" },
      { "no start time", function(st) st.rotations.OTHER.started = nil end, "started" },
      { "id 0", function(st) st.keys.AAP_PAT.id = 0 end, "keys.AAP_PAT.id" },
      { "a negative id", function(st) st.keys.AAP_PAT.id = -3 end, "keys.AAP_PAT.id" },
      { "a fractional id", function(st) st.rotations.AAP_TOKEN.new_id = 10.5 end, "new_id" },
      { "an id as text", function(st) st.rotations.AAP_TOKEN.old_id = "9" end, "old_id" },
      { "a short fingerprint", function(st) st.keys.AAP_PAT.fp = "0123" end, "keys.AAP_PAT.fp" },
      { "a fingerprint in capitals", function(st) st.rotations.AAP_TOKEN.new_fp = "0123456789ABCDEF" end, "new_fp" },
      { "a bad key name", function(st) st.keys["A B"] = { id = 1 } end, "keys.A B" },
      { "a bad refresh key", function(st) st.keys.AAP_TOKEN.refresh_key = "$(id)" end, "refresh_key" },
      { "a pending entry without an id", function(st) st.pending[1].id = nil end, "pending%[1%]" },
      { "a pending entry without a key", function(st) st.pending[1].key = nil end, "pending%[1%]" },
      { "a pending id as text", function(st) st.pending[1].id = "5" end, "pending%[1%]" },
      { "a pending wait without an id", function(st) st.pending[1].wait_for_use = { after = 1 } end,
        "wait_for_use" },
      { "a pending created time that is not ISO", function(st) st.pending[1].created = "yesterday" end,
        "pending%[1%]%.created" },
      { "a pending flag that is not a boolean", function(st) st.pending[1].hooks_done = "yes" end, "hooks_done" },
      { "pending as an object", function(st) st.pending = { a = { id = 1, key = "A" } } end, "pending is not a list" },
      { "keys as a list of text", function(st) st.keys = "x" end, "keys" },
    }
    for _, c in ipairs(cases) do
      local st = valid()
      c[2](st)
      local got, err = load(st)
      assert.is_nil(got, c[1])
      assert.equal("usage", err.code, c[1])
      assert.truthy(err.message:find(c[3]), c[1] .. ": " .. err.message)
      assert.truthy(err.message:find("is not a valid aap state file", 1, true), err.message)
      assert.is_nil(err.message:find("\n"), c[1])
    end
  end)

  it("trusts only the user's own regular state file, not writable by others", function()
    helper.writefile(spath, cjson.encode(valid()), 384)
    assert(os.execute("chmod 620 " .. shquote(spath)))
    local st, err = state.load(env_path)
    assert.is_nil(st)
    assert.equal("unsafe", err.code)
    assert.matches("writable by group or others", err.message)
    assert(os.execute("chmod 644 " .. shquote(spath)))
    assert.is_table((state.load(env_path)))
    if IS_ROOT then
      assert(os.execute("chown 65534 " .. shquote(spath)))
      st, err = state.load(env_path)
      assert.is_nil(st)
      assert.matches("belongs to uid 65534, not to you", err.message)
    end
    os.remove(spath)
    assert(os.execute(("ln -s %s %s"):format(shquote(dir .. "/elsewhere.json"), shquote(spath))))
    st, err = state.load(env_path)
    assert.is_nil(st)
    assert.matches("is a symbolic link", err.message)
    os.remove(spath)
    assert(os.execute("mkfifo " .. shquote(spath)))
    st, err = state.load(env_path)
    assert.is_nil(st)
    assert.matches("is a FIFO", err.message)
  end)

  it("takes the lock only on the user's own regular lock file", function()
    local lpath = state.lock_path(env_path)
    local lk = assert(state.lock(env_path))
    lk:unlock()
    assert(os.execute("chmod 666 " .. shquote(lpath)))
    local none, err = state.lock(env_path)
    assert.is_nil(none)
    assert.equal("unsafe", err.code)
    assert.matches("aap%-lock is writable by group or others", err.message)
    assert.is_nil((state.check(env_path)))
  end)

  it("sweep_marker refuses a marker aap never makes, before any request", function()
    local asked = false
    local fake = setmetatable({}, { __index = function() asked = true end })
    for _, m in ipairs({ "", "aap-create:", "aap-create:0123", "aap-create:0123456789abcdeg", "x" .. M16 }) do
      local ids, err = workflow.sweep_marker(fake, m)
      assert.is_nil(ids, m)
      assert.matches("refusing to delete tokens by the marker", err.message)
    end
    assert.is_false(asked)
  end)
end)
