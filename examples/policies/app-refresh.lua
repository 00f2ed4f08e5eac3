-- Application tokens rotated with their refresh token (POST /o/token/): no admin
-- credentials needed, only the application's client id and secret (AAP_CLIENT_ID,
-- AAP_CLIENT_SECRET, in the environment or the env file).
--
--   aap token rotate --policy examples/policies/app-refresh.lua --env-file app.env
--
-- The gateway deletes the old access token the moment it answers a refresh (API doc
-- §8.3), so there is no grace period: the new pair is written at once. A refresh token
-- expires about 30 days after it was issued (REFRESH_TOKEN_EXPIRE_SECONDS = 2628000),
-- so refresh well before that: every 25 days here. If the refresh fails anyway
-- (invalid_grant, expired refresh token) and admin credentials are available, aap
-- creates a new application token instead, keeping the old one for `grace`.
return {
  max_age = "25d",       -- refresh before the 30.4-day refresh token expires
  renew_before = "7d",   -- and when the access token itself is close to its end
  strategy = "refresh",
  verify = true,
  grace = "10m",         -- only used when falling back to creating a new token
  before_rotate = function(ctx)
    if ctx.old.kind ~= "application" then
      return false, "this policy is for application tokens"
    end
    return true
  end,
  on_error = function(ctx)
    ctx:log("rotation of " .. ctx.key .. " failed: " .. ctx.error.message)
  end,
}
