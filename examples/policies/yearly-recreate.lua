-- Yearly rotation of a personal access token (or an application token) by creating a
-- new one: the gateway's default lifetime is one year, so the token is replaced inside
-- the last 30 days of its life, and in any case once it is a year old.
--
--   aap token rotate --policy examples/policies/yearly-recreate.lua --env-file .env
--
-- Run it daily (cron, a systemd timer, a CI schedule): on most days it prints
-- "keep ...: not due" and changes nothing.
return {
  max_age = "365d",      -- never keep a token longer than a year
  renew_before = "30d",  -- replace it when it expires within 30 days
  min_age = "1d",        -- a token made today is never replaced again today
  strategy = "recreate", -- create a new token (needs AAP_PASSWORD or AAP_TOKEN, or the PAT itself)
  verify = true,         -- prove the new token works (GET me/) before writing it
  grace = "1h",          -- the old token keeps working for an hour after the switch;
                         -- the next run after that revokes it
  on_rotated = function(ctx)
    -- ctx.old and ctx.new describe the tokens; ctx.new:secret() is the new value.
    ctx:log(("%s in %s: token id=%s replaced by id=%s"):format(ctx.key, ctx.env_file,
      tostring(ctx.old.id), tostring(ctx.new.id)))
  end,
}
