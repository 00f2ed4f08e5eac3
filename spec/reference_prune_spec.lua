-- `aap token prune` against the reference gateway: a dry run deletes nothing; a real run
-- deletes exactly the selected tokens; a token kept through --keep-env-file (a file the
-- lesson's curl wrote: no state file) survives; the normal user only ever selects and
-- deletes their own tokens.
local F = require("reference_fixture")
local B = { describe = describe, it = it, pending = pending, setup = setup, teardown = teardown,
            before_each = before_each }

-- The ids in the first column of prune's table (the candidates it shows).
local function shown(stdout)
  local ids = {}
  for id in stdout:gmatch("\n(%d+)%s") do ids[#ids + 1] = math.tointeger(tonumber(id)) end
  table.sort(ids)
  return ids
end

F.file(B, "reference suite: prune", function()
  F.describe(B, "reference: token prune", function(case)
    local t -- the tokens of a test, beyond the unrelated ones
    before_each(function()
      local ref = F.ref
      if not ref then return end
      local dir = F.world.dir
      t = {
        kept = F.raw_token(ref, "admin", { description = "prune-me but kept", scope = "write" }),
        p1 = F.raw_token(ref, "admin", { description = "prune-me one", scope = "write" }),
        p2 = F.raw_token(ref, "admin", { description = "prune-me two", scope = "read" }),
        n1 = F.raw_token(ref, "normal", { description = "prune-me normal", scope = "write" }),
        nkept = F.raw_token(ref, "normal", { description = "prune-me normal but kept", scope = "write" }),
        keep_file = dir .. "/kept.env",
        nkeep_file = dir .. "/normal-kept.env",
      }
      -- written as the lesson's curl does: no state file beside them
      F.curl_env(t.keep_file, { { "AAP_PAT", t.kept.token } })
      F.curl_env(t.nkeep_file, { { "AAP_PAT", t.nkept.token } })
    end)

    local function prune(user, args)
      local argv = { "token", "prune", "--unused-for", "0s", "--description-like", "prune-me" }
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      return F.aap(user, argv)
    end

    -- With --keep-env-file naming a file without a state file, aap either proves which token the
    -- value is and goes on (exit 0: `ok(r)` checks the outcome), or deletes nothing and says
    -- why (non-zero exit).
    local function done_or_refused(ref, r, before, ok)
      if r.code == 0 then return ok(r) end
      assert.same(before, ref:ids(), "non-zero exit, yet tokens were deleted: " .. r.stderr)
      assert.truthy(r.stderr:find("aap: ", 1, true), r.stderr)
    end

    case("dry run as the admin: shows exactly the selected tokens, deletes nothing", function(ref, world)
      local before = ref:ids()
      local r = prune("admin", { "--all-users", "--keep-env-file", t.keep_file, "--keep-env-file", t.nkeep_file,
        "--dry-run" })
      assert.same(before, ref:ids())
      done_or_refused(ref, r, before, function()
        assert.same(F.union({ t.p1.id, t.p2.id, t.n1.id }), shown(r.stdout))
        assert.truthy(r.stdout:find("would revoke 3 of", 1, true), r.stdout)
      end)
      F.no_secrets(r, F.all_secrets(ref))
      F.untouched(ref, world)
    end)

    case("as the admin: deletes exactly the selected tokens; the kept ones (curl-written files) survive",
      function(ref, world)
        local before = ref:ids()
        local r = prune("admin", { "--all-users", "--keep-env-file", t.keep_file, "--keep-env-file", t.nkeep_file,
          "--yes" })
        F.untouched(ref, world)
        assert.truthy(ref:id_of(t.kept.token), "the admin's kept token survives")
        assert.truthy(ref:id_of(t.nkept.token), "the normal user's kept token survives")
        done_or_refused(ref, r, before, function()
          F.expect_ids(ref, F.union(world.ids, { t.kept.id, t.nkept.id }))
        end)
        assert.is_true(ref:token_works(t.kept.token))
        F.no_secrets(r, F.all_secrets(ref))
      end)

    case("as the admin, the filters narrow the selection (--user, --kind)", function(ref, world)
      local r = prune("admin", { "--user", tostring(ref.seed.normal.id), "--dry-run" })
      F.ok(r, "prune --user --dry-run")
      assert.same(F.union({ t.n1.id, t.nkept.id }), shown(r.stdout))
      r = prune("admin", { "--user", tostring(ref.seed.admin.id), "--kind", "personal", "--yes" })
      F.untouched(ref, world)
      F.ok(r, "prune --user --kind --yes")
      F.expect_ids(ref, F.union(world.ids, { t.n1.id, t.nkept.id }))
    end)

    case("dry run as the normal user: selects only the caller's own tokens", function(ref, world)
      local before = ref:ids()
      local r = prune("normal", { "--dry-run" })
      F.ok(r, "prune --dry-run as normal")
      assert.same(before, ref:ids())
      assert.same(F.union({ t.n1.id, t.nkept.id }), shown(r.stdout))
      F.untouched(ref, world)
    end)

    case("as the normal user: deletes only the caller's selected tokens, no permission error", function(ref, world)
      local r = prune("normal", { "--yes" })
      F.untouched(ref, world)
      F.ok(r, "prune --yes as normal")
      assert.is_nil(r.stderr:find("403", 1, true), r.stderr)
      F.expect_ids(ref, F.union(world.ids, { t.kept.id, t.p1.id, t.p2.id }))
    end)

    case("as the normal user with --keep-env-file (curl-written): the kept token survives", function(ref, world)
      local before = ref:ids()
      local r = prune("normal", { "--keep-env-file", t.nkeep_file, "--yes" })
      F.untouched(ref, world)
      assert.truthy(ref:id_of(t.nkept.token), "the normal user's kept token survives")
      done_or_refused(ref, r, before, function()
        F.expect_ids(ref, F.union(world.ids, { t.kept.id, t.p1.id, t.p2.id, t.nkept.id }))
      end)
    end)
  end)
end)
