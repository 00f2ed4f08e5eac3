-- `aap token refresh` and `aap token revoke` against the reference gateway: the token acted on
-- must be exactly the one whose value is in the env file (or the id given), never another
-- token of the same user, and the state file must record the server's id of the value.
local F = require("reference_fixture")
local B = { describe = describe, it = it, pending = pending, setup = setup, teardown = teardown,
            before_each = before_each }

F.file(B, "reference suite: refresh and revoke", function()
  F.describe(B, "reference: token refresh", function(case)

    -- An application token made by aap in a fresh env file; returns path, value, id, refresh.
    local function app_token(world, extra_args)
      local path = world.dir .. "/.env"
      local args = { "--application", "RHDH Integration" }
      for _, a in ipairs(extra_args or {}) do args[#args + 1] = a end
      local value, id = F.create("admin", path, args)
      return path, value, id, F.get(path, "REFRESH_TOKEN")
    end

    -- After a refresh: the old pair is dead and gone, the new pair in the file is alive and is
    -- what the state file and aap's report name.
    local function check_refreshed(ref, world, r, path, old, old_id, old_refresh)
      F.ok(r, "token refresh")
      local new, new_refresh = F.get(path, "AAP_TOKEN"), F.get(path, "REFRESH_TOKEN")
      assert.are_not.equal(old, new)
      assert.is_nil(ref:id_of(old), "the old access token is gone from the server")
      assert.is_nil(F.rows(ref)[old_id])
      assert.is_false(ref:token_works(old))
      assert.is_false(ref:refresh_alive(old_refresh))
      assert.is_true(ref:refresh_alive(new_refresh))
      local new_id = ref:id_of(new)
      assert.truthy(new_id, "the new value is a token on the server")
      assert.is_true(ref:token_works(new))
      assert.equal(ref.seed.applications["RHDH Integration"].id, F.rows(ref)[new_id].application_id)
      F.expect_ids(ref, F.union(world.ids, { new_id }))
      F.untouched(ref, world)
      F.no_secrets(r, { old, new, old_refresh, new_refresh })
      local reported, recorded = F.reported_id(r.stderr), F.recorded(path, "AAP_TOKEN")
      assert.same({ reported = new_id, recorded = new_id }, { reported = reported, recorded = recorded },
        ("the server's id of the new value is %d; aap reported id=%s and recorded id=%s"):format(new_id,
          tostring(reported), tostring(recorded)))
      return new, new_id
    end

    case("with the client from the environment: the old pair dies, the new pair is recorded by its real id",
      function(ref, world)
        local path, old, old_id, old_refresh = app_token(world)
        local r = F.aap("admin", { "token", "refresh", "--env-file", path })
        check_refreshed(ref, world, r, path, old, old_id, old_refresh)
      end)

    case("with the client from the env file, without any user credentials", function(ref, world)
      local path, old, old_id, old_refresh = app_token(world)
      local app = ref.seed.applications["RHDH Integration"]
      local doc = assert(require("aap.env").read(path))
      doc:set("AAP_CLIENT_ID", app.client_id)
      doc:set("AAP_CLIENT_SECRET", app.client_secret)
      require("helper").writefile(path, doc:serialize(), 384)
      local r = F.aap("admin", { "token", "refresh", "--env-file", path },
        { AAP_CLIENT_ID = false, AAP_CLIENT_SECRET = false, AAP_PASSWORD = false })
      check_refreshed(ref, world, r, path, old, old_id, old_refresh)
    end)

    case("twice in a row, each time the newest pair is the one recorded", function(ref, world)
      local path, old, old_id, old_refresh = app_token(world)
      local r = F.aap("admin", { "token", "refresh", "--env-file", path })
      local mid, mid_id = check_refreshed(ref, world, r, path, old, old_id, old_refresh)
      local mid_refresh = F.get(path, "REFRESH_TOKEN")
      r = F.aap("admin", { "token", "refresh", "--env-file", path })
      check_refreshed(ref, world, r, path, mid, mid_id, mid_refresh)
    end)

    case("a spent refresh token: non-zero exit, the file and the server unchanged", function(ref, world)
      local path, _, id, refresh = app_token(world)
      local app = ref.seed.applications["RHDH Integration"]
      -- spend it elsewhere (the lesson's curl), keeping the file as it was
      local st = ref:raw("POST", "/o/token/", {
        basic = { app.client_id, app.client_secret },
        headers = { ["content-type"] = "application/x-www-form-urlencoded" },
        body = "grant_type=refresh_token&refresh_token=" .. refresh })
      assert.equal(201, st)
      local ids = ref:ids()
      local before = require("helper").readfile(path)
      local r = F.aap("admin", { "token", "refresh", "--env-file", path })
      assert.are_not.equal(0, r.code)
      assert.equal(before, require("helper").readfile(path))
      assert.same(ids, ref:ids())
      assert.is_nil(F.rows(ref)[id])
      F.untouched(ref, world)
    end)
  end)

  F.describe(B, "reference: token revoke", function(case)

    for _, user in ipairs({ "admin", "normal" }) do
      case("revoke ID as " .. user .. ": exactly that token is gone", function(ref, world)
        local path = world.dir .. "/.env"
        local _, id = F.create(user, path)
        local _, keep = F.create(user, world.dir .. "/other.env")
        local r = F.aap(user, { "token", "revoke", tostring(id) })
        F.ok(r, "token revoke ID")
        assert.is_nil(F.rows(ref)[id])
        F.expect_ids(ref, F.union(world.ids, { keep }))
        F.untouched(ref, world)
      end)

      case("revoke --env-file --key AAP_PAT as " .. user .. ": exactly the file's PAT is gone, its key removed",
        function(ref, world)
          local path = world.dir .. "/.env"
          local value, id = F.create(user, path)
          local _, other = F.create(user, world.dir .. "/other.env")
          local ids = F.union(world.ids, { other })
          local r = F.aap(user, { "token", "revoke", "--env-file", path, "--key", "AAP_PAT" })
          F.untouched(ref, world)
          F.ok(r, "token revoke --env-file --key AAP_PAT")
          assert.is_nil(ref:id_of(value), "the file's token is gone")
          assert.is_false(ref:token_works(value))
          F.expect_ids(ref, ids)
          assert.is_nil(F.get(path, "AAP_PAT"))
          assert.is_nil(F.recorded(path, "AAP_PAT"))
          assert.equal(id, F.reported_id(r.stderr), r.stderr)
          F.no_secrets(r, { value })
        end)

      case("revoke --env-file of a PAT the lesson's curl wrote (no state file) as " .. user
        .. ": that token or nothing", function(ref, world)
        local path = world.dir .. "/.env"
        local mine = F.raw_token(ref, user, { description = "curl PAT", scope = "write" })
        F.curl_env(path, { { "AAP_PAT", mine.token } })
        local ids = ref:ids()
        local r = F.aap(user, { "token", "revoke", "--env-file", path, "--key", "AAP_PAT" })
        F.untouched(ref, world)
        if r.code == 0 then
          F.expect_ids(ref, F.union(world.ids), "exit 0: exactly the file's token revoked")
          assert.is_nil(F.get(path, "AAP_PAT"))
        else
          assert.same(ids, ref:ids(), "non-zero exit: nothing deleted")
          assert.truthy(r.stderr:find("aap: ", 1, true))
          assert.equal(mine.token, F.get(path, "AAP_PAT"))
        end
        F.no_secrets(r, { mine.token })
      end)
    end

    case("the normal user cannot revoke the admin's token by id: exit 3, nothing deleted", function(ref, world)
      local r = F.aap("normal", { "token", "revoke", tostring(world.unrelated[1].id) })
      assert.equal(3, r.code, r.stderr)
      F.expect_ids(ref, world.ids)
      F.untouched(ref, world)
    end)

    case("revoke --env-file (AAP_TOKEN): the app token and its refresh token die, the file's PAT lives",
      function(ref, world)
        local path = world.dir .. "/.env"
        local pat, pat_id = F.create("admin", path)
        local value, id = F.create("admin", path, { "--application", "RHDH Integration" })
        local refresh = F.get(path, "REFRESH_TOKEN")
        local r = F.aap("admin", { "token", "revoke", "--env-file", path })
        F.untouched(ref, world)
        F.ok(r, "token revoke --env-file")
        assert.is_nil(ref:id_of(value))
        assert.is_false(ref:refresh_alive(refresh), "the refresh token is revoked too")
        F.expect_ids(ref, F.union(world.ids, { pat_id }))
        assert.is_true(ref:token_works(pat))
        assert.is_nil(F.get(path, "AAP_TOKEN"))
        assert.is_nil(F.get(path, "REFRESH_TOKEN"))
        assert.equal(pat, F.get(path, "AAP_PAT"))
        assert.equal(pat_id, F.recorded(path, "AAP_PAT"))
        assert.equal(id, F.reported_id(r.stderr), r.stderr)
        F.no_secrets(r, { value, refresh, pat })
      end)

    case("revoke --env-file after a refresh: the refreshed token is the one revoked", function(ref, world)
      local path = world.dir .. "/.env"
      F.create("admin", path, { "--application", "RHDH Integration" })
      F.ok(F.aap("admin", { "token", "refresh", "--env-file", path }), "token refresh")
      local value, refresh = F.get(path, "AAP_TOKEN"), F.get(path, "REFRESH_TOKEN")
      assert.truthy(ref:id_of(value))
      local r = F.aap("admin", { "token", "revoke", "--env-file", path })
      F.untouched(ref, world)
      F.ok(r, "token revoke --env-file")
      assert.is_nil(ref:id_of(value))
      assert.is_false(ref:refresh_alive(refresh))
      F.expect_ids(ref, world.ids)
    end)
  end)
end)
