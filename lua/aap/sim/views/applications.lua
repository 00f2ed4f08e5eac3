--- The OAuth2 application views: `applications/`, `applications/{id}/`, and the application
-- serializer in wire order (the gateway's and the controller's).
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
local raise, forbidden = respond.raise, respond.forbidden
local require_superuser = auth.require_superuser
local user_summary, id_or_null, mask = common.user_summary, common.id_or_null, common.mask

local M = {}

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

--- An application as the API shows it: the plaintext client secret only when just created.
-- @tparam table ctx request context
-- @tparam table a application
-- @tparam[opt] string plain_secret
-- @return a JSON object
function M.serialize(ctx, a, plain_secret)
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
local serialize_app = M.serialize

local function can_read_apps(ctx)
  return auth.is_admin(ctx.user) or ctx.cfg.app_read_for_members
end

--- The application list, `keep` (optional) choosing among them; 403 for who may not read them.
-- @tparam table ctx request context
-- @tparam[opt] function keep application -> boolean
-- @treturn table response
function M.list(ctx, keep)
  if not can_read_apps(ctx) then forbidden(ctx) end
  local out = {}
  for _, a in ipairs(common.sorted_values(ctx.store.apps)) do
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
  return common.list_response(ctx, lists.MODELS.app, out, serialize_app, { "organization", "name" }, search)
end

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
  if #errs > 0 then raise(respond.respond(ctx, 400, errs)) end
  local name = out.name or (existing and existing.name)
  local org = out.organization or (existing and existing.organization)
  for _, a in pairs(store.apps) do
    -- like SQL's UNIQUE, no organization (NULL) never clashes
    if a ~= existing and org ~= nil and a.name == name and a.organization == org then
      local msg = "The fields name, organization must make a unique set."
      raise(respond.respond(ctx, 400, obj{ "non_field_errors", arr{ msg } }))
    end
  end
  return out
end

--- POST an application (superusers only).
-- @tparam table ctx request context
-- @tparam[opt] integer forced_org the organization a sub-list's path names
-- @treturn table response
function M.create(ctx, forced_org)
  require_superuser(ctx)
  local data = request.data(ctx)
  if forced_org then
    local values = {}
    for k, v in pairs(data.values) do values[k] = v end
    values.organization = forced_org
    data = { values = values, form = data.form }
  end
  local out = validate_app(ctx, data)
  if request.flag(ctx, "validate") then
    return respond.respond(ctx, 202, respond.detail("Request would have been accepted"))
  end
  for k, v in pairs(out) do if v == null then out[k] = nil end end
  local secret
  if out.client_type == "confidential" then secret = store_mod.random_token(128) end
  out.client_secret = secret
  out.client_id = nil
  local a = ctx.store:add_app(out, ctx.user.id)
  return respond.created(ctx, serialize_app(ctx, a, secret))
end

--- The application a detail route names (404), if the request's user may read it (or, with
-- `write`, change it); 403 otherwise.
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @tparam[opt] boolean write
-- @treturn table application
function M.get(ctx, sid, write)
  local id = request.id(ctx, sid)
  local a = ctx.store.apps[id]
  if not a then respond.not_found(ctx, "OAuth2Application") end
  if write then require_superuser(ctx) elseif not can_read_apps(ctx) then forbidden(ctx) end
  return a
end
local get_app = M.get

--- PUT or PATCH (`partial`) an application.
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @tparam boolean partial
-- @treturn table response
function M.update(ctx, sid, partial)
  local a = get_app(ctx, sid, true)
  local data = request.data(ctx)
  data.partial = partial
  local out = validate_app(ctx, data, a)
  for k, v in pairs(out) do
    if v == null then a[k] = nil else a[k] = v end
  end
  a.modified = ctx.store:now()
  a.modified_by = ctx.user.id
  return respond.respond(ctx, 200, serialize_app(ctx, a))
end

--- DELETE an application (and its tokens).
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @treturn table response
function M.delete(ctx, sid)
  local a = get_app(ctx, sid, true)
  ctx.store:delete_app(a.id)
  return respond.respond(ctx, 204)
end

return M
