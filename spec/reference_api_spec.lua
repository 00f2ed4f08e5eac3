-- The Lua API's documented session calls (README "The Lua API") against the reference
-- gateway, each checked against its database; and scripts/demo.sh run against it as a real
-- gateway (GATEWAY=...): it must leave none of its tokens behind and delete nothing else.
local helper = require("helper")
local F = require("reference_fixture")
local aap = require("aap")
local B = { describe = describe, it = it, pending = pending, setup = setup, teardown = teardown,
            before_each = before_each }

F.file(B, "reference suite: Lua API and demo", function()
  F.describe(B, "reference: the Lua API", function(case)
    local function session(ref, user)
      user = user or "admin"
      return assert(aap.connect({ url = ref.url, username = user, password = ref.seed[user].password }))
    end

    local function ids_of(list)
      local ids = {}
      for i, t in ipairs(list) do ids[i] = t.id end
      table.sort(ids)
      return ids
    end

    case("ping, me, flavor", function(ref)
      local s <close> = session(ref)
      assert.equal("good", assert(s:ping()).status)
      assert.equal("gateway", s:flavor())
      local me = assert(s:me())
      assert.equal(ref.seed.admin.id, me.id)
      assert.is_true(me.is_superuser)
      local n <close> = session(ref, "normal")
      assert.equal(ref.seed.normal.id, assert(n:me()).id)
    end)

    case("create_token, token, update_token, delete_token act on exactly the token meant", function(ref, world)
      local s <close> = session(ref)
      local pat = assert(s:create_token({ description = "api PAT", scope = "write" }))
      assert.equal(ref:id_of(pat.token), pat.id)
      assert.equal("personal", pat.kind)
      assert.is_nil(tostring(pat):find(pat.token, 1, true))
      F.expect_ids(ref, F.union(world.ids, { pat.id }))
      local got = assert(s:token(pat.id))
      assert.equal(pat.id, got.id)
      assert.equal(ref.seed.admin.id, got.user)
      assert.equal("api PAT", got.description)
      assert.is_true(got.masked)
      local upd = assert(s:update_token(pat.id, { description = "api PAT renamed" }))
      assert.equal("api PAT renamed", upd.description)
      assert.equal("api PAT renamed", F.rows(ref)[pat.id].description)
      assert.equal(pat.token, F.rows(ref)[pat.id].token)
      assert.is_true(assert(s:delete_token(pat.id)))
      F.expect_ids(ref, world.ids)
      local _, err = s:token(pat.id)
      assert.equal("not_found", err.code)
      F.untouched(ref, world)
    end)

    case("an application token: create_token, refresh, revoke on the server", function(ref, world)
      local app = ref.seed.applications["RHDH Integration"]
      local s <close> = session(ref)
      local tok = assert(s:create_token({ application = app.id, scope = "read", description = "api app" }))
      assert.equal("application", tok.kind)
      assert.equal(ref:id_of(tok.token), tok.id)
      assert.equal(app.id, F.rows(ref)[tok.id].application_id)
      assert.is_true(ref:refresh_alive(tok.refresh_token))
      local new = assert(s:refresh({ refresh_token = tok.refresh_token, client_id = app.client_id,
                                     client_secret = app.client_secret }))
      assert.is_nil(ref:id_of(tok.token))
      assert.is_false(ref:refresh_alive(tok.refresh_token))
      local new_id = ref:id_of(new.token)
      assert.truthy(new_id)
      assert.equal("read", F.rows(ref)[new_id].scope)
      assert.is_true(ref:refresh_alive(new.refresh_token))
      F.expect_ids(ref, F.union(world.ids, { new_id }))
      assert.is_true(assert(s:revoke({ token = new.refresh_token, client_id = app.client_id,
                                       client_secret = app.client_secret, token_type_hint = "refresh_token" })))
      assert.is_false(ref:refresh_alive(new.refresh_token))
      assert.is_nil(ref:id_of(new.token), "revoking a refresh token deletes its access token (pre-hashing code)")
      F.expect_ids(ref, world.ids)
      F.untouched(ref, world)
    end)

    case("tokens and each_token list exactly the server's tokens, with filters", function(ref, world)
      local s <close> = session(ref)
      local pat = assert(s:create_token({ description = "api PAT" }))
      local all = ref:ids()
      assert.same(all, ids_of(assert(s:tokens({}))))
      assert.same(ref:ids(ref.seed.normal.id), ids_of(assert(s:tokens({ user = ref.seed.normal.id }))))
      local app = ref.seed.applications["RHDH Integration"].id
      assert.same({ world.unrelated[3].id }, ids_of(assert(s:tokens({ application = app }))))
      local seen = {}
      for t, err in s:each_token({ order_by = "-id" }) do
        assert(t, tostring(err))
        seen[#seen + 1] = t.id
      end
      assert.equal(pat.id, seen[1])
      table.sort(seen)
      assert.same(all, seen)
    end)

    case("applications, application, create_application; the new client refreshes its token", function(ref, world)
      local s <close> = session(ref)
      local names = {}
      for _, a in ipairs(assert(s:applications({}))) do names[a.name] = a.id end
      assert.same({ ["my-client-app"] = ref.seed.applications["my-client-app"].id,
                    ["RHDH Integration"] = ref.seed.applications["RHDH Integration"].id }, names)
      local rhdh = ref.seed.applications["RHDH Integration"]
      assert.equal(rhdh.id, assert(require("aap.apps").find(s, "RHDH Integration")).id)
      assert.equal("RHDH Integration", assert(s:application(rhdh.id)).name)
      local _, err = require("aap.apps").find(s, "no such application")
      assert.equal("not_found", err.code)
      local app = assert(s:create_application({ name = "api app", organization = ref.seed.organization_id }))
      assert.truthy(app.client_secret and app.client_secret ~= "$encrypted$")
      local tok = assert(s:create_token({ application = app.id }))
      local new = assert(s:refresh({ refresh_token = tok.refresh_token, client_id = app.client_id,
                                     client_secret = app.client_secret }))
      local new_id = ref:id_of(new.token)
      assert.truthy(new_id)
      assert.equal(app.id, F.rows(ref)[new_id].application_id)
      F.expect_ids(ref, F.union(world.ids, { new_id }))
      F.untouched(ref, world)
    end)
  end)

  F.describe(B, "reference: scripts/demo.sh against it as a real gateway", function(case)
    case("leaves none of its tokens behind and deletes nothing else", function(ref, world)
      local app = ref.seed.applications["RHDH Integration"]
      -- secrets go through a 0600 file the shell sources, never argv
      local dir = world.dir
      local lines = {}
      for k, v in pairs({ GATEWAY = ref.url, AAP_USERNAME = "admin", AAP_PASSWORD = ref.seed.admin.password,
                          AAP_CLIENT_ID = app.client_id, AAP_CLIENT_SECRET = app.client_secret,
                          PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), AAP_CPATH = os.getenv("AAP_CPATH") }) do
        lines[#lines + 1] = ("export %s=%s"):format(k, helper.shquote(v))
      end
      helper.writefile(dir .. "/env", table.concat(lines, "\n") .. "\n", 384)
      local cmd = ("env -i /bin/sh -c %s"):format(helper.shquote((". %s; exec bash %s >%s 2>&1"):format(
        helper.shquote(dir .. "/env"), helper.shquote(helper.ROOT .. "/scripts/demo.sh"),
        helper.shquote(dir .. "/out"))))
      local _, _, code = os.execute(cmd)
      local out = helper.readfile(dir .. "/out") or ""
      F.untouched(ref, world)
      assert.equal(0, code, out)
      F.expect_ids(ref, world.ids, "after the demo")
      for _, v in ipairs({ ref.seed.admin.password, app.client_secret }) do
        assert.is_nil(out:find(v, 1, true), "a secret in the demo's output")
      end
    end)
  end)
end)
