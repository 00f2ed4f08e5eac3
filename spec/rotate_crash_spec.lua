-- Kill `aap token rotate` at every step (AAP_FAULT_EXIT_AT) and run it again: the env file
-- always ends with exactly one working token, and the gateway keeps no token that is not
-- in the file (except the new token of a refresh whose answer died with the process, which
-- nothing proves to be ours: it is named, never deleted).
local helper = require("helper")
local rotate = require("aap.rotate")

local DAY = 86400

describe("rotation killed at every step", function()
  local fx = require("rotate_fixture").new()
  setup(fx.start) teardown(fx.stop) before_each(fx.fresh) after_each(helper.cleanup)
  local admin_env, get, state = fx.admin_env, fx.get, fx.state
  local server_tokens, works, token_id = fx.server_tokens, fx.works, fx.token_id

  local function check_consistent(key, filter)
    local value = get(key)
    assert.is_true(works(value), "the token in the file works")
    assert.same({ token_id(value) }, server_tokens(filter))
    local st = state()
    assert.equal(token_id(value), st.keys[key].id)
    assert.is_nil(next(st.rotations))
    assert.same({}, st.pending)
  end

  local recreate_steps = { "intent", "created", "recorded", "verified", "written", "committed", "hooked", "revoked" }
  for _, step in ipairs(recreate_steps) do
    it("recreate, killed at " .. step, function()
      local r = fx.aap({ "token", "create", "--env-file", fx.env_path })
      assert.equal(0, r.code, r.stderr)
      fx.sim:advance(100 * DAY)
      local pol = fx.policy('return { max_age = "90d", on_rotated = function() return true end }')
      local argv = { "token", "rotate", "--env-file", fx.env_path, "--policy", pol }
      r = fx.aap(argv, admin_env({ AAP_FAULT_EXIT_AT = step }))
      assert.equal(rotate.FAULT_EXIT, r.code, r.stderr)
      assert.truthy(r.stderr:find("AAP_FAULT_EXIT_AT=" .. step, 1, true))
      -- whatever the step, the file holds a working token, and every token on the gateway is
      -- recorded in the state file (by id, or by the intent's marker in its description)
      assert.is_true(works(get("AAP_PAT")))
      local st = state()
      local known = {}
      for _, rec in pairs(st.keys) do known[math.tointeger(rec.id)] = true end
      for _, e in ipairs(st.pending) do known[math.tointeger(e.id)] = true end
      local marker
      for _, it in pairs(st.rotations) do
        if it.old_id then known[math.tointeger(it.old_id)] = true end
        if it.new_id then known[math.tointeger(it.new_id)] = true end
        marker = it.marker
      end
      local _, list = server_tokens()
      for _, t in ipairs(list) do
        assert.is_true(known[math.tointeger(t.id)] or (marker ~= nil and t.description:find(marker, 1, true) ~= nil),
          "token " .. t.id .. " is not recorded")
      end
      r = fx.aap(argv)
      assert.equal(0, r.code, r.stderr)
      check_consistent("AAP_PAT")
      -- and a third run has nothing left to do
      r = fx.aap(argv)
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("keep AAP_PAT", 1, true), r.stdout)
    end)
  end

  -- The CronJob's case (deploy/k8s): no state file outlives a run; the policy's on_state_saved
  -- keeps a copy elsewhere, and each run starts from that copy alone.
  for _, step in ipairs(recreate_steps) do
    it("recreate with the state kept only through on_state_saved, killed at " .. step, function()
      local state_path, copy = fx.env_path .. ".aap-state.json", fx.dir .. "/kept-state.json"
      local function new_pod()
        os.remove(state_path)
        local text = helper.readfile(copy)
        if text then helper.writefile(state_path, text, 384) end
      end
      local r = fx.aap({ "token", "create", "--env-file", fx.env_path })
      assert.equal(0, r.code, r.stderr)
      fx.sim:advance(100 * DAY)
      local pol = fx.policy(([[return { max_age = "90d", on_rotated = function() return true end,
        on_state_saved = function(ctx) ctx:run{ "cp", "/dev/stdin", %q, stdin = ctx.state } end }]]):format(copy))
      local argv = { "token", "rotate", "--env-file", fx.env_path, "--policy", pol }
      new_pod()
      r = fx.aap(argv, admin_env({ AAP_FAULT_EXIT_AT = step }))
      assert.equal(rotate.FAULT_EXIT, r.code, r.stderr)
      -- every step is reached after a save that the hook completed: the copy is the file
      assert.equal(helper.readfile(state_path), helper.readfile(copy))
      new_pod()
      r = fx.aap(argv)
      assert.equal(0, r.code, r.stderr)
      check_consistent("AAP_PAT")
      new_pod()
      r = fx.aap(argv)
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("keep AAP_PAT", 1, true), r.stdout)
      assert.is_nil(helper.readfile(copy):find(get("AAP_PAT"), 1, true), "a token in the state")
    end)
  end

  it("stops before the create request when on_state_saved fails, and makes nothing", function()
    local r = fx.aap({ "token", "create", "--env-file", fx.env_path })
    assert.equal(0, r.code, r.stderr)
    fx.sim:advance(100 * DAY)
    local before, value = server_tokens(), get("AAP_PAT")
    local pol = fx.policy('return { max_age = "90d", on_state_saved = function(ctx) ctx:run{ "false" } end }')
    r = fx.rotate({ "--policy", pol })
    assert.equal(1, r.code, r.stderr)
    assert.matches("was written, but on_state_saved failed: .*false exited with status 1", r.stderr)
    assert.same(before, server_tokens())
    assert.equal(value, get("AAP_PAT"))
    assert.is_true(works(value))
  end)

  it("drops a rotation whose on_rotated never succeeded once the file holds the old token again", function()
    local r = fx.aap({ "token", "create", "--env-file", fx.env_path })
    assert.equal(0, r.code, r.stderr)
    local old = get("AAP_PAT")
    local saved = helper.readfile(fx.env_path)
    fx.sim:advance(100 * DAY)
    local pol = fx.policy('return { max_age = "90d", on_rotated = function() error("consumer unreachable") end }')
    local argv = { "token", "rotate", "--env-file", fx.env_path, "--policy", pol }
    r = fx.aap(argv)
    assert.equal(1, r.code, r.stderr)
    local new = get("AAP_PAT")
    assert.are_not.equal(old, new)
    -- the operator puts the old file back (the consumer never got the new token)
    helper.writefile(fx.env_path, saved, 384)
    helper.writefile(pol, 'return { max_age = "200d" }')
    -- a dry run says so, and writes nothing
    local before = helper.readfile(fx.env_path .. ".aap-state.json")
    r = fx.rotate({ "--policy", pol, "--dry-run" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("would drop the rotation from token id=" .. token_id(old), r.stdout .. r.stderr)
    assert.equal(before, helper.readfile(fx.env_path .. ".aap-state.json"))
    r = fx.aap(argv)
    assert.equal(0, r.code, r.stderr)
    assert.matches("the rotation is dropped, the old token id=" .. token_id(old) .. " is not revoked, and token id="
      .. token_id(new) .. " is left live", r.stderr)
    assert.is_true(works(old))    -- neither the hook nor the revocation ran for it
    assert.equal(old, get("AAP_PAT"))
    assert.same({}, state().pending)
    assert.is_nil(state().keys.AAP_PAT)
  end)

  it("never revokes the token the file holds when an interrupted rotation's record was dropped", function()
    -- A -> B (A in its grace), then B -> C killed after the create, then the file restored to A
    -- and A's grace over.
    local r = fx.aap({ "token", "create", "--env-file", fx.env_path })
    assert.equal(0, r.code, r.stderr)
    local a = get("AAP_PAT")
    local saved = helper.readfile(fx.env_path)
    fx.sim:advance(100 * DAY)
    local pol = fx.policy('return { max_age = "90d", grace = "120d" }')
    local argv = { "token", "rotate", "--env-file", fx.env_path, "--policy", pol }
    r = fx.aap(argv)
    assert.equal(0, r.code, r.stderr)
    fx.sim:advance(100 * DAY)
    r = fx.aap(argv, admin_env({ AAP_FAULT_EXIT_AT = "created" }))
    assert.equal(rotate.FAULT_EXIT, r.code, r.stderr)
    helper.writefile(fx.env_path, saved, 384)
    fx.sim:advance(30 * DAY)   -- A's grace is over now
    r = fx.aap(argv)
    assert.equal(0, r.code, r.stderr)
    assert.matches("changed outside aap during an interrupted rotation", r.stderr)
    -- nothing proves any more which token the file holds: the pending revocation of A waits
    assert.matches("old token id=" .. token_id(a) .. " stays valid", r.stdout .. r.stderr)
    assert.is_true(works(a))
    -- A itself was due: it was replaced, and goes after its own grace, through the new switch
    local d = get("AAP_PAT")
    assert.are_not.equal(a, d)
    assert.is_true(works(d))
  end)

  it("tells the consumer about a token that replaced one gone from the gateway (on_rotated)", function()
    local r = fx.aap({ "token", "create", "--env-file", fx.env_path })
    assert.equal(0, r.code, r.stderr)
    local gone = get("AAP_PAT")
    assert.equal(204, (fx.sim:json("DELETE", "/api/gateway/v1/tokens/" .. token_id(gone) .. "/",
      { basic = { "admin", helper.ADMIN_PASSWORD } })))
    local got = fx.dir .. "/handed-on"
    local pol = fx.policy(([[return { max_age = "90d",
      on_rotated = function(ctx) ctx:run{ "cp", "/dev/stdin", %q, stdin = ctx.new:secret() } end }]]):format(got))
    local argv = { "token", "rotate", "--env-file", fx.env_path, "--policy", pol }
    r = fx.aap(argv)
    assert.equal(0, r.code, r.stderr)
    assert.equal(get("AAP_PAT"), helper.readfile(got))
    -- a hook that fails then cannot hold anything: exit 1, nothing undone
    assert.equal(204, (fx.sim:json("DELETE", "/api/gateway/v1/tokens/" .. token_id(get("AAP_PAT")) .. "/",
      { basic = { "admin", helper.ADMIN_PASSWORD } })))
    helper.writefile(pol, 'return { max_age = "90d", on_rotated = function() error("consumer down") end }')
    r = fx.aap(argv)
    assert.equal(1, r.code, r.stderr)
    assert.matches("on_rotated failed: .*consumer down %(there was no old token to keep; nothing was undone%)",
      r.stderr)
    assert.is_true(works(get("AAP_PAT")))
  end)

  for _, step in ipairs({ "intent", "refreshed", "written", "committed" }) do
    it("refresh, killed at " .. step, function()
      local app = fx.sim.seed.application
      local r = fx.aap({ "token", "create", "--env-file", fx.env_path, "--application", app.name })
      assert.equal(0, r.code, r.stderr)
      fx.sim:advance(26 * DAY)
      local pol = fx.policy('return { max_age = "25d", strategy = "refresh" }')
      local env = admin_env({ AAP_CLIENT_ID = app.client_id, AAP_CLIENT_SECRET = app.client_secret })
      local argv = { "token", "rotate", "--env-file", fx.env_path, "--policy", pol }
      env.AAP_FAULT_EXIT_AT = step
      r = fx.aap(argv, env)
      assert.equal(rotate.FAULT_EXIT, r.code, r.stderr)
      env.AAP_FAULT_EXIT_AT = nil
      local before = step == "refreshed" and server_tokens() or nil
      r = fx.aap(argv, env)
      assert.equal(0, r.code, r.stderr)
      if step == "refreshed" then
        -- The refresh went through but its answer was lost with the process: nothing proves
        -- which token the gateway made (a refresh keeps no marker), so none is deleted; the
        -- note names the likely one, and the key gets a new token.
        local orphan = before[#before]
        assert.matches("lost the new token", r.stderr)
        assert.matches("likely among id " .. orphan .. " %(not deleted", r.stderr)
        local value = get("AAP_TOKEN")
        assert.is_true(works(value))
        local ids = server_tokens(function(t) return type(t.application) == "number" end)
        table.sort(ids)
        local want = { orphan, token_id(value) }
        table.sort(want)
        assert.same(want, ids)
        assert.equal(token_id(value), state().keys.AAP_TOKEN.id)
      else
        check_consistent("AAP_TOKEN", function(t) return type(t.application) == "number" end)
      end
      assert.truthy(get("REFRESH_TOKEN"))
    end)
  end
end)
