-- The CronJob's rotation policy (deploy/k8s: mounted at /etc/aap/policy.lua from the
-- aap-rotate ConfigMap). The pod keeps nothing between runs: on_state_saved writes aap's state
-- (no secret) back to the Secret aap-rotate-state at every save, so a later run finishes or
-- undoes what a killed one started and revokes the old token once its grace is over
-- (deploy/README.md). on_rotated puts the new token into the RHDH Secret *before* aap revokes
-- the old one.
local SECRET = "rhdh-aap"           -- the Secret RHDH reads (role.yaml allows it and the state's)
local SYNC = "rhdh.redhat.com/ext-config-sync"
-- kubectl finds the API server through these (and the service account token it reads from its
-- mount); AAP_WORK_DIR only moves the work directory for a test.
local KUBE_ENV = { "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG", "AAP_WORK_DIR" }

return {
  max_age = "30d",        -- never keep a token longer than a month
  renew_before = "7d",    -- nor one that expires within a week
  min_age = "1d",         -- a token made today is never replaced again today
  strategy = "recreate",  -- a new token made with the admin credentials (aap-credentials)
  verify = true,          -- GET me/ with the new token before anything is written
  -- RHDH picks the new Secret up within minutes; the old token is revoked by the first run an
  -- hour after the switch (the next day's), from the state kept in the cluster.
  grace = "1h",
  hook_timeout = "2m",
  on_rotated = function(ctx)
    -- Tokens are [A-Za-z0-9]; anything else would need quoting: refuse it (the old token stays).
    local entries = { { ctx.key, ctx.new:secret() } }
    local refresh = ctx.new:refresh_secret()
    if refresh then entries[2] = { "REFRESH_TOKEN", refresh } end
    local data = {}
    for i, e in ipairs(entries) do
      assert(e[1]:match("^[%w_]+$") and e[2] and e[2]:match("^[%w]+$"), "unexpected characters in " .. e[1])
      data[i] = ('  "%s": "%s"\n'):format(e[1], e[2])
    end
    local manifest = table.concat({
      "apiVersion: v1\n", "kind: Secret\n", "metadata:\n",
      ('  name: "%s"\n'):format(SECRET),
      "  labels:\n", ('    "%s": "true"\n'):format(SYNC),
      "type: Opaque\n", "stringData:\n", table.concat(data),
    })
    -- Server-side apply: the values never land in a last-applied-configuration annotation.
    -- The manifest goes on stdin, never in argv.
    ctx:run{ "kubectl", "apply", "--server-side", "--field-manager=aap-rotate", "--force-conflicts",
             "-f", "-", stdin = manifest, env = KUBE_ENV }
    ctx:log(("%s: token id=%s replaced by id=%s in Secret %s"):format(ctx.key, tostring(ctx.old.id),
      tostring(ctx.new.id), SECRET))
  end,
  -- Every state write, also the one before the create request: when the Secret cannot take it
  -- (another run changed it since this one started, or the API server refuses), aap stops there.
  on_state_saved = function(ctx)
    ctx:run{ "aap-state-store", "save", stdin = ctx.state, env = KUBE_ENV }
  end,
}
