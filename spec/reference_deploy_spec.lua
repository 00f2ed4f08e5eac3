-- The Kubernetes CronJob (deploy/k8s: rotate.sh, policy.lua, aap-state-store) against the
-- reference gateway, each run in a fresh pod whose only memory is the state Secret (a stand-in
-- kubectl: spec/k8s_pod.lua). Checked by the server's own tokens after each run: a killed run is
-- finished by the next pod and the old token revoked after its grace, with nothing left over; a
-- run that finds the state changed by another stops before it makes anything.
local F = require("reference_fixture")
local B = { describe = describe, it = it, pending = pending, setup = setup, teardown = teardown,
            before_each = before_each }
local k8s_pod = require("k8s_pod")

local DAY = F.DAY

F.file(B, "reference suite: deploy", function()
  F.describe(B, "reference: the CronJob of deploy/k8s", function(case)
    case("a run killed after it applied the Secret is finished by the next pod; the old token goes after its grace",
      function(ref, world)
        local path = world.dir .. "/.env"
        local old, old_id = F.create("admin", path, { "--application", "RHDH Integration" })
        local pod = k8s_pod.new({ url = ref.url, username = "admin", password = ref.seed.admin.password })
        pod:put("AAP_TOKEN", old)
        pod:put("REFRESH_TOKEN", F.get(path, "REFRESH_TOKEN"))

        local code, out = pod:run()
        assert.equal(0, code, out)
        assert.matches("^keep AAP_TOKEN", out)
        F.expect_ids(ref, F.union(world.ids, { old_id }), "a young token is kept")

        ref:age(old_id, 31 * DAY)
        pod:fault("kill-after-apply", true)
        code, out = pod:run()
        pod:fault("kill-after-apply", false)
        assert.are_not.equal(0, code, out)
        local new = pod:secret("AAP_TOKEN")
        local new_id = ref:id_of(new)
        assert.is_not_nil(new_id, "the applied token is a token on the server")
        F.expect_ids(ref, F.union(world.ids, { old_id, new_id }), "killed after the apply")

        code, out = pod:run()
        assert.equal(0, code, out)
        assert.equal(2, pod:applied())            -- on_rotated again: the apply is idempotent
        assert.equal(new, pod:secret("AAP_TOKEN"))
        assert.is_true(ref:token_works(new))
        assert.is_true(ref:token_works(old))      -- its grace of an hour
        F.expect_ids(ref, F.union(world.ids, { old_id, new_id }), "finished, in the grace")
        local _, st = pod:stored_state()
        assert.equal(new_id, math.tointeger(st.keys.AAP_TOKEN.id))
        assert.equal(old_id, math.tointeger(st.pending[1].id))

        -- The reference has no clock to move: the grace is ended in the stored state.
        pod:edit_state(function(s) for _, e in ipairs(s.pending) do e.not_before = 0 end end)
        code, out = pod:run()
        assert.equal(0, code, out)
        assert.matches("revoked the old token id=" .. old_id, out)
        F.expect_ids(ref, F.union(world.ids, { new_id }), "the old token revoked")
        assert.is_true(ref:token_works(new))
        F.no_secrets({ stdout = out, stderr = "" }, { new, old })
      end)

    case("a run that finds the state changed by another run stops before it makes anything", function(ref, world)
      local path = world.dir .. "/.env"
      local old, old_id = F.create("admin", path, { "--application", "RHDH Integration" })
      local pod = k8s_pod.new({ url = ref.url, username = "admin", password = ref.seed.admin.password })
      pod:put("AAP_TOKEN", old)
      ref:age(old_id, 31 * DAY)
      pod:fault("bump-after-get", true)
      local code, out = pod:run()
      assert.equal(1, code, out)
      assert.matches("another run changed it", out)
      F.expect_ids(ref, F.union(world.ids, { old_id }), "nothing made")
      assert.is_true(ref:token_works(old))
      assert.equal(0, pod:applied())
    end)
  end)
end)
