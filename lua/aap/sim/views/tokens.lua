--- The token views: `tokens/`, `tokens/{id}/`, and the token sub-lists of users and
-- applications; the token serializer in wire order (the gateway's and the controller's).
local json = require("aap.sim.json")
local fields = require("aap.sim.fields")
local lists = require("aap.sim.lists")
local store_mod = require("aap.sim.store")
local respond = require("aap.sim.respond")
local request = require("aap.sim.request")
local auth = require("aap.sim.auth")
local common = require("aap.sim.views.common")

local obj, arr, null, put = json.obj, json.arr, json.null, json.put
local iso = store_mod.iso
local format = string.format
local raise, forbidden, not_found = respond.raise, respond.forbidden, respond.not_found
local user_summary, time_or_null, id_or_null, mask = common.user_summary, common.time_or_null, common.id_or_null,
  common.mask

local M = {}

--- A token as the API shows it: the plaintext values only when just created.
-- @tparam table ctx request context
-- @tparam table t token
-- @tparam[opt] string plain_token
-- @tparam[opt] string plain_refresh
-- @return a JSON object
function M.serialize(ctx, t, plain_token, plain_refresh)
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
local serialize_token = M.serialize

local function sees_all_tokens(ctx)
  -- the controller (AWX) shows a user only their own tokens
  return auth.is_admin(ctx.user) or (not ctx.ctrl and ctx.cfg.list_visibility == "all")
end

--- A token list the request's user may see, `keep` (optional) choosing among them.
-- @tparam table ctx request context
-- @tparam[opt] function keep token -> boolean
-- @tparam[opt] boolean unfiltered no filters or ordering, only pagination
-- @treturn table response
function M.list(ctx, keep, unfiltered)
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
  return common.list_response(ctx, lists.MODELS.token, out, serialize_token, { "id" }, search, unfiltered)
end
local token_list = M.list

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
-- @tparam table ctx request context
-- @tparam[opt] table opts `application`: forced application id (false: forced PAT); `require_app`
-- @treturn table response
function M.create(ctx, opts)
  opts = opts or {}
  local user = ctx.user
  local data = request.data(ctx, true)
  -- DAB's OAuth2TokenPermission calls request.data.get(): JSON that is not an object fails there
  if data.invalid then
    if ctx.ctrl then raise(data.invalid) end
    respond.server_error()
  end
  local wants_app = opts.application or (opts.application ~= false and request.truthy(data.values.application))
  if wants_app and not user.is_superuser then forbidden(ctx) end
  local errs, out = obj{}, {}
  validate_token_fields(ctx, data, errs, out,
    { skip_application = opts.application ~= nil, require_app = opts.require_app })
  if #errs > 0 then raise(respond.respond(ctx, 400, errs)) end
  if opts.application then out.application = opts.application end
  if out.application == null or opts.application == false then out.application = nil end
  local denied = auth.external_denied(ctx, user)
  if denied then forbidden(ctx, denied) end
  if request.flag(ctx, "validate") then
    return respond.respond(ctx, 202, respond.detail("Request would have been accepted"))
  end
  local owner = user.id
  local app = out.application and ctx.store.apps[out.application]
  if app and app.user then owner = app.user end
  local t, value, rvalue = ctx.store:create_token{
    user = owner, application = out.application, description = out.description or "",
    scope = out.scope or "write", created_by = user.id, with_refresh = app ~= nil,
  }
  return respond.created(ctx, serialize_token(ctx, t, value, rvalue))
end

--- The token a detail route names, if the request's user may see it (404 or 403 otherwise).
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @treturn table token
function M.get(ctx, sid)
  local id = request.id(ctx, sid)
  local t = ctx.store.tokens[id]
  if not t then not_found(ctx, "OAuth2AccessToken") end
  local u = ctx.user
  local safe = ctx.method == "GET" or ctx.method == "HEAD" or ctx.method == "OPTIONS"
  if not (u.is_superuser or t.user == u.id or (u.is_platform_auditor and safe)) then forbidden(ctx) end
  return t
end
local get_token = M.get

--- PUT or PATCH (`partial`) a token.
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @tparam boolean partial
-- @treturn table response
function M.update(ctx, sid, partial)
  local t = get_token(ctx, sid)
  local data = request.data(ctx)
  data.partial = partial
  local errs, out = obj{}, {}
  -- AWX makes `application` read-only on update; DAB's code does not (API doc §16.10)
  validate_token_fields(ctx, data, errs, out,
    { skip_application = ctx.ctrl or ctx.cfg.token_application_read_only })
  if #errs > 0 then raise(respond.respond(ctx, 400, errs)) end
  if out.application ~= nil then
    t.application = out.application ~= null and out.application or nil
  end
  if out.description ~= nil then t.description = out.description end
  if out.scope ~= nil then t.scope = out.scope end
  t.modified = ctx.store:now()
  t.modified_by = ctx.user.id
  return respond.respond(ctx, 200, serialize_token(ctx, t))
end

--- DELETE a token.
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @treturn table response
function M.delete(ctx, sid)
  local t = get_token(ctx, sid)
  ctx.store:delete_token(t.id)
  return respond.respond(ctx, 204)
end

--- The GET view of a user's token sub-list.
-- @tparam string kind `all` (tokens/), `personal` or `authorized`
-- @treturn function view `(ctx, sid)`
function M.sublist(kind)
  return function(ctx, sid)
    -- DAB's user view-set mixin only paginates a plain queryset (API doc §17), and a pk that is
    -- not a number fails inside the ORM
    local unfiltered = not ctx.ctrl and not ctx.cfg.nested_list_filters
    if unfiltered and not sid:match("^%d+$") then respond.server_error() end
    local uid = request.user_id(ctx, sid)
    if ctx.ctrl and kind ~= "all" then uid = ctx.user.id end
    return token_list(ctx, function(t)
      if t.user ~= uid then return false end
      if kind == "personal" then return t.application == nil end
      if kind == "authorized" then return t.application ~= nil end
      return true
    end, unfiltered)
  end
end

return M
