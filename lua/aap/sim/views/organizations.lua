--- The organization views: `organizations/`, `organizations/{id}/`, and the organization
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
local require_superuser = auth.require_superuser
local user_summary, id_or_null, sorted_values = common.user_summary, common.id_or_null, common.sorted_values

local M = {}

--- An organization as the API shows it.
-- @tparam table ctx request context
-- @tparam table o organization
-- @return a JSON object
function M.serialize(ctx, o)
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
local serialize_org = M.serialize

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
  if #errs > 0 then respond.raise(respond.respond(ctx, 400, errs)) end
  return out
end

--- The organization a detail route names (404 when there is none).
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @treturn table organization
function M.get(ctx, sid)
  local o = ctx.store.orgs[request.id(ctx, sid)]
  if not o then respond.not_found(ctx, "Organization") end
  return o
end
local get_org = M.get

--- The organization list.
-- @tparam table ctx request context
-- @treturn table response
function M.list(ctx)
  return common.list_response(ctx, lists.MODELS.org, sorted_values(ctx.store.orgs), serialize_org, { "id" })
end

--- POST an organization (superusers only).
-- @tparam table ctx request context
-- @treturn table response
function M.create(ctx)
  require_superuser(ctx)
  local out = validate_org(ctx, request.data(ctx))
  local o = ctx.store:add_org(out, ctx.user.id)
  return respond.created(ctx, serialize_org(ctx, o))
end

--- The PUT or PATCH (`partial`) view of an organization (superusers only).
-- @tparam boolean partial
-- @treturn function view `(ctx, sid)`
function M.update(partial)
  return function(ctx, id)
    local o = get_org(ctx, id)
    require_superuser(ctx)
    local data = request.data(ctx)
    data.partial = partial
    local out = validate_org(ctx, data, o)
    for k, v in pairs(out) do o[k] = v end
    o.modified, o.modified_by = ctx.store:now(), ctx.user.id
    return respond.respond(ctx, 200, serialize_org(ctx, o))
  end
end

--- DELETE an organization and its applications (superusers only).
-- @tparam table ctx request context
-- @tparam string id the path's id
-- @treturn table response
function M.delete(ctx, id)
  local o = get_org(ctx, id)
  require_superuser(ctx)
  for _, a in ipairs(sorted_values(ctx.store.apps)) do
    if a.organization == o.id then ctx.store:delete_app(a.id) end
  end
  ctx.store.orgs[o.id] = nil
  return respond.respond(ctx, 204)
end

return M
