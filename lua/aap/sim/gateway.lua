--- The emulated platform gateway (django-ansible-base's oauth2_provider behind DRF) and,
-- with `flavor = "controller"`, the AAP 2.4 automation controller's token API.
-- Routes, authentication, permissions, serializers in wire order, lists, `/o/token/` and
-- `/o/revoke_token/`. See ../shared/docs/aap-gateway-api.md for the behaviour reproduced.
local socket = require("socket")
local json = require("aap.sim.json")
local codec = require("aap.sim.codec")
local fields = require("aap.sim.fields")
local lists = require("aap.sim.lists")
local store_mod = require("aap.sim.store")

local obj, arr, null, put = json.obj, json.arr, json.null, json.put
local iso = store_mod.iso
local format, gettime = string.format, socket.gettime

local M = {}

local NODE = "aap-sim"
local RAISED = { __name = "aap.sim.response" }
local PERMISSION = "You do not have permission to perform this action."
local NOT_AUTH = "Authentication credentials were not provided."
local EXTERNAL = "OAuth2 Tokens cannot be created by users associated with an external authentication provider (%s)"

-- Responses ------------------------------------------------------------------------------

local function product(ctx)
  local cfg = ctx.cfg
  local name, version = cfg.product_name, cfg.product_version
  if ctx.ctrl then
    if name == "Unnamed" then name = "AWX" end
    if version == "2.5" then version = "24.6.1" end
  end
  return name, version
end

--- A DRF response: JSON body (compact), `Vary`, `Allow`, the `X-API-*` headers.
local function respond(ctx, status, body, extra)
  local h = {}
  local text = ""
  if body ~= nil then
    text = json.encode(body)
    h[#h + 1] = { "Content-Type", "application/json" }
  end
  h[#h + 1] = { "Vary", "Accept" }
  if ctx.allow then h[#h + 1] = { "Allow", ctx.allow } end
  local name, version = product(ctx)
  h[#h + 1] = { "X-API-Node", NODE }
  h[#h + 1] = { "X-API-Product-Name", name }
  if ctx.user then h[#h + 1] = { "X-API-Product-Version", version } end
  if ctx.ctrl then
    h[#h + 1] = { "X-API-Request-Id", store_mod.random_token(32):lower() }
    h[#h + 1] = { "X-API-Total-Time", format("%.3fs", gettime() - ctx.t0) }
  end
  h[#h + 1] = { "X-API-Time", format("%.3fs", gettime() - ctx.t0) }
  for _, x in ipairs(extra or {}) do h[#h + 1] = x end
  return { status = status, headers = h, body = text }
end

--- A 201 answer: DRF's CreateModelMixin adds `Location` from the object's `url` (the gateway's
-- relative one); the controller sends none.
local function created(ctx, body)
  local loc = not ctx.ctrl and json.get(body, "url") or nil
  return respond(ctx, 201, body, loc and { { "Location", loc } } or nil)
end

local function raise(resp)
  error(setmetatable(resp, RAISED), 0)
end

local function detail(msg) return obj{ "detail", msg } end

local function fail(ctx, status, msg, extra)
  raise(respond(ctx, status, detail(msg), extra))
end

local function www_authenticate(ctx)
  if ctx.ctrl then return "Bearer realm=api authorization_url=/api/o/authorize/" end
  local v = 'Bearer realm="api"'
  if ctx.bearer_error then
    v = v .. ',error="invalid_token",error_description="' .. ctx.bearer_error .. '"'
  end
  return v
end

local function unauthorized(ctx, msg)
  if not msg then
    msg = NOT_AUTH
    if ctx.ctrl then msg = msg .. " To establish a login session, visit /api/login/." end
  end
  fail(ctx, 401, msg, { { "WWW-Authenticate", www_authenticate(ctx) } })
end

local function forbidden(ctx, msg) fail(ctx, 403, msg or PERMISSION) end

local function not_found(ctx, model)
  fail(ctx, 404, model and format("No %s matches the given query.", model) or "Not found.")
end

-- Plain (non-DRF) answers.
local function plain(status, text, headers)
  local h = { { "Content-Type", "text/html; charset=utf-8" } }
  for _, x in ipairs(headers or {}) do h[#h + 1] = x end
  return { status = status, headers = h, body = text or "" }
end

--- Django's page for an unhandled exception (DEBUG off), as `text/html; charset=utf-8`.
-- Django's page for a route it does not have (the reference gateway's, byte for byte).
M.NOT_FOUND_PAGE = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n"
  .. "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n"
M.SERVER_ERROR_PAGE = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n"
  .. "</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"

local function server_error() raise(plain(500, M.SERVER_ERROR_PAGE)) end

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

-- Request data --------------------------------------------------------------------------

local FORM = "application/x-www-form-urlencoded"
local MULTIPART = "multipart/form-data"

--- Parse the request body as DRF's parsers do (the controller takes JSON only). JSON that is
-- not an object is the serializer's 400, unless `any_json`: then `data.invalid` holds that answer.
local function request_data(ctx, any_json)
  if ctx.data then
    if ctx.data.invalid and not any_json then raise(ctx.data.invalid) end
    return ctx.data
  end
  local req = ctx.req
  local body = req.body or ""
  local ct = req.headers["content-type"]
  local mt, params = codec.media_type(ct)
  local data
  if #body == 0 then
    data = { values = {}, form = (mt == FORM or mt == MULTIPART) }
  elseif mt == "application/json" then
    local v, err = json.decode(body)
    if v == nil then fail(ctx, 400, "JSON parse error - " .. err) end
    data = { values = v, form = false }
    if v == null then
      data = { values = {}, form = false, invalid = respond(ctx, 400, obj{ "non_field_errors",
        arr{ "No data provided" } }) }
    elseif type(v) ~= "table" or #v > 0 or body:match("^%s*%[") then
      local t = body:match("^%s*%[") and "list" or fields.pytype(v)
      data = { values = {}, form = false, invalid = respond(ctx, 400, obj{ "non_field_errors",
        arr{ format("Invalid data. Expected a dictionary, but got %s.", t) } }) }
    end
  elseif mt == FORM and not ctx.ctrl then
    if not utf8.len(body) then fail(ctx, 400, "Form data is not valid UTF-8") end
    data = { values = codec.parse_map(body), form = true }
  elseif mt == MULTIPART and not ctx.ctrl then
    local v, err = codec.parse_multipart(body, params.boundary)
    if not v then fail(ctx, 400, err) end
    for _, x in pairs(v) do
      if not utf8.len(x) then fail(ctx, 400, "Multipart form parse error - invalid UTF-8") end
    end
    data = { values = v, form = true }
  else
    -- a request without Content-Type is text/plain to Django (wsgiref's default)
    fail(ctx, 415, format('Unsupported media type "%s" in request.', ct or "text/plain"))
  end
  ctx.data = data
  if data.invalid and not any_json then raise(data.invalid) end
  return data
end

local function truthy(v)
  if v == nil or v == null or v == false or v == "" or v == 0 then return false end
  if type(v) == "table" and next(v) == nil then return false end
  return true
end

local function flag_param(ctx, name)
  local v = ctx.params[name]
  return v ~= nil and (v:lower() == "true" or v == "1")
end

-- Serializers ------------------------------------------------------------------------------

local function user_summary(u)
  return obj{ "id", u.id, "username", u.username, "first_name", u.first_name, "last_name", u.last_name }
end

local function time_or_null(us) return us and iso(us) or null end
local function id_or_null(v) return v or null end

local function mask(ctx) return ctx.ctrl and "************" or "$encrypted$" end

local function serialize_token(ctx, t, plain_token, plain_refresh)
  local store, b = ctx.store, ctx.base
  local users = store.users
  local app = t.application and store.apps[t.application]
  local token_value = plain_token or mask(ctx)
  local refresh_value
  if not t.refresh then
    refresh_value = null
  else
    refresh_value = plain_refresh or mask(ctx)
  end
  local user = users[t.user]
  if ctx.ctrl then
    local related = obj{}
    if user then put(related, "user", b .. "users/" .. t.user .. "/") end
    if app then put(related, "application", b .. "applications/" .. app.id .. "/") end
    put(related, "activity_stream", b .. "tokens/" .. t.id .. "/activity_stream/")
    local summary = obj{}
    if app then put(summary, "application", obj{ "id", app.id, "name", app.name }) end
    if user then put(summary, "user", user_summary(user)) end
    return obj{
      "id", t.id, "type", "o_auth2_access_token", "url", b .. "tokens/" .. t.id .. "/",
      "related", related, "summary_fields", summary, "created", iso(t.created), "modified", iso(t.modified),
      "description", t.description, "user", t.user, "token", token_value, "refresh_token", refresh_value,
      "application", id_or_null(t.application), "expires", iso(t.expires), "scope", t.scope,
    }
  end
  local related = obj{ "activity_stream", format("%sactivitystream/?content_type=33&object_id=%d", b, t.id) }
  if app then put(related, "application", b .. "applications/" .. app.id .. "/") end
  if t.created_by then put(related, "created_by", b .. "users/" .. t.created_by .. "/") end
  if t.modified_by then put(related, "modified_by", b .. "users/" .. t.modified_by .. "/") end
  put(related, "user", b .. "users/" .. t.user .. "/")
  local summary = obj{}
  if t.modified_by and users[t.modified_by] then put(summary, "modified_by", user_summary(users[t.modified_by])) end
  if t.created_by and users[t.created_by] then put(summary, "created_by", user_summary(users[t.created_by])) end
  if t.source_refresh then put(summary, "source_refresh_token", obj{ "id", t.source_refresh }) end
  if user then put(summary, "user", user_summary(user)) end
  if app then put(summary, "application", obj{ "id", app.id, "name", app.name }) end
  return obj{
    "id", t.id, "url", b .. "tokens/" .. t.id .. "/", "related", related, "summary_fields", summary,
    "created", iso(t.created), "created_by", id_or_null(t.created_by), "modified", iso(t.modified),
    "modified_by", id_or_null(t.modified_by), "expires", iso(t.expires), "user", t.user,
    "application", id_or_null(t.application), "description", t.description, "last_used", time_or_null(t.last_used),
    "scope", t.scope, "token", token_value, "refresh_token", refresh_value,
  }
end

local function app_tokens_summary(ctx, app)
  local results, count = arr{}, 0
  for _, id in ipairs(ctx.store.token_ids) do
    local t = ctx.store.tokens[id]
    if t.application == app.id then
      count = count + 1
      if count <= 10 then results[#results + 1] = obj{ "id", t.id, "token", mask(ctx), "scope", t.scope } end
    end
  end
  return obj{ "count", count, "results", results }
end

local function serialize_app(ctx, a, plain_secret)
  local store, b = ctx.store, ctx.base
  local users = store.users
  local org = store.orgs[a.organization]
  local secret
  if a.client_type ~= "public" then secret = plain_secret or mask(ctx) end
  if ctx.ctrl then
    local related = obj{ "tokens", b .. "applications/" .. a.id .. "/tokens/",
                         "activity_stream", b .. "applications/" .. a.id .. "/activity_stream/" }
    if org then put(related, "organization", b .. "organizations/" .. org.id .. "/") end
    local summary = obj{}
    if org then put(summary, "organization", obj{ "id", org.id, "name", org.name, "description", org.description }) end
    put(summary, "user_capabilities", obj{ "edit", ctx.user and ctx.user.is_superuser or false,
                                           "delete", ctx.user and ctx.user.is_superuser or false })
    put(summary, "tokens", app_tokens_summary(ctx, a))
    local o = obj{ "id", a.id, "type", "o_auth2_application", "url", b .. "applications/" .. a.id .. "/",
                   "related", related, "summary_fields", summary, "created", iso(a.created),
                   "modified", iso(a.modified), "name", a.name, "description", a.description,
                   "client_id", a.client_id }
    if secret then put(o, "client_secret", secret) end
    for _, kv in ipairs{ { "client_type", a.client_type }, { "redirect_uris", a.redirect_uris },
                         { "authorization_grant_type", a.authorization_grant_type },
                         { "skip_authorization", a.skip_authorization }, { "organization", a.organization } } do
      put(o, kv[1], kv[2])
    end
    return o
  end
  local related = obj{ "access_tokens", b .. "applications/" .. a.id .. "/tokens/",
                       "activity_stream", format("%sactivitystream/?content_type=30&object_id=%d", b, a.id) }
  if a.created_by then put(related, "created_by", b .. "users/" .. a.created_by .. "/") end
  if a.modified_by then put(related, "modified_by", b .. "users/" .. a.modified_by .. "/") end
  if a.organization then put(related, "organization", b .. "organizations/" .. a.organization .. "/") end
  if a.user then put(related, "user", b .. "users/" .. a.user .. "/") end
  local summary = obj{}
  if a.modified_by and users[a.modified_by] then put(summary, "modified_by", user_summary(users[a.modified_by])) end
  if a.created_by and users[a.created_by] then put(summary, "created_by", user_summary(users[a.created_by])) end
  if a.user and users[a.user] then put(summary, "user", user_summary(users[a.user])) end
  if org then put(summary, "organization", obj{ "id", org.id, "name", org.name }) end
  put(summary, "tokens", app_tokens_summary(ctx, a))
  local o = obj{
    "id", a.id, "url", b .. "applications/" .. a.id .. "/", "related", related, "summary_fields", summary,
    "created", iso(a.created), "created_by", id_or_null(a.created_by), "modified", iso(a.modified),
    "modified_by", id_or_null(a.modified_by), "name", a.name, "client_id", a.client_id,
    "redirect_uris", a.redirect_uris, "post_logout_redirect_uris", a.post_logout_redirect_uris,
    "algorithm", a.algorithm, "user", id_or_null(a.user), "description", a.description,
    "organization", id_or_null(a.organization),
  }
  if ctx.cfg.app_url then put(o, "app_url", a.app_url or null) end
  if secret then put(o, "client_secret", secret) end
  put(o, "client_type", a.client_type)
  put(o, "skip_authorization", a.skip_authorization)
  put(o, "authorization_grant_type", a.authorization_grant_type)
  return o
end

local function serialize_org(ctx, o)
  local b, users = ctx.base, ctx.store.users
  local ob = b .. "organizations/" .. o.id .. "/"
  if ctx.ctrl then
    return obj{
      "id", o.id, "type", "organization", "url", ob,
      "related", obj{ "applications", ob .. "applications/", "users", ob .. "users/", "admins", ob .. "admins/" },
      "summary_fields", obj{}, "created", iso(o.created), "modified", iso(o.modified), "name", o.name,
      "description", o.description, "max_hosts", 0, "custom_virtualenv", null, "default_environment", null,
    }
  end
  local related = obj{ "admins", ob .. "admins/" }
  if o.created_by then put(related, "created_by", b .. "users/" .. o.created_by .. "/") end
  if o.modified_by then put(related, "modified_by", b .. "users/" .. o.modified_by .. "/") end
  put(related, "teams", ob .. "teams/")
  put(related, "users", ob .. "members/")
  local summary = obj{}
  if o.modified_by and users[o.modified_by] then put(summary, "modified_by", user_summary(users[o.modified_by])) end
  if o.created_by and users[o.created_by] then put(summary, "created_by", user_summary(users[o.created_by])) end
  put(summary, "resource", obj{ "ansible_id", o.ansible_id, "resource_type", "shared.organization" })
  return obj{
    "id", o.id, "url", ob, "related", related, "summary_fields", summary, "modified", iso(o.modified),
    "created", iso(o.created), "name", o.name, "description", o.description, "extra_field", null,
    "modified_by", id_or_null(o.modified_by), "created_by", id_or_null(o.created_by), "users", arr{}, "admins", arr{},
  }
end

local function serialize_user(ctx, u)
  local b = ctx.base
  local ub = b .. "users/" .. u.id .. "/"
  if ctx.ctrl then
    return obj{
      "id", u.id, "type", "user", "url", ub,
      "related", obj{ "tokens", ub .. "tokens/", "personal_tokens", ub .. "personal_tokens/",
                      "authorized_tokens", ub .. "authorized_tokens/", "applications", ub .. "applications/" },
      "summary_fields", obj{}, "created", iso(u.created), "modified", iso(u.modified), "username", u.username,
      "first_name", u.first_name, "last_name", u.last_name, "email", u.email, "is_superuser", u.is_superuser,
      "is_system_auditor", u.is_platform_auditor == true, "password", "$encrypted$", "ldap_dn", "",
      "last_login", null, "external_account", u.external and u.account_type or null,
    }
  end
  return obj{
    "id", u.id, "url", ub,
    "related", obj{ "activity_stream", format("%sactivitystream/?content_type=1&object_id=%d", b, u.id),
                    "authorized_tokens", ub .. "authorized_tokens/", "personal_tokens", ub .. "personal_tokens/",
                    "tokens", ub .. "tokens/" },
    "summary_fields", obj{}, "created", iso(u.created), "created_by", null, "modified", iso(u.modified),
    "modified_by", null, "username", u.username, "email", u.email, "first_name", u.first_name,
    "last_name", u.last_name, "last_login", null, "password", "$encrypted$", "is_superuser", u.is_superuser,
    "is_platform_auditor", u.is_platform_auditor == true, "managed", u.managed == true,
    "last_login_results", obj{}, "authenticators", arr{}, "authenticator_uid", u.external and u.username or null,
  }
end

-- Lists ---------------------------------------------------------------------------------

-- `unfiltered`: filters and ordering are not applied (candidates are served in their order),
-- only pagination, as DAB's user token sub-lists do.
local function list_response(ctx, model, candidates, serialize, default_order, search, unfiltered)
  local store = ctx.store
  local ok, body = pcall(function()
    local items = candidates
    if not unfiltered then
      local pred = lists.compile(store, model, ctx.query, search)
      items = {}
      for _, r in ipairs(candidates) do
        if pred(r) then items[#items + 1] = r end
      end
      lists.order(store, model, items, ctx.params.order_by or ctx.params.order, default_order)
    end
    return lists.page{
      items = items, serialize = function(r) return serialize(ctx, r) end, path = ctx.req.rawpath,
      pairs = ctx.query, page_size = ctx.cfg.page_size, max_page_size = ctx.cfg.max_page_size,
    }
  end)
  if not ok then
    if getmetatable(body) == lists.ListError then fail(ctx, body.status, body.detail) end
    error(body, 0)
  end
  return respond(ctx, 200, body)
end

local function is_admin(u) return u.is_superuser or u.is_platform_auditor end

local function sees_all_tokens(ctx)
  -- the controller (AWX) shows a user only their own tokens
  return is_admin(ctx.user) or (not ctx.ctrl and ctx.cfg.list_visibility == "all")
end

local function token_list(ctx, keep, unfiltered)
  local store, all, uid = ctx.store, sees_all_tokens(ctx), ctx.user.id
  local out = {}
  for _, id in ipairs(store.token_ids) do
    local t = store.tokens[id]
    if (all or t.user == uid) and (not keep or keep(t)) then out[#out + 1] = t end
  end
  local search
  if ctx.ctrl then
    search = function(v)
      local needle = v:lower()
      return function(t) return t.description:lower():find(needle, 1, true) ~= nil end
    end
  end
  return list_response(ctx, lists.MODELS.token, out, serialize_token, { "id" }, search, unfiltered)
end

local function can_read_apps(ctx)
  return is_admin(ctx.user) or ctx.cfg.app_read_for_members
end

local function sorted_values(t)
  local out = {}
  for _, v in pairs(t) do out[#out + 1] = v end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

local function app_list(ctx, keep)
  if not can_read_apps(ctx) then forbidden(ctx) end
  local out = {}
  for _, a in ipairs(sorted_values(ctx.store.apps)) do
    if not keep or keep(a) then out[#out + 1] = a end
  end
  local search
  if ctx.ctrl then
    search = function(v)
      local needle = v:lower()
      return function(a)
        return a.name:lower():find(needle, 1, true) ~= nil or a.description:lower():find(needle, 1, true) ~= nil
      end
    end
  end
  return list_response(ctx, lists.MODELS.app, out, serialize_app, { "organization", "name" }, search)
end

-- Token views ---------------------------------------------------------------------------

-- A detail route's id: a non-integer is DRF's plain 404.
local function parse_id(ctx, s)
  local id = s:match("^%d+$") and math.tointeger(tonumber(s))
  if not id then not_found(ctx) end
  return id
end

local function external_denied(ctx, user)
  if user.external and not ctx.cfg.allow_external_users then
    local who = ctx.ctrl and (user.account_type or "ldap") or user.external
    return "(access_denied) " .. format(EXTERNAL, who)
  end
end

local function scope_opts(ctx)
  if ctx.ctrl then
    return { allow_blank = false }
  end
  return { allow_blank = false, max_length = 32, validators = { fields.model_scope_check } }
end

-- Validate token fields into `out`; errors into `errs` (ordered object).
local function validate_token_fields(ctx, data, errs, out, opts)
  local store = ctx.store
  if not opts.skip_application then
    local v, e = fields.pk(data, "application", { allow_null = true, required = opts.require_app },
      function(id) return store.apps[id] ~= nil end)
    if e then put(errs, "application", arr(e)) elseif v ~= nil then out.application = v end
  end
  local d, de = fields.char(data, "description", { allow_blank = true })
  if de then put(errs, "description", arr(de)) elseif d ~= nil then out.description = d end
  local s, se = fields.char(data, "scope", scope_opts(ctx))
  if not se and s ~= nil then
    local msg = fields.serializer_scope_check(s)
    if msg then se = { msg } end
  end
  if se then put(errs, "scope", arr(se)) elseif s ~= nil then out.scope = s end
end

--- POST a token (tokens/ and, on the controller, the POSTable sub-lists).
-- opts.application: forced application id (false: forced PAT); opts.require_app
local function create_token(ctx, opts)
  opts = opts or {}
  local user = ctx.user
  local data = request_data(ctx, true)
  -- DAB's OAuth2TokenPermission calls request.data.get(): JSON that is not an object fails there
  if data.invalid then
    if ctx.ctrl then raise(data.invalid) end
    server_error()
  end
  local wants_app = opts.application or (opts.application ~= false and truthy(data.values.application))
  if wants_app and not user.is_superuser then forbidden(ctx) end
  local errs, out = obj{}, {}
  validate_token_fields(ctx, data, errs, out,
    { skip_application = opts.application ~= nil, require_app = opts.require_app })
  if #errs > 0 then raise(respond(ctx, 400, errs)) end
  if opts.application then out.application = opts.application end
  if out.application == null or opts.application == false then out.application = nil end
  local denied = external_denied(ctx, user)
  if denied then forbidden(ctx, denied) end
  if flag_param(ctx, "validate") then
    return respond(ctx, 202, detail("Request would have been accepted"))
  end
  local owner = user.id
  local app = out.application and ctx.store.apps[out.application]
  if app and app.user then owner = app.user end
  local t, value, rvalue = ctx.store:create_token{
    user = owner, application = out.application, description = out.description or "",
    scope = out.scope or "write", created_by = user.id, with_refresh = app ~= nil,
  }
  return created(ctx, serialize_token(ctx, t, value, rvalue))
end

local function get_token(ctx, sid)
  local id = parse_id(ctx, sid)
  local t = ctx.store.tokens[id]
  if not t then not_found(ctx, "OAuth2AccessToken") end
  local u = ctx.user
  local safe = ctx.method == "GET" or ctx.method == "HEAD" or ctx.method == "OPTIONS"
  if not (u.is_superuser or t.user == u.id or (u.is_platform_auditor and safe)) then forbidden(ctx) end
  return t
end

local function update_token(ctx, sid, partial)
  local t = get_token(ctx, sid)
  local data = request_data(ctx)
  data.partial = partial
  local errs, out = obj{}, {}
  -- AWX makes `application` read-only on update; DAB's code does not (API doc §16.10)
  validate_token_fields(ctx, data, errs, out,
    { skip_application = ctx.ctrl or ctx.cfg.token_application_read_only })
  if #errs > 0 then raise(respond(ctx, 400, errs)) end
  if out.application ~= nil then
    t.application = out.application ~= null and out.application or nil
  end
  if out.description ~= nil then t.description = out.description end
  if out.scope ~= nil then t.scope = out.scope end
  t.modified = ctx.store:now()
  t.modified_by = ctx.user.id
  return respond(ctx, 200, serialize_token(ctx, t))
end

-- Application views ---------------------------------------------------------------------

local function validate_app(ctx, data, existing)
  local store = ctx.store
  local errs, out = obj{}, {}
  local function take(name, v, e)
    if e then put(errs, name, arr(e)) elseif v ~= nil then out[name] = v end
  end
  local function pk_exists(tbl) return function(id) return store[tbl][id] ~= nil end end
  take("name", fields.char(data, "name", { required = true, max_length = 512 }))
  if not ctx.ctrl then
    take("redirect_uris", fields.char(data, "redirect_uris", { allow_blank = true }))
    take("post_logout_redirect_uris", fields.char(data, "post_logout_redirect_uris", { allow_blank = true }))
    take("algorithm", fields.choice(data, "algorithm", {}, { "", "RS256", "HS256" }))
    take("user", fields.pk(data, "user", { allow_null = true }, pk_exists("users")))
    take("description", fields.char(data, "description", { allow_blank = true }))
    -- the model's organization is nullable: DAB's October 2024 serializer does not require it
    take("organization", fields.pk(data, "organization", { required = ctx.cfg.app_organization_required },
      pk_exists("orgs")))
    if ctx.cfg.app_url then take("app_url", fields.url(data, "app_url", { max_length = 200 })) end
    take("client_type", fields.choice(data, "client_type", { required = true }, { "confidential", "public" }))
    take("skip_authorization", fields.boolean(data, "skip_authorization"))
    take("authorization_grant_type", fields.choice(data, "authorization_grant_type", { required = true },
      { "authorization-code", "password" }))
  else
    take("description", fields.char(data, "description", { allow_blank = true }))
    take("client_type", fields.choice(data, "client_type", { required = true }, { "confidential", "public" }))
    take("redirect_uris", fields.char(data, "redirect_uris", { allow_blank = true }))
    take("authorization_grant_type", fields.choice(data, "authorization_grant_type", { required = true },
      { "authorization-code", "password" }))
    take("skip_authorization", fields.boolean(data, "skip_authorization"))
    take("organization", fields.pk(data, "organization", { required = true }, pk_exists("orgs")))
  end
  if #errs > 0 then raise(respond(ctx, 400, errs)) end
  local name = out.name or (existing and existing.name)
  local org = out.organization or (existing and existing.organization)
  for _, a in pairs(store.apps) do
    -- like SQL's UNIQUE, no organization (NULL) never clashes
    if a ~= existing and org ~= nil and a.name == name and a.organization == org then
      local msg = "The fields name, organization must make a unique set."
      raise(respond(ctx, 400, obj{ "non_field_errors", arr{ msg } }))
    end
  end
  return out
end

local function require_superuser(ctx)
  if not ctx.user.is_superuser then forbidden(ctx) end
end

local function create_app(ctx, forced_org)
  require_superuser(ctx)
  local data = request_data(ctx)
  if forced_org then
    local values = {}
    for k, v in pairs(data.values) do values[k] = v end
    values.organization = forced_org
    data = { values = values, form = data.form }
  end
  local out = validate_app(ctx, data)
  if flag_param(ctx, "validate") then return respond(ctx, 202, detail("Request would have been accepted")) end
  for k, v in pairs(out) do if v == null then out[k] = nil end end
  local secret
  if out.client_type == "confidential" then secret = store_mod.random_token(128) end
  out.client_secret = secret
  out.client_id = nil
  local a = ctx.store:add_app(out, ctx.user.id)
  return created(ctx, serialize_app(ctx, a, secret))
end

local function get_app(ctx, sid, write)
  local id = parse_id(ctx, sid)
  local a = ctx.store.apps[id]
  if not a then not_found(ctx, "OAuth2Application") end
  if write then require_superuser(ctx) elseif not can_read_apps(ctx) then forbidden(ctx) end
  return a
end

local function update_app(ctx, sid, partial)
  local a = get_app(ctx, sid, true)
  local data = request_data(ctx)
  data.partial = partial
  local out = validate_app(ctx, data, a)
  for k, v in pairs(out) do
    if v == null then a[k] = nil else a[k] = v end
  end
  a.modified = ctx.store:now()
  a.modified_by = ctx.user.id
  return respond(ctx, 200, serialize_app(ctx, a))
end

-- Organization views ---------------------------------------------------------------------

local function validate_org(ctx, data, existing)
  local errs, out = obj{}, {}
  local v, e = fields.char(data, "name", { required = true, max_length = 512 })
  if e then put(errs, "name", arr(e)) elseif v ~= nil then out.name = v end
  local d, de = fields.char(data, "description", { allow_blank = true })
  if de then put(errs, "description", arr(de)) elseif d ~= nil then out.description = d end
  if #errs == 0 and out.name then
    for _, o in pairs(ctx.store.orgs) do
      if o ~= existing and o.name == out.name then
        put(errs, "name", arr{ "organization with this name already exists." })
      end
    end
  end
  if #errs > 0 then raise(respond(ctx, 400, errs)) end
  return out
end

local function get_org(ctx, sid)
  local o = ctx.store.orgs[parse_id(ctx, sid)]
  if not o then not_found(ctx, "Organization") end
  return o
end

local function org_list(ctx)
  return list_response(ctx, lists.MODELS.org, sorted_values(ctx.store.orgs), serialize_org, { "id" })
end

-- Roots, ping, me, users ------------------------------------------------------------------

local function gateway_ping(ctx)
  return respond(ctx, 200, obj{
    "status", "good", "version", select(2, product(ctx)), "pong", iso(ctx.store:now()), "db_connected", true,
    "db_exception", null, "proxy_connected", true, "proxy_status_code", 200, "proxy_exception_type", null,
  })
end

local function controller_ping(ctx)
  local _, version = product(ctx)
  local now = iso(ctx.store:now())
  return respond(ctx, 200, obj{
    "ha", false, "version", version, "active_node", NODE, "install_uuid", "00000000-0000-4000-8000-00000000a5b1",
    "instances", arr{ obj{ "node", NODE, "node_type", "hybrid", "uuid", "00000000-0000-4000-8000-000000000001",
                           "heartbeat", now, "capacity", 100, "version", version } },
    "instance_groups", arr{ obj{ "name", "default", "capacity", 100, "instances", arr{ NODE } } },
  })
end

local function me(ctx)
  return respond(ctx, 200, lists.page{
    items = { ctx.user }, serialize = function(u) return serialize_user(ctx, u) end, path = ctx.req.rawpath,
    pairs = {}, page_size = ctx.cfg.page_size, max_page_size = ctx.cfg.max_page_size,
  })
end

local function user_list(ctx)
  local out = {}
  for _, u in ipairs(sorted_values(ctx.store.users)) do
    if is_admin(ctx.user) or u.id == ctx.user.id then out[#out + 1] = u end
  end
  return list_response(ctx, lists.MODELS.user, out, serialize_user, { "id" })
end

local function user_detail(ctx, sid)
  local u = ctx.store.users[parse_id(ctx, sid)]
  if not u or not (is_admin(ctx.user) or u.id == ctx.user.id) then not_found(ctx, "User") end
  return respond(ctx, 200, serialize_user(ctx, u))
end

local function sub_user_id(ctx, sid)
  local id = sid:match("^%d+$") and math.tointeger(tonumber(sid))
  if not id then
    fail(ctx, 400, format("Field 'id' expected a number but got '%s'.", sid))
  end
  return id
end

local function empty_list(ctx)
  return respond(ctx, 200, lists.page{ items = {}, serialize = function() end, path = ctx.req.rawpath,
    pairs = ctx.query, page_size = ctx.cfg.page_size, max_page_size = ctx.cfg.max_page_size })
end

-- /o/token/ and /o/revoke_token/ --------------------------------------------------------------

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

-- Routing ---------------------------------------------------------------------------------

local METHOD_ORDER = { "GET", "POST", "PUT", "PATCH", "DELETE" }

local function allow_string(methods)
  local out = {}
  for _, m in ipairs(METHOD_ORDER) do
    if methods[m] then out[#out + 1] = m end
  end
  if methods.GET then out[#out + 1] = "HEAD" end
  out[#out + 1] = "OPTIONS"
  return table.concat(out, ", ")
end

local function view(name, methods, opts)
  opts = opts or {}
  return { name = name, methods = methods, anon = opts.anon, anon_unless = opts.anon_unless,
           oauth2_view = opts.oauth2_view, allow = allow_string(methods) }
end

local function token_sublist(kind)
  return function(ctx, sid)
    -- DAB's user view-set mixin only paginates a plain queryset (API doc §17), and a pk that is
    -- not a number fails inside the ORM
    local unfiltered = not ctx.ctrl and not ctx.cfg.nested_list_filters
    if unfiltered and not sid:match("^%d+$") then server_error() end
    local uid = sub_user_id(ctx, sid)
    if ctx.ctrl and kind ~= "all" then uid = ctx.user.id end
    return token_list(ctx, function(t)
      if t.user ~= uid then return false end
      if kind == "personal" then return t.application == nil end
      if kind == "authorized" then return t.application ~= nil end
      return true
    end, unfiltered)
  end
end

local function build_routes(ctrl)
  local routes = {}
  local function route(pattern, v) routes[#routes + 1] = { "^" .. pattern .. "$", v } end
  local b = ctrl and "/api/v2/" or "/api/gateway/v1/"
  local ID = "([^/.]+)"

  route(b .. "tokens/", view("Token List", {
    GET = function(ctx) return token_list(ctx) end,
    POST = function(ctx) return create_token(ctx) end,
  }, { oauth2_view = true }))
  route(b .. "tokens/" .. ID .. "/", view("Token Detail", {
    GET = function(ctx, id) return respond(ctx, 200, serialize_token(ctx, get_token(ctx, id))) end,
    PUT = function(ctx, id) return update_token(ctx, id, false) end,
    PATCH = function(ctx, id) return update_token(ctx, id, true) end,
    DELETE = function(ctx, id)
      local t = get_token(ctx, id)
      ctx.store:delete_token(t.id)
      return respond(ctx, 204)
    end,
  }, { oauth2_view = true }))
  route(b .. "applications/", view("Application List", {
    GET = function(ctx) return app_list(ctx) end,
    POST = function(ctx) return create_app(ctx) end,
  }, { oauth2_view = true }))
  route(b .. "applications/" .. ID .. "/", view("Application Detail", {
    GET = function(ctx, id) return respond(ctx, 200, serialize_app(ctx, get_app(ctx, id))) end,
    PUT = function(ctx, id) return update_app(ctx, id, false) end,
    PATCH = function(ctx, id) return update_app(ctx, id, true) end,
    DELETE = function(ctx, id)
      local a = get_app(ctx, id, true)
      ctx.store:delete_app(a.id)
      return respond(ctx, 204)
    end,
  }, { oauth2_view = true }))
  local app_tokens = {
    GET = function(ctx, id)
      local a = get_app(ctx, id)
      return token_list(ctx, function(t) return t.application == a.id end)
    end,
  }
  if ctrl then
    app_tokens.POST = function(ctx, id)
      local a = get_app(ctx, id)
      return create_token(ctx, { application = a.id })
    end
  end
  route(b .. "applications/" .. ID .. "/tokens/", view("Application Token List", app_tokens, { oauth2_view = true }))
  local users_tokens = { GET = token_sublist("all") }
  local personal = { GET = token_sublist("personal") }
  local authorized = { GET = token_sublist("authorized") }
  if ctrl then
    users_tokens.POST = function(ctx) return create_token(ctx) end
    personal.POST = function(ctx) return create_token(ctx, { application = false }) end
    authorized.POST = function(ctx) return create_token(ctx, { require_app = true }) end
  end
  route(b .. "users/" .. ID .. "/tokens/", view("User Token List", users_tokens, { oauth2_view = true }))
  route(b .. "users/" .. ID .. "/personal_tokens/", view("Personal Token List", personal, { oauth2_view = true }))
  route(b .. "users/" .. ID .. "/authorized_tokens/", view("Authorized Token List", authorized,
    { oauth2_view = true }))
  route(b .. "users/", view("User List", { GET = user_list }))
  route(b .. "users/" .. ID .. "/", view("User Detail", { GET = user_detail }))
  route(b .. "organizations/", view("Organization List", {
    GET = org_list,
    POST = function(ctx)
      require_superuser(ctx)
      local out = validate_org(ctx, request_data(ctx))
      local o = ctx.store:add_org(out, ctx.user.id)
      return created(ctx, serialize_org(ctx, o))
    end,
  }))
  local function org_update(partial)
    return function(ctx, id)
      local o = get_org(ctx, id)
      require_superuser(ctx)
      local data = request_data(ctx)
      data.partial = partial
      local out = validate_org(ctx, data, o)
      for k, v in pairs(out) do o[k] = v end
      o.modified, o.modified_by = ctx.store:now(), ctx.user.id
      return respond(ctx, 200, serialize_org(ctx, o))
    end
  end
  route(b .. "organizations/" .. ID .. "/", view("Organization Detail", {
    GET = function(ctx, id) return respond(ctx, 200, serialize_org(ctx, get_org(ctx, id))) end,
    PUT = org_update(false), PATCH = org_update(true),
    DELETE = function(ctx, id)
      local o = get_org(ctx, id)
      require_superuser(ctx)
      for _, a in ipairs(sorted_values(ctx.store.apps)) do
        if a.organization == o.id then ctx.store:delete_app(a.id) end
      end
      ctx.store.orgs[o.id] = nil
      return respond(ctx, 204)
    end,
  }))
  route(b .. "me/", view("Me", { GET = me }))

  if ctrl then
    route("/api/", view("Root", { GET = function(ctx)
      return respond(ctx, 200, obj{ "description", "AWX REST API", "current_version", "/api/v2/",
        "available_versions", obj{ "v2", "/api/v2/" }, "oauth2", "/api/o/", "custom_logo", "",
        "custom_login_info", "", "login_redirect_override", "" })
    end }, { anon = true }))
    route("/api/v2/", view("Version 2", { GET = function(ctx)
      local o = obj{}
      for _, k in ipairs{ "ping", "me", "users", "organizations", "applications", "tokens" } do
        put(o, k, "/api/v2/" .. k .. "/")
      end
      return respond(ctx, 200, o)
    end }, { anon = true }))
    route("/api/v2/ping/", view("Ping", { GET = controller_ping }, { anon = true }))
    route("/api/v2/tokens/" .. ID .. "/activity_stream/", view("Activity Stream", {
      GET = function(ctx, id) get_token(ctx, id); return empty_list(ctx) end }))
    route("/api/v2/applications/" .. ID .. "/activity_stream/", view("Activity Stream", {
      GET = function(ctx, id) get_app(ctx, id); return empty_list(ctx) end }))
    route("/api/v2/users/" .. ID .. "/applications/", view("User Applications", {
      GET = function(ctx, id)
        local uid = sub_user_id(ctx, id)
        return app_list(ctx, function(a) return a.user == uid end)
      end,
      POST = function(ctx) return create_app(ctx) end,
    }))
    route("/api/v2/organizations/" .. ID .. "/applications/", view("Organization Applications", {
      GET = function(ctx, id)
        local o = get_org(ctx, id)
        return app_list(ctx, function(a) return a.organization == o.id end)
      end,
      POST = function(ctx, id) return create_app(ctx, get_org(ctx, id).id) end,
    }))
    route("/api/o/", view("OAuth2 Root", { GET = function(ctx)
      return respond(ctx, 200, obj{ "authorize", "/api/o/authorize/", "revoke_token", "/api/o/revoke_token/",
                                    "token", "/api/o/token/" })
    end }, { anon = true }))
    route("/api/o/token/", { oauth = oauth_view(token_endpoint) })
    route("/api/o/revoke_token/", { oauth = oauth_view(revoke_endpoint) })
    route("/api/o/authorize/", { oauth = authorize_view("/api/login/") })
  else
    route("/api/", view("Api Root", { GET = function(ctx)
      return respond(ctx, 200, obj{ "description", "AAP gateway REST API", "apis", obj{
        "gateway", "/api/gateway/", "controller", "/api/controller/", "eda", "/api/eda/", "galaxy", "/api/galaxy/" } })
    end }, { anon = true }))
    route("/api/gateway/", view("Api Versions", { GET = function(ctx)
      return respond(ctx, 200, obj{ "current_version", "/api/gateway/v1/",
                                    "available_versions", obj{ "v1", "/api/gateway/v1/" } })
    end }, { anon = true }))
    route("/api/gateway/v1/", view("Api V1 Root", { GET = function(ctx)
      local o = obj{}
      for _, k in ipairs{ "applications", "me", "organizations", "ping", "status", "tokens", "users" } do
        put(o, k, "/api/gateway/v1/" .. k .. "/")
      end
      return respond(ctx, 200, o)
    end }, { anon = true }))
    route("/api/gateway/v1/ping/", view("Ping", { GET = gateway_ping },
      { anon = true, anon_unless = "ping_requires_auth" }))
    route("/api/gateway/v1/status/", view("Status", { GET = function(ctx)
      return respond(ctx, 200, obj{ "status", "good", "services", obj{
        "gateway", obj{ "status", "good", "url", "/api/gateway/v1/ping/" } } })
    end }))
    route("/o/", view("OAuth2 Root", { GET = function(ctx)
      return respond(ctx, 200, obj{ "authorize", "/o/authorize/", "revoke_token", "/o/revoke_token/",
                                    "token", "/o/token/" })
    end }, { anon = true }))
    route("/o/token/", { oauth = oauth_view(token_endpoint) })
    route("/o/revoke_token/", { oauth = oauth_view(revoke_endpoint) })
    route("/o/authorize/", { oauth = authorize_view("/api/gateway/v1/login/") })
  end
  return routes
end

local ROUTES = { gateway = build_routes(false), controller = build_routes(true) }

-- Authentication ------------------------------------------------------------------------

--- Authenticate a request as DRF does with DAB's classes: OAuth2 bearer first (a rejected
-- token leaves the request anonymous), then Basic (a bad Basic header is a 401).
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

local SAFE = { GET = true, HEAD = true, OPTIONS = true }

--- A request context.
function M.context(store, req)
  local cfg = store.config
  local ctrl = cfg.flavor == "controller"
  local q = codec.parse_pairs(req.query)
  local params = {}
  for _, kv in ipairs(q) do params[kv[1]] = kv[2] end
  return {
    store = store, cfg = cfg, req = req, method = req.method, ctrl = ctrl,
    base = ctrl and "/api/v2/" or "/api/gateway/v1/", t0 = gettime(), query = q, params = params, auth = "none",
  }
end

local function options_response(ctx, v)
  local parses = ctx.ctrl and arr{ "application/json" }
    or arr{ "application/json", FORM, MULTIPART }
  return respond(ctx, 200, obj{ "name", v.name, "description", "", "renders", arr{ "application/json", "text/html" },
                                "parses", parses })
end

local function not_found_page(ctx)
  if ctx.ctrl and ctx.req.path:sub(1, 5) == "/api/" then
    return { status = 404, headers = { { "Content-Type", "application/json" } },
             body = json.encode(detail("The requested resource could not be found.")) }
  end
  return plain(404, M.NOT_FOUND_PAGE)
end

-- DRF's content negotiation (JSON and the browsable API's HTML): 406 when no media range
-- in Accept matches either.
local RENDERS = { "application/json", "text/html" }
local function acceptable(accept)
  if not accept or accept:match("^%s*$") then return true end
  for range in accept:gmatch("[^,]+") do
    local mt = range:match("^%s*([^;%s]+)")
    if mt then
      mt = mt:lower()
      if mt == "*/*" then return true end
      for _, r in ipairs(RENDERS) do
        if mt == r or (mt:sub(-2) == "/*" and r:sub(1, #mt - 1) == mt:sub(1, -2)) then return true end
      end
    end
  end
  return false
end

local function run_view(ctx, v, captures)
  if v.oauth then return v.oauth(ctx) end
  ctx.allow = v.allow
  if not acceptable(ctx.req.headers["accept"]) then
    fail(ctx, 406, "Could not satisfy the request Accept header.")
  end
  M.authenticate(ctx)
  local anon = v.anon and not (v.anon_unless and ctx.cfg[v.anon_unless])
  if not anon and not ctx.user then unauthorized(ctx) end
  -- OAuth2ScopePermission: writes need a `write` token. The October 2024 token and application
  -- views do not have it (scope_permission_on_tokens false).
  if ctx.token and not SAFE[ctx.method] and (not v.oauth2_view or ctx.ctrl or ctx.cfg.scope_permission_on_tokens) then
    local has_write = false
    for w in ctx.token.scope:gmatch("%S+") do
      if w == "write" then has_write = true end
    end
    if not has_write then forbidden(ctx) end
  end
  local method = ctx.method
  if method == "OPTIONS" then return options_response(ctx, v) end
  local fn = v.methods[method] or (method == "HEAD" and v.methods.GET)
  if not fn then fail(ctx, 405, format('Method "%s" not allowed.', method)) end
  return fn(ctx, table.unpack(captures))
end

--- Route and answer one request (no faults, no log: see aap.sim.app).
-- @tparam table store
-- @tparam table req parsed request
-- @tparam[opt] table ctx the request's context (made from store and req when nil)
-- @treturn table response
-- @treturn table ctx
function M.handle(store, req, ctx)
  ctx = ctx or M.context(store, req)
  local routes = ROUTES[ctx.cfg.flavor] or ROUTES.gateway
  local path = req.path
  local v, captures
  for _, r in ipairs(routes) do
    local caps = { path:match(r[1]) }
    if caps[1] then
      v, captures = r[2], caps
      if caps[1] == path then captures = {} end
      break
    end
  end
  if not v then
    for _, r in ipairs(routes) do
      if (path .. "/"):match(r[1]) then
        local loc = req.rawpath .. "/" .. (req.query ~= "" and ("?" .. req.query) or "")
        return plain(301, "", { { "Location", loc } }), ctx
      end
    end
    return not_found_page(ctx), ctx
  end
  local ok, resp = xpcall(run_view, function(e)
    if getmetatable(e) == RAISED then return e end
    return debug.traceback(tostring(e), 2)
  end, ctx, v, captures)
  if not ok then
    if getmetatable(resp) == RAISED then return setmetatable(resp, nil), ctx end
    error(resp, 0)
  end
  return resp, ctx
end

--- Run `fn`; if it raised a response (a 401, 403, ...), return that response, else nil.
-- Other errors propagate.
-- @tparam function fn
-- @treturn table|nil response
function M.catch(fn)
  local ok, err = pcall(fn)
  if ok then return nil end
  if getmetatable(err) == RAISED then return setmetatable(err, nil) end
  error(err, 0)
end

--- Raise the 401 `NotAuthenticated` answer (with `WWW-Authenticate`) for a context.
M.unauthorized = unauthorized
--- Raise the 403 permission answer for a context.
M.forbidden = forbidden
return M
