--- The service views: the API roots that list what is below them, `ping/` and `status/`, for
-- the gateway and for the controller.
local json = require("aap.sim.json")
local store_mod = require("aap.sim.store")
local respond = require("aap.sim.respond")

local obj, arr, null, put = json.obj, json.arr, json.null, json.put
local iso = store_mod.iso
local product, NODE = respond.product, respond.NODE

local M = {}

-- A root listing `base .. name .. "/"` for each name.
local function listing(ctx, base, names)
  local o = obj{}
  for _, k in ipairs(names) do
    put(o, k, base .. k .. "/")
  end
  return respond.respond(ctx, 200, o)
end

--- The gateway's `/api/`.
-- @tparam table ctx request context
-- @treturn table response
function M.gateway_api(ctx)
  return respond.respond(ctx, 200, obj{ "description", "AAP gateway REST API", "apis", obj{
    "gateway", "/api/gateway/", "controller", "/api/controller/", "eda", "/api/eda/", "galaxy", "/api/galaxy/" } })
end

--- The gateway's `/api/gateway/`.
-- @tparam table ctx request context
-- @treturn table response
function M.gateway_versions(ctx)
  return respond.respond(ctx, 200, obj{ "current_version", "/api/gateway/v1/",
                                        "available_versions", obj{ "v1", "/api/gateway/v1/" } })
end

--- The gateway's `/api/gateway/v1/`.
-- @tparam table ctx request context
-- @treturn table response
function M.gateway_v1(ctx)
  return listing(ctx, "/api/gateway/v1/",
    { "applications", "me", "organizations", "ping", "status", "tokens", "users" })
end

--- The gateway's `ping/`.
-- @tparam table ctx request context
-- @treturn table response
function M.gateway_ping(ctx)
  return respond.respond(ctx, 200, obj{
    "status", "good", "version", select(2, product(ctx)), "pong", iso(ctx.store:now()), "db_connected", true,
    "db_exception", null, "proxy_connected", true, "proxy_status_code", 200, "proxy_exception_type", null,
  })
end

--- The gateway's `status/`.
-- @tparam table ctx request context
-- @treturn table response
function M.gateway_status(ctx)
  return respond.respond(ctx, 200, obj{ "status", "good", "services", obj{
    "gateway", obj{ "status", "good", "url", "/api/gateway/v1/ping/" } } })
end

--- The controller's `/api/`.
-- @tparam table ctx request context
-- @treturn table response
function M.controller_api(ctx)
  return respond.respond(ctx, 200, obj{ "description", "AWX REST API", "current_version", "/api/v2/",
    "available_versions", obj{ "v2", "/api/v2/" }, "oauth2", "/api/o/", "custom_logo", "",
    "custom_login_info", "", "login_redirect_override", "" })
end

--- The controller's `/api/v2/`.
-- @tparam table ctx request context
-- @treturn table response
function M.controller_v2(ctx)
  return listing(ctx, "/api/v2/", { "ping", "me", "users", "organizations", "applications", "tokens" })
end

--- The controller's `ping/`.
-- @tparam table ctx request context
-- @treturn table response
function M.controller_ping(ctx)
  local _, version = product(ctx)
  local now = iso(ctx.store:now())
  return respond.respond(ctx, 200, obj{
    "ha", false, "version", version, "active_node", NODE, "install_uuid", "00000000-0000-4000-8000-00000000a5b1",
    "instances", arr{ obj{ "node", NODE, "node_type", "hybrid", "uuid", "00000000-0000-4000-8000-000000000001",
                           "heartbeat", now, "capacity", 100, "version", version } },
    "instance_groups", arr{ obj{ "name", "default", "capacity", 100, "instances", arr{ NODE } } },
  })
end

--- The OAuth2 root (`/o/`, the controller's `/api/o/`) under `base`.
-- @tparam string base `/o/` or `/api/o/`
-- @treturn function view `(ctx)`
function M.oauth(base)
  return function(ctx)
    return respond.respond(ctx, 200, obj{ "authorize", base .. "authorize/", "revoke_token", base .. "revoke_token/",
                                          "token", base .. "token/" })
  end
end

return M
