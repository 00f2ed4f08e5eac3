-- The read-only commands and `token create` / `app create` against the reference gateway
-- (../shared/reference-gateway), as the admin and as the normal user, checked against the
-- server's database: ping, whoami, app list/show/create, token create in every output form,
-- token show, token list with every filter.
local helper = require("helper")
local F = require("reference_fixture")
local B = { describe = describe, it = it, pending = pending, setup = setup, teardown = teardown,
            before_each = before_each }
local cjson = require("cjson.safe")

local USERS = { "admin", "normal" }

F.file(B, "reference suite: read-only commands, create", function()
  F.describe(B, "reference: ping and whoami", function(case)

    for _, user in ipairs(USERS) do
      case("ping and whoami as " .. user .. " (text and json), creating nothing", function(ref, world)
        local r = F.aap(user, { "ping" })
        F.ok(r, "ping")
        assert.truthy(r.stdout:find("gateway " .. ref.url, 1, true), r.stdout)
        r = F.aap(user, { "ping", "--format", "json" })
        F.ok(r, "ping --format json")
        local p = assert(cjson.decode(r.stdout))
        assert.equal("gateway", p.flavor)
        assert.equal("good", p.ping.status)
        r = F.aap(user, { "whoami" })
        F.ok(r, "whoami")
        local me = ref.seed[user]
        assert.equal(("%s (id %d%s)\n"):format(user, me.id, user == "admin" and ", superuser" or ""), r.stdout)
        r = F.aap(user, { "whoami", "--format", "json" })
        F.ok(r, "whoami --format json")
        assert.same({ id = me.id, username = user, is_superuser = user == "admin" }, cjson.decode(r.stdout))
        F.no_secrets(r, F.all_secrets(ref))
        F.expect_ids(ref, world.ids)
        F.untouched(ref, world)
      end)
    end

    case("ping works without credentials; whoami with a wrong password exits 3", function(ref, world)
      local r = F.aap("admin", { "ping" }, { AAP_PASSWORD = false })
      F.ok(r, "anonymous ping")
      r = F.aap("normal", { "whoami" }, { AAP_PASSWORD = "wrong-" .. ref.seed.normal.password })
      assert.equal(3, r.code, r.stderr)
      assert.is_nil(r.stderr:find(ref.seed.normal.password, 1, true))
      F.expect_ids(ref, world.ids)
    end)
  end)

  F.describe(B, "reference: app list, show, create", function(case)

    case("app list shows exactly the server's applications, without secrets", function(ref, world)
      local r = F.aap("admin", { "app", "list", "--format", "json" })
      F.ok(r, "app list")
      local got = {}
      for _, a in ipairs(assert(cjson.decode(r.stdout))) do got[a.name] = { id = a.id, client_id = a.client_id } end
      local want = {}
      for name, a in pairs(ref.seed.applications) do want[name] = { id = a.id, client_id = a.client_id } end
      assert.same(want, got)
      r = F.aap("admin", { "app", "list" })
      F.ok(r, "app list (table)")
      for name, a in pairs(ref.seed.applications) do
        assert.truthy(r.stdout:find("\n" .. a.id .. "%s+" .. name:gsub("%p", "%%%0")), r.stdout)
      end
      F.no_secrets(r, F.all_secrets(ref))
      F.expect_ids(ref, world.ids)
    end)

    case("app show by name and by id is the seeded application", function(ref)
      local app = ref.seed.applications["RHDH Integration"]
      for _, which in ipairs({ "RHDH Integration", tostring(app.id) }) do
        local r = F.aap("admin", { "app", "show", which, "--format", "json" })
        F.ok(r, "app show " .. which)
        local a = assert(cjson.decode(r.stdout))
        assert.equal(app.id, a.id)
        assert.equal("RHDH Integration", a.name)
        assert.equal(app.client_id, a.client_id)
        F.no_secrets(r, { app.client_secret })
      end
      local r = F.aap("admin", { "app", "show", "no such application" })
      assert.equal(2, r.code, r.stderr)
    end)

    case("the normal user may not list applications: exit 3", function(ref, world)
      local r = F.aap("normal", { "app", "list" })
      assert.equal(3, r.code, r.stderr)
      F.expect_ids(ref, world.ids)
    end)

    case("app create saves a client whose secret works for a refresh of that app's token", function(ref, world)
      local path = world.dir .. "/app.env"
      local r = F.aap("admin", { "app", "create", "--name", "refsuite app", "--env-file", path })
      F.ok(r, "app create")
      local cid, csecret = F.get(path, "AAP_CLIENT_ID"), F.get(path, "AAP_CLIENT_SECRET")
      assert.truthy(cid and csecret and #csecret > 20)
      F.no_secrets(r, { csecret })
      local st, body = F.admin_json(ref, "GET", "applications/?name=refsuite%20app")
      assert.equal(200, st)
      assert.equal(1, #body.results)
      assert.equal(cid, body.results[1].client_id)
      local app_id = math.tointeger(body.results[1].id)
      -- an application token of the new app in the same file, refreshed with the file's client
      local old, old_id = F.create("admin", path, { "--application", "refsuite app" })
      assert.equal(app_id, math.tointeger(F.rows(ref)[old_id].application_id))
      local old_refresh = F.get(path, "REFRESH_TOKEN")
      r = F.aap("admin", { "token", "refresh", "--env-file", path },
        { AAP_CLIENT_ID = false, AAP_CLIENT_SECRET = false })
      F.ok(r, "token refresh with the saved client")
      local new = F.get(path, "AAP_TOKEN")
      assert.are_not.equal(old, new)
      assert.is_nil(ref:id_of(old))
      assert.is_false(ref:refresh_alive(old_refresh))
      local new_id = ref:id_of(new)
      assert.truthy(new_id, "the refreshed value is a token on the server")
      assert.equal(app_id, math.tointeger(F.rows(ref)[new_id].application_id))
      assert.is_true(ref:token_works(new))
      assert.is_true(ref:refresh_alive(F.get(path, "REFRESH_TOKEN")))
      F.expect_ids(ref, F.union(world.ids, { new_id }))
      F.untouched(ref, world)
    end)
  end)

  F.describe(B, "reference: token create", function(case)

    for _, user in ipairs(USERS) do
      local uid = function(ref) return ref.seed[user].id end

      case("a PAT into an env file as " .. user .. ": one new token, its id recorded and reported", function(ref, world)
        local path = world.dir .. "/.env"
        local r = F.aap(user, { "token", "create", "--env-file", path, "--description", "refsuite PAT" })
        F.ok(r, "token create")
        local value, id = F.file_token(ref, path, "AAP_PAT")
        assert.equal(id, F.reported_id(r.stdout), r.stdout)
        local row = F.rows(ref)[id]
        assert.equal(uid(ref), math.tointeger(row.user_id))
        assert.is_nil(row.application_id)
        assert.truthy(row.description:find("refsuite PAT", 1, true))
        assert.equal("600", helper.mode(path))
        F.no_secrets(r, { value })
        F.expect_ids(ref, F.union(world.ids, { id }))
        F.untouched(ref, world)
      end)

      case("a PAT in every --format as " .. user .. ": printed value is the server's token of the reported id",
        function(ref, world)
          local ids = world.ids
          local decoders = {
            env = function(out) return out:match("^AAP_PAT=(%w+)\n") end,
            shell = function(out) return out:match("^export AAP_PAT='?(%w+)'?\n") end,
            json = function(out)
              local j = assert(cjson.decode(out))
              return j.AAP_PAT, math.tointeger(j.id)
            end,
            ["k8s-secret"] = function(out)
              assert.truthy(out:find("kind: Secret", 1, true), out)
              return out:match('"AAP_PAT": "(%w+)"')
            end,
          }
          for _, fmt in ipairs({ "env", "shell", "json", "k8s-secret" }) do
            local r = F.aap(user, { "token", "create", "--format", fmt }, nil, { cwd = world.dir })
            F.ok(r, "token create --format " .. fmt)
            local value, printed_id = decoders[fmt](r.stdout)
            assert.truthy(value, fmt .. ": no AAP_PAT in " .. r.stdout)
            local id = ref:id_of(value)
            assert.truthy(id, fmt .. ": the printed value is not a token on the server")
            assert.equal(id, F.reported_id(r.stderr), r.stderr)
            if printed_id then assert.equal(id, printed_id) end
            assert.equal(uid(ref), math.tointeger(F.rows(ref)[id].user_id))
            assert.is_true(ref:token_works(value))
            assert.is_nil(r.stderr:find(value, 1, true))
            ids = F.union(ids, { id })
            F.expect_ids(ref, ids, "after --format " .. fmt)
          end
          -- --format alone writes no env file
          assert.is_nil(helper.readfile(world.dir .. "/.env"))
          F.untouched(ref, world)
        end)

      case("--show-token, --key and the default .env as " .. user, function(ref, world)
        local path = world.dir .. "/custom.env"
        local r = F.aap(user, { "token", "create", "--env-file", path, "--key", "MY_PAT", "--show-token" })
        F.ok(r, "token create --key --show-token")
        local value, id = F.file_token(ref, path, "MY_PAT")
        assert.equal("MY_PAT=" .. value .. "\n", r.stdout)
        assert.is_nil(F.get(path, "AAP_PAT"))
        assert.equal(id, F.reported_id(r.stderr), r.stderr)
        -- neither --env-file nor --format: .env in the current directory
        r = F.aap(user, { "token", "create" }, nil, { cwd = world.dir })
        F.ok(r, "token create (default .env)")
        local dvalue, did = F.file_token(ref, world.dir .. "/.env", "AAP_PAT")
        assert.equal(did, F.reported_id(r.stdout), r.stdout)
        F.no_secrets(r, { dvalue })
        -- AAP_ENV_FILE names the default
        r = F.aap(user, { "token", "create" }, { AAP_ENV_FILE = world.dir .. "/named.env" }, { cwd = world.dir })
        F.ok(r, "token create (AAP_ENV_FILE)")
        local _, nid = F.file_token(ref, world.dir .. "/named.env", "AAP_PAT")
        assert.equal(dvalue, F.get(world.dir .. "/.env", "AAP_PAT"))
        F.expect_ids(ref, F.union(world.ids, { id, did, nid }))
        F.untouched(ref, world)
      end)
    end

    case("an application token by name, into an env file: AAP_TOKEN and REFRESH_TOKEN of one new token",
      function(ref, world)
        local app = ref.seed.applications["RHDH Integration"]
        local path = world.dir .. "/.env"
        local r = F.aap("admin", { "token", "create", "--application", "RHDH Integration", "--env-file", path })
        F.ok(r, "token create --application NAME")
        local value, id = F.file_token(ref, path, "AAP_TOKEN")
        assert.equal(id, F.reported_id(r.stdout), r.stdout)
        local row = F.rows(ref)[id]
        assert.equal(app.id, math.tointeger(row.application_id))
        assert.equal(ref.seed.admin.id, math.tointeger(row.user_id))
        local refresh = F.get(path, "REFRESH_TOKEN")
        assert.is_true(ref:refresh_alive(refresh))
        for _, rr in ipairs(ref:db().refresh) do
          if rr.token == refresh then assert.equal(id, math.tointeger(rr.access_token_id)) end
        end
        local st = F.state(path)
        assert.equal("REFRESH_TOKEN", st.keys.AAP_TOKEN.refresh_key)
        assert.equal(app.id, math.tointeger(st.keys.AAP_TOKEN.application))
        F.no_secrets(r, { value, refresh })
        F.expect_ids(ref, F.union(world.ids, { id }))
        F.untouched(ref, world)
      end)

    case("the lesson's whole job in one run (--pat --application): a PAT and an application token, both live",
      function(ref, world)
        local app = ref.seed.applications["RHDH Integration"]
        local path = world.dir .. "/.env"
        local r = F.aap("admin", { "token", "create", "--pat", "--application", "RHDH Integration",
                                   "--env-file", path })
        F.ok(r, "token create --pat --application NAME")
        local pat, pid = F.file_token(ref, path, "AAP_PAT")
        local value, id = F.file_token(ref, path, "AAP_TOKEN")
        assert.not_equal(pid, id)
        local rows = F.rows(ref)
        assert.is_nil(rows[pid].application_id ~= cjson.null and rows[pid].application_id or nil)
        assert.equal(app.id, math.tointeger(rows[id].application_id))
        assert.is_true(ref:refresh_alive(F.get(path, "REFRESH_TOKEN")))
        local st = F.state(path)
        assert.equal(pid, math.tointeger(st.keys.AAP_PAT.id))
        assert.equal(id, math.tointeger(st.keys.AAP_TOKEN.id))
        F.no_secrets(r, { pat, value, F.get(path, "REFRESH_TOKEN") })
        F.expect_ids(ref, F.union(world.ids, { pid, id }))
        -- again: both kept, nothing made or deleted
        r = F.aap("admin", { "token", "create", "--pat", "--application", "RHDH Integration", "--env-file", path })
        F.ok(r, "token create --pat --application NAME, again")
        assert.equal(pat, F.get(path, "AAP_PAT"))
        assert.equal(value, F.get(path, "AAP_TOKEN"))
        F.expect_ids(ref, F.union(world.ids, { pid, id }))
        F.untouched(ref, world)
      end)

    case("token status reports the server's ids and expiry, by id without using the tokens; a revoked one exits 3",
      function(ref, world)
        local path = world.dir .. "/.env"
        F.ok(F.aap("admin", { "token", "create", "--pat", "--application", "RHDH Integration", "--env-file", path }),
          "token create --pat --application")
        local _, pid = F.file_token(ref, path, "AAP_PAT")
        local _, aid = F.file_token(ref, path, "AAP_TOKEN")
        local used = {}
        for id, row in pairs(F.rows(ref)) do used[id] = row.last_used end
        local r = F.aap("admin", { "token", "status", "--env-file", path, "--format", "json", "--warn", "1s" })
        F.ok(r, "token status")
        local by = {}
        for _, e in ipairs(assert(cjson.decode(r.stdout))) do by[e.key] = e end
        local rows = F.rows(ref)
        for key, id in pairs({ AAP_PAT = pid, AAP_TOKEN = aid }) do
          assert.equal(id, math.tointeger(by[key].id))
          assert.equal("ok", by[key].status)
          assert.equal("id", by[key].checked_by)
          -- the server's expiry, to the second (the row holds microseconds)
          assert.equal(tostring(rows[id].expires):sub(1, 19), by[key].expires:sub(1, 19):gsub("T", " "))
          assert.equal(used[id], rows[id].last_used)
        end
        F.ok(F.aap("admin", { "token", "revoke", tostring(pid) }), "token revoke ID")
        r = F.aap("admin", { "token", "status", "--env-file", path, "--format", "json", "--warn", "1s" })
        assert.equal(3, r.code, r.stderr)
        by = {}
        for _, e in ipairs(assert(cjson.decode(r.stdout))) do by[e.key] = e end
        assert.equal("revoked", by.AAP_PAT.status)
        assert.equal("ok", by.AAP_TOKEN.status)
        F.expect_ids(ref, F.union(world.ids, { aid }))
        F.untouched(ref, world)
      end)

    case("an application token by id, with --key/--refresh-key and --format json", function(ref, world)
      local app = ref.seed.applications["RHDH Integration"]
      local path = world.dir .. "/.env"
      local r = F.aap("admin", { "token", "create", "--application", tostring(app.id), "--env-file", path,
                                 "--key", "RHDH_TOKEN", "--refresh-key", "RHDH_REFRESH", "--format", "json" })
      F.ok(r, "token create --application ID --format json")
      local value, id = F.file_token(ref, path, "RHDH_TOKEN")
      local j = assert(cjson.decode(r.stdout))
      assert.equal(value, j.RHDH_TOKEN)
      assert.equal(F.get(path, "RHDH_REFRESH"), j.RHDH_REFRESH)
      assert.equal(id, math.tointeger(j.id))
      assert.is_true(ref:refresh_alive(j.RHDH_REFRESH))
      assert.is_nil(F.get(path, "AAP_TOKEN"))
      assert.equal(app.id, math.tointeger(F.rows(ref)[id].application_id))
      F.expect_ids(ref, F.union(world.ids, { id }))
      F.untouched(ref, world)
    end)

    case("the normal user cannot create an application token: non-zero exit, nothing created", function(ref, world)
      local path = world.dir .. "/.env"
      local r = F.aap("normal", { "token", "create", "--application", "RHDH Integration", "--env-file", path })
      assert.are_not.equal(0, r.code)
      F.expect_ids(ref, world.ids)
      assert.is_nil(F.get(path, "AAP_TOKEN"))
    end)
  end)

  F.describe(B, "reference: token show and token list", function(case)
    local made -- tokens made by aap on top of the unrelated ones
    before_each(function()
      if not F.ref then return end
      local dir = F.world.dir
      made = {}
      local _, id = F.create("admin", dir .. "/a.env")
      made.admin_pat = id
      _, id = F.create("admin", dir .. "/a.env", { "--application", "RHDH Integration" })
      made.admin_app = id
      _, id = F.create("normal", dir .. "/n.env")
      made.normal_pat = id
    end)

    -- The server's ids of the rows for which pred(row) is true.
    local function where(ref, pred)
      local ids = {}
      for _, r in ipairs(ref:db().access) do
        if pred(r) then ids[#ids + 1] = math.tointeger(r.id) end
      end
      table.sort(ids)
      return ids
    end

    local function listed(user, args)
      local argv = { "token", "list", "--format", "json" }
      for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
      local r = F.aap(user, argv)
      F.ok(r, table.concat(argv, " "))
      local ids = {}
      for _, t in ipairs(assert(cjson.decode(r.stdout))) do ids[#ids + 1] = math.tointeger(t.id) end
      table.sort(ids)
      F.no_secrets(r, F.all_secrets(F.ref))
      return ids, r
    end

    case("as the admin, every filter lists exactly the matching server tokens", function(ref)
      local app = ref.seed.applications["RHDH Integration"].id
      local admin, normal = ref.seed.admin.id, ref.seed.normal.id
      local a = tostring(admin)
      assert.equal(6, #ref:ids())
      -- --user in every query: unambiguous whether the default is "all" or "own" for a superuser
      assert.same(where(ref, function(r) return r.user_id == normal end),
        (listed("admin", { "--user", tostring(normal) })))
      assert.same(where(ref, function(r) return r.user_id == admin end), (listed("admin", { "--user", a })))
      assert.same(where(ref, function(r) return r.user_id == admin and r.application_id == nil end),
        (listed("admin", { "--user", a, "--kind", "personal" })))
      assert.same(where(ref, function(r) return r.user_id == admin and r.application_id ~= nil end),
        (listed("admin", { "--user", a, "--kind", "application" })))
      local of_app = where(ref, function(r) return r.application_id == app end)
      assert.equal(2, #of_app)
      assert.same(of_app, (listed("admin", { "--user", a, "--application", "RHDH Integration" })))
      assert.same(of_app, (listed("admin", { "--user", a, "--application", tostring(app) })))
      assert.same({}, (listed("admin", { "--user", tostring(normal), "--kind", "application" })))
    end)

    case("the table lists every token id once, without values", function(ref)
      local r = F.aap("admin", { "token", "list", "--user", tostring(ref.seed.admin.id) })
      F.ok(r, "token list")
      local ids = {}
      for id in r.stdout:gmatch("\n(%d+)%s") do ids[#ids + 1] = math.tointeger(tonumber(id)) end
      table.sort(ids)
      assert.same(ref:ids(ref.seed.admin.id), ids)
      F.no_secrets(r, F.all_secrets(ref))
    end)

    case("as the normal user, token list shows only the caller's own tokens", function(ref)
      local own = where(ref, function(r) return r.user_id == ref.seed.normal.id end)
      assert.equal(2, #own)
      assert.same(own, (listed("normal")))
      assert.same(where(ref, function(r) return r.user_id == ref.seed.normal.id and r.application_id == nil end),
        (listed("normal", { "--kind", "personal" })))
    end)

    case("--all-users is for superusers: the admin sees every user's tokens, the normal user is refused",
      function(ref)
        local app = ref.seed.applications["RHDH Integration"].id
        assert.same(ref:ids(), (listed("admin", { "--all-users" })))
        assert.same(where(ref, function(r) return r.application_id == nil end),
          (listed("admin", { "--all-users", "--kind", "personal" })))
        assert.same(where(ref, function(r) return r.application_id == app end),
          (listed("admin", { "--all-users", "--application", "RHDH Integration" })))
        local r = F.aap("normal", { "token", "list", "--all-users", "--format", "json" })
        assert.are_not.equal(0, r.code, r.stdout)
      end)

    case("token show ID is the server's token; another user's token is refused for the normal user", function(ref)
      local rows = F.rows(ref)
      local shows = { { "admin", made.admin_app }, { "admin", made.normal_pat }, { "normal", made.normal_pat } }
      for _, which in ipairs(shows) do
        local user, id = which[1], which[2]
        local r = F.aap(user, { "token", "show", tostring(id), "--format", "json" })
        F.ok(r, user .. " token show " .. id)
        local t = assert(cjson.decode(r.stdout))
        assert.equal(id, math.tointeger(t.id))
        assert.equal(math.tointeger(rows[id].user_id), math.tointeger(t.user))
        assert.equal(rows[id].application_id and math.tointeger(rows[id].application_id) or nil,
          t.application and math.tointeger(t.application) or nil)
        assert.equal(rows[id].application_id and "application" or "personal", t.kind)
        assert.equal(rows[id].description, t.description)
        F.no_secrets(r, F.all_secrets(ref))
        r = F.aap(user, { "token", "show", tostring(id) })
        F.ok(r, "token show (table)")
        assert.truthy(r.stdout:find("\n" .. id .. "%s"), r.stdout)
      end
      local r = F.aap("normal", { "token", "show", tostring(made.admin_pat) })
      assert.equal(3, r.code, r.stderr)
      r = F.aap("admin", { "token", "show", "9999" })
      assert.equal(2, r.code, r.stderr)
    end)
  end)
end)
