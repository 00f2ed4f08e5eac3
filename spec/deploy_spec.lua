-- deploy/: the systemd units (systemd-analyze verify, offline), the Kubernetes manifests (their
-- structure read with lua-yaml; `kubectl kustomize` where kubectl is installed - Debian has no
-- package for it, so elsewhere that one check is pending, visibly), and the CronJob's command
-- (deploy/k8s/rotate.sh with policy.lua) run against the emulator with a stand-in kubectl.
local helper = require("helper")
local lyaml = require("lyaml") -- Debian package lua-yaml

local K8S = "deploy/k8s/"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

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
    assert.equal(6, #kust.resources)
    for _, f in ipairs(kust.resources) do assert.is_not_nil(helper.readfile(K8S .. f), f) end
    for _, f in ipairs(kust.configMapGenerator[1].files) do assert.is_not_nil(helper.readfile(K8S .. f), f) end
    for _, kind in ipairs({ "ServiceAccount", "Role", "RoleBinding", "Secret", "CronJob" }) do
      assert.is_table(docs[kind], kind)
    end
  end)

  it("lets the job get, patch and update only the RHDH Secret", function()
    local role = docs.Role["aap-rotate"]
    assert.equal(1, #role.rules)
    local r = role.rules[1]
    assert.same({ "" }, r.apiGroups)
    assert.same({ "secrets" }, r.resources)
    assert.same({ "rhdh-aap" }, r.resourceNames)
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
    assert.equal(7, n)
    assert.is_not_nil(cm.data["policy.lua"])
    assert.is_not_nil(cm.data["rotate.sh"])
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
  local sim, dir, bin, log

  setup(function()
    sim = helper.start_sim()
    dir = helper.tmpdir()
    bin = dir .. "/bin"
    log = dir .. "/kubectl.log"
    os.execute(("mkdir -p %s/bin %s/creds %s/secret %s/work"):format(dir, dir, dir, dir))
    local cwd = assert(io.popen("pwd")):read("l")
    helper.writefile(bin .. "/aap", ("#!/bin/sh\nexec lua5.4 %s/bin/aap \"$@\"\n"):format(cwd), 493)
    -- The stand-in kubectl records its arguments and the manifest it is given on stdin, and
    -- writes the Secret's values back where the pod would see them after the next sync.
    helper.writefile(bin .. "/kubectl", ([[#!/bin/sh
printf '%%s\n' "$*" >> %s
cat >> %s
]]):format(log, log), 493)
    helper.writefile(dir .. "/creds/AAP_HOSTNAME", sim.url)
    helper.writefile(dir .. "/creds/AAP_USERNAME", "admin")
    helper.writefile(dir .. "/creds/AAP_PASSWORD", sim.admin_password .. "\n")
  end)
  teardown(function() assert.is_true((sim:stop())) end)

  -- Each run in a fresh pod: an empty work directory (no env file, no state file from before).
  local function rotate()
    os.execute("rm -rf " .. dir .. "/work")
    local root = assert(io.popen("pwd")):read("l")
    local vars = { PATH = bin .. ":" .. os.getenv("PATH"), HOME = dir,
                   AAP_CPATH = os.getenv("AAP_CPATH") or (root .. "/build"),
                   RHDH_SECRET_DIR = dir .. "/secret", AAP_CREDENTIALS_DIR = dir .. "/creds",
                   AAP_WORK_DIR = dir .. "/work", AAP_POLICY = root .. "/deploy/k8s/policy.lua",
                   -- a sanitizer run keeps its settings in children
                   ASAN_OPTIONS = os.getenv("ASAN_OPTIONS"), UBSAN_OPTIONS = os.getenv("UBSAN_OPTIONS") }
    local words = {}
    for k, v in pairs(vars) do words[#words + 1] = ("'%s=%s'"):format(k, v) end
    return sh(("cd / && env -i %s /bin/sh '%s/deploy/k8s/rotate.sh'"):format(table.concat(words, " "), root))
  end

  it("refuses to start without a token in the Secret, and changes nothing", function()
    local before = sim:token_ids()
    local code, out = rotate()
    assert.equal(1, code, out)
    assert.matches("holds no AAP_TOKEN or AAP_PAT", out)
    assert.same(before, sim:token_ids())
  end)

  it("keeps a fresh token, and replaces a due one: Secret applied server-side, old token revoked", function()
    -- The first token, as deploy/README.md says to put it in.
    local r = helper.run({ "token", "create", "--application", "RHDH Integration", "--format", "json" },
      { env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password } })
    assert.equal(0, r.code, r.stderr)
    local first = require("cjson").decode(r.stdout)
    helper.writefile(dir .. "/secret/AAP_TOKEN", first.AAP_TOKEN)
    helper.writefile(dir .. "/secret/REFRESH_TOKEN", first.REFRESH_TOKEN)

    local code, out = rotate()
    assert.equal(0, code, out)
    assert.matches("^keep AAP_TOKEN", out)
    assert.is_nil(helper.readfile(log), "kubectl ran for a token not due")
    assert.is_true(sim:token_works(first.AAP_TOKEN))

    sim:advance(31 * 86400)   -- past max_age (30d)
    code, out = rotate()
    assert.equal(0, code, out)
    local applied = assert(helper.readfile(log), "kubectl did not run: " .. out)
    local args, manifest = applied:match("^([^\n]*)\n(.*)$")
    assert.equal("apply --server-side --field-manager=aap-rotate --force-conflicts -f -", args)
    local secret = lyaml.load(manifest)
    assert.equal("Secret", secret.kind)
    assert.equal("rhdh-aap", secret.metadata.name)
    assert.equal("true", secret.metadata.labels["rhdh.redhat.com/ext-config-sync"])
    local new = secret.stringData
    assert.is_string(new.AAP_TOKEN)
    assert.is_string(new.REFRESH_TOKEN)
    assert.are_not.equal(first.AAP_TOKEN, new.AAP_TOKEN)
    assert.is_true(sim:token_works(new.AAP_TOKEN))
    assert.is_false(sim:token_works(first.AAP_TOKEN))   -- revoked in the same run (grace 0)
    assert.is_nil(sim:token_id(first.AAP_TOKEN))
    -- No secret in what the run printed.
    assert.is_nil(out:find(new.AAP_TOKEN, 1, true))
    assert.is_nil(out:find(sim.admin_password, 1, true))
  end)

  it("keeps the old token when the Secret cannot be applied (the hook fails): exit 1, one token left over", function()
    local applied = lyaml.load(assert(helper.readfile(log)):match("^[^\n]*\n(.*)$")).stringData
    helper.writefile(dir .. "/secret/AAP_TOKEN", applied.AAP_TOKEN)
    helper.writefile(dir .. "/secret/REFRESH_TOKEN", applied.REFRESH_TOKEN)
    os.remove(log)
    helper.writefile(bin .. "/kubectl", "#!/bin/sh\ncat >/dev/null\necho 'error: forbidden' >&2\nexit 1\n", 493)
    sim:advance(31 * 86400)
    local before = #sim:token_ids()
    local code, out = rotate()
    assert.equal(1, code, out)
    assert.matches("kubectl exited with status 1", out)
    assert.is_true(sim:token_works(applied.AAP_TOKEN))
    -- The gap deploy/README.md names: the new token stays live, and the journal that would let
    -- the next run adopt or delete it went with the pod's emptyDir.
    assert.equal(before + 1, #sim:token_ids())
  end)
end)
