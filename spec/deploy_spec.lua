-- deploy/: the systemd units (systemd-analyze verify, offline), the Kubernetes manifests (their
-- structure read with lua-yaml; `kubectl kustomize` where kubectl is installed - Debian has no
-- package for it, so elsewhere that one check is pending, visibly), and the CronJob's command
-- (deploy/k8s/rotate.sh with policy.lua) run against the emulator with a stand-in kubectl.
local helper = require("helper")
local lyaml = require("lyaml") -- Debian package lua-yaml

local K8S = "deploy/k8s/"

local sh = require("k8s_pod").sh

local function have(cmd) return sh("command -v " .. cmd) == 0 end

local function load_yaml(path)
  local text = assert(helper.readfile(path), path)
  return lyaml.load(text), text
end

describe("deploy/k8s", function()
  local kust = load_yaml(K8S .. "kustomization.yaml")
  local docs = {}
  for _, f in ipairs(kust.resources) do
    local d = load_yaml(K8S .. f)
    docs[d.kind] = docs[d.kind] or {}
    docs[d.kind][d.metadata.name] = d
  end

  it("lists every manifest and generated file that exists, and each is one resource", function()
    assert.equal(7, #kust.resources)
    for _, f in ipairs(kust.resources) do assert.is_not_nil(helper.readfile(K8S .. f), f) end
    for _, f in ipairs(kust.configMapGenerator[1].files) do assert.is_not_nil(helper.readfile(K8S .. f), f) end
    for _, kind in ipairs({ "ServiceAccount", "Role", "RoleBinding", "Secret", "CronJob" }) do
      assert.is_table(docs[kind], kind)
    end
  end)

  it("lets the job get, patch and update only the RHDH Secret and its state's", function()
    local role = docs.Role["aap-rotate"]
    assert.equal(1, #role.rules)
    local r = role.rules[1]
    assert.same({ "" }, r.apiGroups)
    assert.same({ "secrets" }, r.resources)
    assert.same({ "rhdh-aap", "aap-rotate-state" }, r.resourceNames)
    assert.same({ "get", "patch", "update" }, r.verbs)
    local rb = docs.RoleBinding["aap-rotate"]
    assert.same({ apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = "aap-rotate" }, rb.roleRef)
    assert.same({ { kind = "ServiceAccount", name = "aap-rotate" } }, rb.subjects)
    assert.is_not_nil(docs.ServiceAccount["aap-rotate"])
  end)

  it("labels the RHDH Secret for RHDH's config sync, and the policy's hook applies that Secret", function()
    local s = docs.Secret["rhdh-aap"]
    assert.equal("true", s.metadata.labels["rhdh.redhat.com/ext-config-sync"])
    local policy = assert(helper.readfile(K8S .. "policy.lua"))
    assert.matches('local SECRET = "rhdh%-aap"', policy)
    assert.matches('"%-%-server%-side"', policy)
  end)

  it("keeps the state in its own Secret, not synced to RHDH, written by the store the policy runs", function()
    local s = docs.Secret["aap-rotate-state"]
    assert.is_nil(s.metadata.labels["rhdh.redhat.com/ext-config-sync"])
    assert.is_nil(s.data)
    assert.is_nil(s.stringData)
    local policy = assert(helper.readfile(K8S .. "policy.lua"))
    assert.matches('on_state_saved = function%(ctx%)%s+ctx:run{ "aap%-state%-store", "save", stdin = ctx.state', policy)
    -- run by name from the ConfigMap's mount: it must be executable there and in the checkout
    local files = kust.configMapGenerator[1].files
    assert.is_truthy(table.concat(files, " "):find("aap-state-store", 1, true))
    local cj = docs.CronJob["aap-rotate"].spec.jobTemplate.spec.template.spec
    for _, v in ipairs(cj.volumes) do
      if v.configMap then assert.equal(tonumber("555", 8), v.configMap.defaultMode) end
    end
    assert.equal(0, (sh("test -x " .. K8S .. "aap-state-store")))
  end)

  it("runs the CronJob as that account, unprivileged, with the secrets as read-only files", function()
    local cj = docs.CronJob["aap-rotate"]
    assert.equal("Forbid", cj.spec.concurrencyPolicy)
    local pod = cj.spec.jobTemplate.spec.template.spec
    assert.equal("aap-rotate", pod.serviceAccountName)
    assert.is_true(pod.securityContext.runAsNonRoot)
    assert.equal(1, #pod.containers)
    local c = pod.containers[1]
    assert.same({ "/bin/sh", "/etc/aap/rotate.sh" }, c.command)
    assert.is_false(c.securityContext.allowPrivilegeEscalation)
    assert.is_true(c.securityContext.readOnlyRootFilesystem)
    assert.same({ "ALL" }, c.securityContext.capabilities.drop)
    for _, e in ipairs(c.env or {}) do
      assert.is_nil(e.valueFrom, "no secret in the environment: " .. e.name)
    end
    local volumes = {}
    for _, v in ipairs(pod.volumes) do volumes[v.name] = v end
    local mounts = {}
    for _, m in ipairs(c.volumeMounts) do mounts[m.mountPath] = m end
    assert.equal("aap-credentials", volumes[mounts["/var/run/aap-credentials"].name].secret.secretName)
    assert.equal("rhdh-aap", volumes[mounts["/var/run/rhdh-aap"].name].secret.secretName)
    assert.equal("aap-rotate", volumes[mounts["/etc/aap"].name].configMap.name)
    assert.equal("Memory", volumes[mounts["/run/aap"].name].emptyDir.medium)
    for path, m in pairs(mounts) do
      if path ~= "/run/aap" then assert.is_true(m.readOnly, path) end
    end
  end)

  local kubectl = have("kubectl")
  ;(kubectl and it or pending)("renders with kubectl kustomize, offline" ..
      (kubectl and "" or " (kubectl is not installed: Debian has no package for it)"), function()
    local code, out = sh("kubectl kustomize " .. K8S)
    assert.equal(0, code, out)
    local n, cm = 0, nil
    for _, d in ipairs(lyaml.load(out, { all = true })) do
      n = n + 1
      assert.equal("rhdh", d.metadata.namespace, d.kind)
      if d.kind == "ConfigMap" then cm = d end
    end
    assert.equal(8, n)
    assert.is_not_nil(cm.data["policy.lua"])
    assert.is_not_nil(cm.data["rotate.sh"])
    assert.is_not_nil(cm.data["aap-state-store"])
  end)
end)

describe("deploy/k8s shell scripts", function()
  local shellcheck = have("shellcheck")
  local why = shellcheck and "" or " (shellcheck is not installed)"
  ;(shellcheck and it or pending)("pass shellcheck" .. why, function()
    local code, out = sh("shellcheck " .. K8S .. "rotate.sh " .. K8S .. "aap-state-store")
    assert.equal(0, code, out)
  end)
end)

describe("deploy/systemd", function()
  local analyze = have("systemd-analyze")
  ;(analyze and it or pending)("passes systemd-analyze verify and a security threshold" ..
      (analyze and "" or " (systemd-analyze is not installed)"), function()
    local dir = helper.tmpdir()
    local unit = assert(helper.readfile("deploy/systemd/aap-rotate.service"))
    -- verify checks that ExecStart's program exists: point it at this checkout's bin/aap.
    local cwd = assert(io.popen("pwd")):read("l")
    local n
    unit, n = unit:gsub("ExecStart=/usr/local/bin/aap ", "ExecStart=" .. cwd .. "/bin/aap ")
    assert.equal(1, n)
    helper.writefile(dir .. "/aap-rotate.service", unit)
    helper.writefile(dir .. "/aap-rotate.timer", assert(helper.readfile("deploy/systemd/aap-rotate.timer")))
    local code, out = sh(("cd %s && systemd-analyze verify aap-rotate.service aap-rotate.timer"):format(dir))
    assert.equal(0, code, out)
    assert.equal("", out)   -- an unknown or misspelt setting is only a warning: none allowed
    code, out = sh(("cd %s && systemd-analyze security --offline=yes --threshold=25 aap-rotate.service"):format(dir))
    assert.equal(0, code, out)
    assert.matches("Overall exposure level for aap%-rotate%.service: [0-2]%.%d", out)
  end)

  it("passes the password as a credential, never in Environment=", function()
    local unit = assert(helper.readfile("deploy/systemd/aap-rotate.service"))
    assert.matches("\nLoadCredential=aap%-password:", unit)
    assert.matches("\nEnvironment=AAP_PASSWORD_FILE=%%d/aap%-password\n", unit)
    assert.is_nil(unit:match("\nEnvironment=AAP_PASSWORD="))
    for _, k in ipairs({ "ProtectSystem=strict", "ReadWritePaths=/var/lib/aap", "NoNewPrivileges=yes" }) do
      assert.matches("\n" .. k:gsub("%p", "%%%0") .. "\n", unit)
    end
  end)
end)

describe("deploy/k8s/rotate.sh with policy.lua (the CronJob's run)", function()
  local sim, pod

  setup(function()
    sim = helper.start_sim()
    pod = require("k8s_pod").new({ url = sim.url, password = sim.admin_password, no_state_secret = true })
  end)
  teardown(function() assert.is_true((sim:stop())) end)

  local function no_secret_in(out)
    for _, k in ipairs({ "AAP_TOKEN", "REFRESH_TOKEN" }) do
      local v = pod:secret(k)
      if v then assert.is_nil(out:find(v, 1, true), "a token was printed") end
    end
    assert.is_nil(out:find(sim.admin_password, 1, true))
  end

  it("refuses to start without a token in the Secret, and changes nothing", function()
    local before = sim:token_ids()
    local code, out = pod:run()
    assert.equal(1, code, out)
    assert.matches("holds no AAP_TOKEN or AAP_PAT", out)
    assert.same(before, sim:token_ids())
  end)

  it("refuses to start without the state Secret, and changes nothing", function()
    -- The first token, as deploy/README.md says to put it in.
    local r = helper.run({ "token", "create", "--application", "RHDH Integration", "--format", "json" },
      { env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password } })
    assert.equal(0, r.code, r.stderr)
    local first = require("cjson").decode(r.stdout)
    pod:put("AAP_TOKEN", first.AAP_TOKEN)
    pod:put("REFRESH_TOKEN", first.REFRESH_TOKEN)
    local before = sim:token_ids()
    sim:advance(31 * 86400)
    local code, out = pod:run()
    assert.equal(1, code, out)
    assert.matches("cannot read the Secret aap%-rotate%-state", out)
    assert.same(before, sim:token_ids())
    assert.equal(0, pod:applied())
    sim:advance(-31 * 86400)
    -- As secret-state.yaml creates it: empty.
    pod:create_state_secret()
  end)

  it("keeps a fresh token; replaces a due one (Secret applied server-side), revokes the old one a run later", function()
    local first = pod:secret("AAP_TOKEN")
    local code, out = pod:run()
    assert.equal(0, code, out)
    assert.matches("^keep AAP_TOKEN", out)
    assert.equal(0, pod:applied(), "kubectl applied a Secret for a token not due")
    assert.is_true(sim:token_works(first))

    sim:advance(31 * 86400)   -- past max_age (30d)
    code, out = pod:run()
    assert.equal(0, code, out)
    local args, manifest = pod:first_apply()
    assert.equal("apply --server-side --field-manager=aap-rotate --force-conflicts -f -", args)
    local doc = lyaml.load(manifest)
    assert.equal("Secret", doc.kind)
    assert.equal("rhdh-aap", doc.metadata.name)
    assert.equal("true", doc.metadata.labels["rhdh.redhat.com/ext-config-sync"])
    local new = doc.stringData
    assert.is_string(new.REFRESH_TOKEN)
    assert.are_not.equal(first, new.AAP_TOKEN)
    assert.is_true(sim:token_works(new.AAP_TOKEN))
    no_secret_in(out)
    -- The old token lives through its grace; the pod is gone, the state is in the cluster.
    assert.is_true(sim:token_works(first))
    local _, st = pod:stored_state()
    assert.equal(sim:token_id(first), st.pending[1].id)
    assert.equal(sim:token_id(new.AAP_TOKEN), st.keys.AAP_TOKEN.id)

    sim:advance(2 * 3600)     -- the next run, past the grace of 1h: a new pod, the same state
    code, out = pod:run()
    assert.equal(0, code, out)
    assert.matches("revoked the old token id=", out)
    assert.is_false(sim:token_works(first))
    assert.is_true(sim:token_works(new.AAP_TOKEN))
    assert.equal(1, pod:applied())
    _, st = pod:stored_state()
    assert.same({}, st.pending)
  end)

  it("stops before the create request when another run changed the state meanwhile", function()
    local current = pod:secret("AAP_TOKEN")
    sim:advance(31 * 86400)
    local before = sim:token_ids()
    local rv = pod:stored_state()
    pod:fault("bump-after-get", true)
    local code, out = pod:run()
    pod:fault("bump-after-get", false)
    assert.equal(1, code, out)
    assert.matches("another run changed it", out)
    assert.same(before, sim:token_ids())
    assert.is_true(sim:token_works(current))
    assert.equal(1, pod:applied())
    assert.equal(tostring(tonumber(rv) + 1), (pod:stored_state()))   -- only the other run's write
  end)

  it("when the Secret cannot be applied: exit 1, the old token kept; the next run starts over", function()
    local old = pod:secret("AAP_TOKEN")
    pod:fault("fail-apply", true)
    local before = sim:token_ids()
    local code, out = pod:run()
    pod:fault("fail-apply", false)
    assert.equal(1, code, out)
    assert.matches("kubectl exited with status 1", out)
    assert.is_true(sim:token_works(old))
    assert.equal(old, pod:secret("AAP_TOKEN"))
    local made = #sim:token_ids() - #before
    assert.equal(1, made)
    local _, st = pod:stored_state()
    local leftover = math.tointeger(st.keys.AAP_TOKEN.id)
    assert.equal(false, st.pending[1].hooks_done)

    -- The next pod rebuilds the env file from the Secret, which still holds the old token: the
    -- switch never happened. Neither the hook nor the revocation runs for it; the old token is
    -- still due, so it is replaced now, and the token the failed run made is named.
    code, out = pod:run()
    assert.equal(0, code, out)
    assert.matches("the rotation is dropped, the old token id=" .. sim:token_id(old) .. " is not revoked, and token id="
      .. leftover .. " is left live", out)
    assert.are_not.equal(old, pod:secret("AAP_TOKEN"))
    assert.is_true(sim:token_works(pod:secret("AAP_TOKEN")))
    assert.is_true(sim:token_works(old))          -- its grace
    assert.equal(2, pod:applied())
    sim:advance(2 * 3600)
    code, out = pod:run()
    assert.equal(0, code, out)
    assert.is_false(sim:token_works(old))
    no_secret_in(out)
  end)

  it("finishes a run killed right after it applied the Secret, and leaves no orphan", function()
    local old = pod:secret("AAP_TOKEN")
    local old_id = sim:token_id(old)
    sim:advance(31 * 86400)
    local before = #sim:token_ids()
    pod:fault("kill-after-apply", true)
    local code, killed = pod:run()
    pod:fault("kill-after-apply", false)
    assert.are_not.equal(0, code, killed)
    local new = pod:secret("AAP_TOKEN")
    assert.are_not.equal(old, new)                 -- the Secret was applied before the pod died
    assert.equal(before + 1, #sim:token_ids(), killed)

    local out
    code, out = pod:run()                          -- a new pod, from the state in the cluster
    assert.equal(0, code, out)
    assert.equal(new, pod:secret("AAP_TOKEN"))
    assert.is_true(sim:token_works(new))
    assert.is_true(sim:token_works(old))          -- its grace
    sim:advance(2 * 3600)
    code, out = pod:run()
    assert.equal(0, code, out)
    assert.matches("revoked the old token id=" .. old_id, out)
    assert.is_false(sim:token_works(old))
    assert.equal(before, #sim:token_ids())        -- one made, one revoked: nothing left over
    local _, st = pod:stored_state()
    assert.same({}, st.pending)
    assert.equal(sim:token_id(new), st.keys.AAP_TOKEN.id)
  end)
end)
