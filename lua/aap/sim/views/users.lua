--- The user views: `me/`, `users/`, `users/{id}/`, and the user serializer in wire order (the
-- gateway's and the controller's).
local json = require("aap.sim.json")
local lists = require("aap.sim.lists")
local store_mod = require("aap.sim.store")
local respond = require("aap.sim.respond")
local request = require("aap.sim.request")
local auth = require("aap.sim.auth")
local common = require("aap.sim.views.common")

local obj, arr, null = json.obj, json.arr, json.null
local iso = store_mod.iso
local format = string.format
local is_admin = auth.is_admin

local M = {}

--- A user as the API shows it (the password always masked).
-- @tparam table ctx request context
-- @tparam table u user
-- @return a JSON object
function M.serialize(ctx, u)
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
local serialize_user = M.serialize

--- `me/`: a page holding the request's user.
-- @tparam table ctx request context
-- @treturn table response
function M.me(ctx)
  return respond.respond(ctx, 200, lists.page{
    items = { ctx.user }, serialize = function(u) return serialize_user(ctx, u) end, path = ctx.req.rawpath,
    pairs = {}, page_size = ctx.cfg.page_size, max_page_size = ctx.cfg.max_page_size,
  })
end

--- `users/`: every user for an admin, else only the request's own.
-- @tparam table ctx request context
-- @treturn table response
function M.list(ctx)
  local out = {}
  for _, u in ipairs(common.sorted_values(ctx.store.users)) do
    if is_admin(ctx.user) or u.id == ctx.user.id then out[#out + 1] = u end
  end
  return common.list_response(ctx, lists.MODELS.user, out, serialize_user, { "id" })
end

--- `users/{id}/`: 404 for a user the request's user may not see.
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @treturn table response
function M.detail(ctx, sid)
  local u = ctx.store.users[request.id(ctx, sid)]
  if not u or not (is_admin(ctx.user) or u.id == ctx.user.id) then respond.not_found(ctx, "User") end
  return respond.respond(ctx, 200, serialize_user(ctx, u))
end

return M
