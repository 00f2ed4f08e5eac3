-- A strict policy for a consumer that must never see a dead token: the old token is
-- revoked only once the consumer has demonstrably picked up the new one (the new
-- token's last_used moved after aap's own check), and not before a 15-minute grace.
-- Until then each run reports "old token id=N stays valid: waiting for the consumer".
--
--   aap token rotate --policy examples/policies/strict-wait-for-use.lua --env-file svc.env
--
-- Needs admin credentials (AAP_PASSWORD or AAP_TOKEN): if aap authenticated with the
-- token it rotates, its own use could not be told from the consumer's.
return {
  max_age = "90d",
  renew_before = "14d",
  min_age = "7d",
  strategy = "recreate",
  scope = "read",        -- the consumer only reads; never hand it more
  verify = true,
  grace = "15m",
  wait_for_use = true,   -- revoke the old token only after the consumer used the new one
  -- no max_wait: a consumer that never switches keeps its old token until someone looks
  before_rotate = function(ctx)
    if ctx.old.scope ~= nil and ctx.old.scope ~= "read" then
      return false, "the current token has scope " .. ctx.old.scope .. "; fix that by hand first"
    end
    return true
  end,
  on_rotated = function(ctx)
    -- Tell the consumer to reload, e.g. (no shell; a clean environment; killed after
    -- hook_timeout; a non-zero exit fails the hook, which keeps the old token valid):
    --   ctx:run{ "systemctl", "reload", "my-consumer.service" }
    -- or hand it the new value on stdin, never in argv:
    --   ctx:run{ "my-consumer-ctl", "set-token", stdin = ctx.new:secret(), timeout = "20s" }
    ctx:log("new token id=" .. tostring(ctx.new.id) .. " written; waiting for the consumer to use it")
    return true
  end,
}
