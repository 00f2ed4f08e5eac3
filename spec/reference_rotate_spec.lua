-- `aap token rotate` with the three example policies against the reference gateway: dry runs
-- change nothing; real runs end with exactly the expected tokens alive on the server, the new
-- one in the file and recorded by its real id; runs killed at a step (AAP_FAULT_EXIT_AT) are
-- repaired by the next run; a token deleted elsewhere (whose refresh grant the reference
-- answers with a 500) is replaced. The reference has no clock to advance: tokens are made
-- older in its database (ref:age), and "the grace period is over" is written into the state
-- file (F.grace_over).
local helper = require("helper")
local F = require("reference_fixture")
local B = { describe = describe, it = it, pending = pending, setup = setup, teardown = teardown,
            before_each = before_each }
local rotate = require("aap.rotate")

local POLICIES = helper.ROOT .. "/examples/policies/"
local YEARLY, APP_REFRESH, STRICT = POLICIES .. "yearly-recreate.lua", POLICIES .. "app-refresh.lua",
  POLICIES .. "strict-wait-for-use.lua"
local DAY = F.DAY

local function run(user, path, policy, extra, more)
  local argv = { "token", "rotate", "--policy", policy, "--env-file", path }
  for _, a in ipairs(more or {}) do argv[#argv + 1] = a end
  return F.aap(user, argv, extra)
end

-- Everything a dry run must leave as it was.
local function snapshot(ref, path)
  return { ids = ref:ids(), env = helper.readfile(path), st = helper.readfile(path .. ".aap-state.json") }
end

local function unchanged(ref, path, before)
  assert.same(before.ids, ref:ids())
  assert.equal(before.env, helper.readfile(path))
  assert.equal(before.st, helper.readfile(path .. ".aap-state.json"))
end

-- After a rotation that created `key`'s new token: the file's token works and is recorded by
-- its server id, which is also the id aap reported; returns value, id. `unused`: see
-- F.file_token.
local function check_new(ref, r, path, key, old_value, unused)
  local value, id = F.file_token(ref, path, key, unused)
  assert.are_not.equal(old_value, value)
  assert.equal(id, F.reported_id(r.stdout, "new token id=(%d+)"), "the new id aap reported: " .. r.stdout)
  F.no_secrets(r, { value, old_value })
  return value, id
end

F.file(B, "reference suite: rotate", function()
  F.describe(B, "reference: token rotate, yearly-recreate.lua", function(case)

    for _, user in ipairs({ "admin", "normal" }) do
      case("as " .. user .. ": keep when young, dry run changes nothing, then rotate and revoke after the grace",
        function(ref, world)
          local path = world.dir .. "/.env"
          local old, old_id = F.create(user, path)
          local r = run(user, path, YEARLY)
          F.ok(r, "rotate (young token)")
          assert.truthy(r.stdout:find("keep AAP_PAT", 1, true), r.stdout)
          F.expect_ids(ref, F.union(world.ids, { old_id }))
          ref:age(old_id, 400 * DAY)
          local before = snapshot(ref, path)
          r = run(user, path, YEARLY, nil, { "--dry-run" })
          F.ok(r, "rotate --dry-run")
          assert.truthy(r.stdout:find("would rotate AAP_PAT", 1, true), r.stdout)
          unchanged(ref, path, before)
          r = run(user, path, YEARLY)
          F.ok(r, "rotate")
          local _, new_id = check_new(ref, r, path, "AAP_PAT", old)
          assert.equal(ref.seed[user].id, F.rows(ref)[new_id].user_id)
          -- the old token keeps working for the grace hour, and is the one pending
          assert.is_true(ref:token_works(old))
          assert.same({ old_id }, F.pending_ids(path))
          F.expect_ids(ref, F.union(world.ids, { old_id, new_id }))
          F.untouched(ref, world)
          F.grace_over(path)
          r = run(user, path, YEARLY)
          F.ok(r, "rotate after the grace period")
          assert.truthy(r.stdout:find("keep AAP_PAT", 1, true), r.stdout)
          assert.is_false(ref:token_works(old))
          F.expect_ids(ref, F.union(world.ids, { new_id }))
          assert.same({}, F.pending_ids(path))
          F.file_token(ref, path, "AAP_PAT")
          F.untouched(ref, world)
        end)
    end

    case("a PAT rotating itself (no password): the normal user's new PAT, the old one revoked after the grace",
      function(ref, world)
        local path = world.dir .. "/.env"
        local old, old_id = F.create("normal", path)
        ref:age(old_id, 400 * DAY)
        local r = run("normal", path, YEARLY, { AAP_PASSWORD = false })
        F.ok(r, "self-service rotate")
        local _, new_id = check_new(ref, r, path, "AAP_PAT", old)
        assert.equal(ref.seed.normal.id, F.rows(ref)[new_id].user_id)
        F.expect_ids(ref, F.union(world.ids, { old_id, new_id }))
        F.grace_over(path)
        F.ok(run("normal", path, YEARLY, { AAP_PASSWORD = false }), "self-service rotate after the grace")
        F.expect_ids(ref, F.union(world.ids, { new_id }))
        F.untouched(ref, world)
      end)

    -- Killed at a step, then run again: the file's token works and is recorded by its real id,
    -- no rotation is left in flight, every token beyond the unrelated ones is the file's or a
    -- pending revocation; after the grace, only the file's token is left.
    for _, step in ipairs({ "created", "written", "committed" }) do
      case("killed at " .. step .. ", then run again: a consistent end, no leftover token", function(ref, world)
        local path = world.dir .. "/.env"
        local _, old_id = F.create("admin", path)
        ref:age(old_id, 400 * DAY)
        local r = run("admin", path, YEARLY, { AAP_FAULT_EXIT_AT = step })
        assert.equal(rotate.FAULT_EXIT, r.code, r.stderr)
        F.untouched(ref, world)
        r = run("admin", path, YEARLY)
        F.ok(r, "the run after the crash")
        local _, id = F.file_token(ref, path, "AAP_PAT")
        assert.same({}, F.state(path).rotations)
        F.expect_ids(ref, F.union(world.ids, { id }, F.pending_ids(path)))
        F.untouched(ref, world)
        F.grace_over(path)
        F.ok(run("admin", path, YEARLY), "the run after the grace")
        F.file_token(ref, path, "AAP_PAT")
        F.expect_ids(ref, F.union(world.ids, { id }))
      end)
    end
  end)

  F.describe(B, "reference: token rotate, strict-wait-for-use.lua", function(case)

    for _, user in ipairs({ "admin", "normal" }) do
      case("as " .. user .. ": the old token is revoked only once the consumer used the new one", function(ref, world)
        local path = world.dir .. "/.env"
        local old, old_id = F.create(user, path, { "--scope", "read" })
        ref:age(old_id, 100 * DAY)
        local before = snapshot(ref, path)
        local r = run(user, path, STRICT, nil, { "--dry-run" })
        F.ok(r, "rotate --dry-run")
        unchanged(ref, path, before)
        r = run(user, path, STRICT)
        F.ok(r, "rotate")
        local _, new_id = check_new(ref, r, path, "AAP_PAT", old, true)
        assert.equal("read", F.rows(ref)[new_id].scope)
        F.expect_ids(ref, F.union(world.ids, { old_id, new_id }))
        -- past the grace, but the consumer has not used the new token: the old one stays
        F.grace_over(path)
        r = run(user, path, STRICT)
        F.ok(r, "rotate while waiting for the consumer")
        assert.truthy(r.stderr:find("waiting for the consumer", 1, true), r.stderr)
        assert.is_true(ref:token_works(old))
        F.expect_ids(ref, F.union(world.ids, { old_id, new_id }))
        -- the consumer uses the new token (a minute after aap's own check)
        ref:used_in(new_id, 60)
        r = run(user, path, STRICT)
        F.ok(r, "rotate after the consumer's use")
        assert.is_false(ref:token_works(old))
        F.expect_ids(ref, F.union(world.ids, { new_id }))
        F.file_token(ref, path, "AAP_PAT")
        F.untouched(ref, world)
      end)
    end
  end)

  F.describe(B, "reference: token rotate, app-refresh.lua", function(case)

    local function app_token(world)
      local path = world.dir .. "/.env"
      local value, id = F.create("admin", path, { "--application", "RHDH Integration" })
      return path, value, id, F.get(path, "REFRESH_TOKEN")
    end

    -- After a refresh rotation: the old pair is dead, the new pair in the file alive, the
    -- server holds the unrelated tokens and the new one only.
    local function check_refreshed(ref, world, r, path, old, old_refresh)
      local value, id = check_new(ref, r, path, "AAP_TOKEN", old)
      assert.is_nil(ref:id_of(old))
      assert.is_false(ref:refresh_alive(old_refresh))
      assert.is_true(ref:refresh_alive(F.get(path, "REFRESH_TOKEN")))
      assert.equal(ref.seed.applications["RHDH Integration"].id, F.rows(ref)[id].application_id)
      F.expect_ids(ref, F.union(world.ids, { id }))
      F.untouched(ref, world)
      return value, id
    end

    case("dry run changes nothing; the real run refreshes and records the new token's real id", function(ref, world)
      local path, old, old_id, old_refresh = app_token(world)
      ref:age(old_id, 26 * DAY)
      local before = snapshot(ref, path)
      local r = run("admin", path, APP_REFRESH, nil, { "--dry-run" })
      F.ok(r, "rotate --dry-run")
      assert.truthy(r.stdout:find("would rotate AAP_TOKEN", 1, true), r.stdout)
      unchanged(ref, path, before)
      r = run("admin", path, APP_REFRESH)
      F.ok(r, "rotate")
      check_refreshed(ref, world, r, path, old, old_refresh)
      r = run("admin", path, APP_REFRESH)
      F.ok(r, "the next run")
      assert.truthy(r.stdout:find("keep AAP_TOKEN", 1, true), r.stdout)
    end)

    case("without user credentials (the client only)", function(ref, world)
      local path, old, old_id, old_refresh = app_token(world)
      ref:age(old_id, 26 * DAY)
      local r = run("admin", path, APP_REFRESH, { AAP_PASSWORD = false })
      F.ok(r, "rotate without a password")
      check_refreshed(ref, world, r, path, old, old_refresh)
    end)

    -- Killed at "refreshed", the new pair dies with the process: the refresh made a token with
    -- no marker, which nothing proves to be ours (another integration of the same user and
    -- application may refresh in the same second), so the next run names it and deletes none.
    for _, step in ipairs({ "refreshed", "written" }) do
      case("killed at " .. step .. ", then run again: one working, recorded token; a lost one named, not deleted",
        function(ref, world)
        local path, _, old_id, old_refresh = app_token(world)
        ref:age(old_id, 26 * DAY)
        local before = ref:ids()
        local r = run("admin", path, APP_REFRESH, { AAP_FAULT_EXIT_AT = step })
        assert.equal(rotate.FAULT_EXIT, r.code, r.stderr)
        local lost = {}
        if step == "refreshed" then
          local had = {}
          for _, i in ipairs(before) do had[i] = true end
          for _, i in ipairs(ref:ids()) do
            if not had[i] then lost[#lost + 1] = i end
          end
          assert.equal(1, #lost, "the refresh made one token")
        end
        r = run("admin", path, APP_REFRESH)
        F.ok(r, "the run after the crash")
        if step == "refreshed" then
          assert.truthy(r.stderr:find("likely among id " .. lost[1] .. " (not deleted", 1, true), r.stderr)
        end
        local _, id = F.file_token(ref, path, "AAP_TOKEN")
        assert.is_false(ref:refresh_alive(old_refresh))
        assert.same({}, F.state(path).rotations)
        F.expect_ids(ref, F.union(world.ids, { id }, F.pending_ids(path), lost))
        F.untouched(ref, world)
        F.grace_over(path)
        F.ok(run("admin", path, APP_REFRESH), "the next run")
        F.expect_ids(ref, F.union(world.ids, { id }, lost))
        F.file_token(ref, path, "AAP_TOKEN")
      end)
    end

    case("the access token was deleted elsewhere (refresh answers 500): a new token replaces it", function(ref, world)
      local path, old, old_id = app_token(world)
      local st = F.admin_json(ref, "DELETE", ("tokens/%d/"):format(old_id))
      assert.equal(204, st)
      local r = run("admin", path, APP_REFRESH)
      F.untouched(ref, world)
      F.ok(r, "rotate after the deletion")
      local _, id = check_new(ref, r, path, "AAP_TOKEN", old)
      assert.truthy(F.get(path, "REFRESH_TOKEN"))
      assert.is_true(ref:refresh_alive(F.get(path, "REFRESH_TOKEN")))
      F.expect_ids(ref, F.union(world.ids, { id }))
      r = run("admin", path, APP_REFRESH)
      F.ok(r, "the next run")
      assert.truthy(r.stdout:find("keep AAP_TOKEN", 1, true), r.stdout)
      F.file_token(ref, path, "AAP_TOKEN")
      F.expect_ids(ref, F.union(world.ids, { id }))
      assert.same({}, F.state(path).rotations)
      F.untouched(ref, world)
    end)

    case("the access token was deleted elsewhere: the run after a failed one ends in a correct state",
      function(ref, world)
        local path, _, old_id = app_token(world)
        assert.equal(204, (F.admin_json(ref, "DELETE", ("tokens/%d/"):format(old_id))))
        run("admin", path, APP_REFRESH) -- whatever it does
        local r = run("admin", path, APP_REFRESH)
        F.ok(r, "the second run")
        local _, id = F.file_token(ref, path, "AAP_TOKEN")
        F.grace_over(path)
        F.ok(run("admin", path, APP_REFRESH), "the third run")
        F.expect_ids(ref, F.union(world.ids, { id }))
        assert.same({}, F.state(path).rotations)
        F.untouched(ref, world)
      end)
  end)
end)
