--- The OAuth2 provider's endpoints (django-oauth-toolkit behind DAB): `/o/token/` (the
-- password and refresh_token grants), `/o/revoke_token/` and `/o/authorize/` (the controller's
-- under `/api/o/`). They answer as DOT does, not as DRF: their own JSON, plain-text errors.
local json = require("aap.sim.json")
local codec = require("aap.sim.codec")
local fields = require("aap.sim.fields")
local store_mod = require("aap.sim.store")
local respond = require("aap.sim.respond")
local request = require("aap.sim.request")
local auth = require("aap.sim.auth")

local obj, put = json.obj, json.put
local format = string.format
local raise, plain, server_error = respond.raise, respond.plain, respond.server_error
local external_denied = auth.external_denied
local FORM, MULTIPART = request.FORM, request.MULTIPART

local M = {}

local function oauth_json(status, body, extra)
  local h = { { "Content-Type", "application/json" }, { "Cache-Control", "no-store" }, { "Pragma", "no-cache" } }
  for _, x in ipairs(extra or {}) do h[#h + 1] = x end
  return { status = status, headers = h, body = json.encode_oauth(body) }
end

local function oauth_error(err, desc, status)
  local body = obj{ "error", err }
  if desc and desc ~= "" then put(body, "error_description", desc) end
  local extra
  status = status or 400
  if status == 401 then
    local v = 'Bearer error="' .. err .. '"'
    if desc and desc ~= "" then v = v .. ', error_description="' .. desc .. '"' end
    extra = { { "WWW-Authenticate", v } }
  end
  raise(oauth_json(status, body, extra))
end

local function oauth_form(ctx)
  local mt, params = codec.media_type(ctx.req.headers["content-type"])
  local body = ctx.req.body or ""
  if mt == FORM then return codec.parse_map(body) end
  if mt == MULTIPART then return codec.parse_multipart(body, params.boundary) or {} end
  return {}
end

-- DOT's client authentication: HTTP Basic first (scheme word case-sensitive), then form fields.
local function client_auth(ctx, form)
  local store = ctx.store
  local h = ctx.req.headers["authorization"]
  local basic
  if h then
    local typ, rest = h:match("^([^ ]*) (.*)$")
    if typ == "Basic" then basic = rest end
  end
  local function basic_ok()
    if not basic then return nil end
    local dec = codec.b64decode(basic)
    if not dec or not utf8.len(dec) then return nil end
    local id, secret = dec:match("^([^:]*):(.*)$")
    if not id then return nil end
    id, secret = codec.unquote_plus(id), codec.unquote_plus(secret)
    local app = store:app_by_client_id(id)
    if app and store_mod.secret_matches(app.secret_hash, secret) then return app end
  end
  local function body_ok()
    local app = store:app_by_client_id(form.client_id)
    if app and store_mod.secret_matches(app.secret_hash, form.client_secret or "") then return app end
  end
  local required = true
  if not basic and not (form.client_id and form.client_secret) then
    local app = store:app_by_client_id(form.client_id)
    if app then required = app.client_type == "confidential" end
    if app and not required then return app end
  end
  local app = basic_ok() or body_ok()
  if not app then oauth_error("invalid_client", nil, 401) end
  return app
end

local function split_scopes(s)
  local out = {}
  for w in s:gmatch("%S+") do out[#out + 1] = w end
  return out
end

local function grant_response(ctx, t, value, rvalue)
  local cfg = ctx.cfg
  local body = obj{ "access_token", value, "expires_in", cfg.access_token_lifetime, "token_type", "Bearer",
                    "scope", t.scope, "refresh_token", rvalue }
  return oauth_json(ctx.ctrl and 200 or 201, body)
end

local function issue(ctx, user, app, scope, source)
  local denied = external_denied(ctx, user)
  if denied then raise(plain(403, denied)) end
  local sys = ctx.store:system_user()
  local t, value, rvalue = ctx.store:create_token{
    user = user.id, application = app.id, description = "", scope = scope,
    created_by = sys and sys.id or nil, source_refresh = source, with_refresh = true,
  }
  t.refresh.scope = scope
  return grant_response(ctx, t, value, rvalue)
end

local function token_endpoint(ctx)
  local store, cfg = ctx.store, ctx.cfg
  local form = oauth_form(ctx)
  -- DAB checks refresh-token expiry before anything else, client authentication included.
  if form.grant_type == "refresh_token" and form.refresh_token then
    local r = store:refresh_by_value(form.refresh_token)
    if r and r.created + cfg.refresh_token_lifetime * 1000000 < store:now() then
      return plain(403, "The refresh token has expired.")
    end
  end
  if ctx.req.query ~= "" then
    return plain(400, "(invalid_request) URL query parameters are not allowed")
  end
  local gt = form.grant_type
  if gt == "refresh_token" then
    if not form.refresh_token then oauth_error("invalid_request", "Missing refresh token parameter.") end
    local app = client_auth(ctx, form)
    local r = store:refresh_by_value(form.refresh_token)
    if not r or r.revoked or r.application ~= app.id then oauth_error("invalid_grant") end
    if not r.access then
      -- DOT looks up the refresh token's access token: the 2024 code fails with DoesNotExist
      if cfg.refresh_after_delete == "error" then server_error() end
      if cfg.refresh_after_delete ~= "allow" then oauth_error("invalid_grant") end
    end
    -- DOT takes the original scopes from the refresh token's access token
    local access = r.access and store.tokens[r.access]
    local original = access and access.scope or r.scope or "read write"
    local scope = original
    if form.scope and form.scope ~= "" then
      local allowed = {}
      for _, w in ipairs(split_scopes(original)) do allowed[w] = true end
      for _, w in ipairs(split_scopes(form.scope)) do
        if not allowed[w] then oauth_error("invalid_scope") end
      end
      scope = table.concat(split_scopes(form.scope), " ")
    end
    local user = store.users[r.user]
    if not user then oauth_error("invalid_grant") end
    local denied = external_denied(ctx, user)
    if denied then return plain(403, denied) end
    store:revoke_refresh(r)
    return issue(ctx, user, app, scope, r.id)
  elseif gt == "password" then
    for _, p in ipairs{ "username", "password" } do
      if not form[p] then oauth_error("invalid_request", format("Request is missing %s parameter.", p)) end
    end
    local app = client_auth(ctx, form)
    if app.authorization_grant_type ~= "password" then oauth_error("unauthorized_client") end
    local user = store:authenticate(form.username, form.password)
    if not user then oauth_error("invalid_grant", "Invalid credentials given.") end
    local scope = "read write"
    if form.scope and form.scope ~= "" then
      for _, w in ipairs(split_scopes(form.scope)) do
        if not fields.SCOPES[w] then oauth_error("invalid_scope") end
      end
      scope = table.concat(split_scopes(form.scope), " ")
    end
    return issue(ctx, user, app, scope)
  elseif gt == "authorization_code" then
    if not form.code then oauth_error("invalid_request", "Missing code parameter.") end
    client_auth(ctx, form)
    oauth_error("invalid_grant")
  elseif gt == "client_credentials" then
    client_auth(ctx, form)
    oauth_error("unauthorized_client")
  end
  oauth_error("unsupported_grant_type")
end

local function revoke_endpoint(ctx)
  local store = ctx.store
  if ctx.req.query ~= "" then oauth_error("invalid_request", "URL query parameters are not allowed") end
  local form = oauth_form(ctx)
  if not form.token then oauth_error("invalid_request", "Missing token parameter.") end
  client_auth(ctx, form)
  -- oauthlib ignores a hint it does not know (unsupported_token_type is only for known types
  -- the server does not support, and DOT supports both)
  local hint = form.token_type_hint
  -- A hashed-token gateway looks the plaintext up unhashed and finds nothing: `noop`.
  if ctx.cfg.revoke_token == "effective" or ctx.ctrl then
    local order = hint == "refresh_token" and { "refresh", "access" } or { "access", "refresh" }
    for _, kind in ipairs(order) do
      if kind == "access" then
        local t = store:token_by_value(form.token)
        if t then
          store:delete_token(t.id)
          break
        end
      else
        local r = store:refresh_by_value(form.token)
        if r then
          store:revoke_refresh(r)
          break
        end
      end
    end
  end
  return plain(200, "")
end

local function oauth_view(fn)
  return function(ctx)
    if ctx.method == "POST" then return fn(ctx) end
    if ctx.method == "OPTIONS" then
      return { status = 200, headers = { { "Content-Type", "text/html; charset=utf-8" }, { "Allow", "POST, OPTIONS" } },
               body = "" }
    end
    return { status = 405, headers = { { "Content-Type", "text/html; charset=utf-8" }, { "Allow", "POST, OPTIONS" } },
             body = "" }
  end
end

-- DOT's AuthorizationView is a login-required HTML page: without a browser session it
-- redirects to the login page. The emulator has no sessions, so that is all it does.
local function authorize_view(login)
  return function(ctx)
    local m = ctx.method
    if m ~= "GET" and m ~= "POST" and m ~= "HEAD" and m ~= "OPTIONS" then
      return plain(405, "", { { "Allow", "GET, POST, HEAD, OPTIONS" } })
    end
    local next_url = ctx.req.rawpath .. (ctx.req.query ~= "" and ("?" .. ctx.req.query) or "")
    local quoted = codec.quote_plus(next_url):gsub("%+", "%%20"):gsub("%%2F", "/")
    return plain(302, "", { { "Location", login .. "?next=" .. quoted } })
  end
end


--- The `/o/token/` view.
M.token = oauth_view(token_endpoint)
--- The `/o/revoke_token/` view.
M.revoke = oauth_view(revoke_endpoint)
--- The `/o/authorize/` view for a gateway whose login page is `login`.
-- @function authorize
-- @tparam string login the login page's path
-- @treturn function view `(ctx)`
M.authorize = authorize_view

return M
