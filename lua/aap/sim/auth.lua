--- Authentication and the permission rules the views share: who a request is (OAuth2 bearer,
-- then Basic, as DAB's authentication classes), whether its token's scope lets it write, and
-- who may do what (superusers, auditors, external users).
local codec = require("aap.sim.codec")
local respond = require("aap.sim.respond")

local format = string.format
local unauthorized, forbidden = respond.unauthorized, respond.forbidden

local M = {}

local EXTERNAL = "OAuth2 Tokens cannot be created by users associated with an external authentication provider (%s)"
local SAFE = { GET = true, HEAD = true, OPTIONS = true }

--- Authenticate a request as DRF does with DAB's classes: OAuth2 bearer first (a rejected
-- token leaves the request anonymous), then Basic (a bad Basic header is a 401).
-- @tparam table ctx request context
-- @treturn nil; sets ctx.user, ctx.auth, ctx.token, ctx.bearer_error; raises a 401 response
function M.authenticate(ctx)
  local h = ctx.req.headers["authorization"]
  ctx.auth = "none"
  if not h then return end
  local parts = {}
  for p in h:gmatch("%S+") do parts[#parts + 1] = p end
  local scheme = (parts[1] or ""):lower()
  local store = ctx.store
  if scheme == "bearer" then
    ctx.auth = "bearer" -- what was presented, for the log
    if #parts ~= 2 then return end
    local t = store:token_by_value(parts[2])
    local now = store:now()
    if not t then
      ctx.bearer_error = "The access token is invalid."
      return
    end
    if t.expires <= now then
      ctx.bearer_error = "The access token has expired."
      return
    end
    local u = store.users[t.user]
    if not u or not u.is_active then
      ctx.bearer_error = "The access token is invalid."
      return
    end
    t.last_used = now
    ctx.user, ctx.token = u, t
    return
  end
  if scheme ~= "basic" or not ctx.cfg.basic_auth then return end
  ctx.auth = "basic"
  if #parts == 1 then unauthorized(ctx, "Invalid basic header. No credentials provided.") end
  if #parts > 2 then unauthorized(ctx, "Invalid basic header. Credentials string should not contain spaces.") end
  local dec = codec.b64decode(parts[2])
  local userid, password = (dec or ""):match("^([^:]*):(.*)$")
  if not dec or not userid then
    unauthorized(ctx, "Invalid basic header. Credentials not correctly base64 encoded.")
  end
  local u, why = store:authenticate(userid, password)
  if not u then
    unauthorized(ctx, why == "inactive" and "User inactive or deleted." or "Invalid username/password.")
  end
  ctx.user = u
end

--- OAuth2ScopePermission: writes need a `write` token. The October 2024 token and application
-- views do not have it (scope_permission_on_tokens false). Raises the 403.
-- @tparam table ctx an authenticated request context
-- @tparam boolean oauth2_view whether the view is one of the token or application views
function M.check_scope(ctx, oauth2_view)
  if ctx.token and not SAFE[ctx.method] and (not oauth2_view or ctx.ctrl or ctx.cfg.scope_permission_on_tokens) then
    local has_write = false
    for w in ctx.token.scope:gmatch("%S+") do
      if w == "write" then has_write = true end
    end
    if not has_write then forbidden(ctx) end
  end
end

--- Whether a user sees everything (a superuser or a platform auditor).
-- @tparam table u user
-- @treturn boolean
function M.is_admin(u) return u.is_superuser or u.is_platform_auditor end

--- Raise the 403 unless the request's user is a superuser.
-- @tparam table ctx request context
function M.require_superuser(ctx)
  if not ctx.user.is_superuser then forbidden(ctx) end
end

--- Why a user may not have a token (an external user, unless `allow_external_users`), or nil.
-- @tparam table ctx request context
-- @tparam table user
-- @treturn string|nil the answer's text
function M.external_denied(ctx, user)
  if user.external and not ctx.cfg.allow_external_users then
    local who = ctx.ctrl and (user.account_type or "ldap") or user.external
    return "(access_denied) " .. format(EXTERNAL, who)
  end
end

return M
