--- The URL table: which view answers which path and method, for the gateway
-- (`/api/gateway/v1/`, `/o/`) and for the controller (`/api/v2/`, `/api/o/`). A route is
-- `{pattern, view}`; a view is `{name, methods, allow, anon, anon_unless, oauth2_view}` (a DRF
-- view, run by aap.sim.gateway) or `{oauth = fn}` (an OAuth2 provider endpoint, run as it is).
local request = require("aap.sim.request")
local oauth = require("aap.sim.oauth")
local tokens = require("aap.sim.views.tokens")
local apps = require("aap.sim.views.applications")
local orgs = require("aap.sim.views.organizations")
local users = require("aap.sim.views.users")
local roots = require("aap.sim.views.roots")
local common = require("aap.sim.views.common")
local respond = require("aap.sim.respond")

local M = {}

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

local function build_routes(ctrl)
  local routes = {}
  local function route(pattern, v) routes[#routes + 1] = { "^" .. pattern .. "$", v } end
  local b = ctrl and "/api/v2/" or "/api/gateway/v1/"
  local ID = "([^/.]+)"

  route(b .. "tokens/", view("Token List", {
    GET = function(ctx) return tokens.list(ctx) end,
    POST = function(ctx) return tokens.create(ctx) end,
  }, { oauth2_view = true }))
  route(b .. "tokens/" .. ID .. "/", view("Token Detail", {
    GET = function(ctx, id) return respond.respond(ctx, 200, tokens.serialize(ctx, tokens.get(ctx, id))) end,
    PUT = function(ctx, id) return tokens.update(ctx, id, false) end,
    PATCH = function(ctx, id) return tokens.update(ctx, id, true) end,
    DELETE = tokens.delete,
  }, { oauth2_view = true }))
  route(b .. "applications/", view("Application List", {
    GET = function(ctx) return apps.list(ctx) end,
    POST = function(ctx) return apps.create(ctx) end,
  }, { oauth2_view = true }))
  route(b .. "applications/" .. ID .. "/", view("Application Detail", {
    GET = function(ctx, id) return respond.respond(ctx, 200, apps.serialize(ctx, apps.get(ctx, id))) end,
    PUT = function(ctx, id) return apps.update(ctx, id, false) end,
    PATCH = function(ctx, id) return apps.update(ctx, id, true) end,
    DELETE = apps.delete,
  }, { oauth2_view = true }))
  local app_tokens = {
    GET = function(ctx, id)
      local a = apps.get(ctx, id)
      return tokens.list(ctx, function(t) return t.application == a.id end)
    end,
  }
  if ctrl then
    app_tokens.POST = function(ctx, id)
      local a = apps.get(ctx, id)
      return tokens.create(ctx, { application = a.id })
    end
  end
  route(b .. "applications/" .. ID .. "/tokens/", view("Application Token List", app_tokens, { oauth2_view = true }))
  local users_tokens = { GET = tokens.sublist("all") }
  local personal = { GET = tokens.sublist("personal") }
  local authorized = { GET = tokens.sublist("authorized") }
  if ctrl then
    users_tokens.POST = function(ctx) return tokens.create(ctx) end
    personal.POST = function(ctx) return tokens.create(ctx, { application = false }) end
    authorized.POST = function(ctx) return tokens.create(ctx, { require_app = true }) end
  end
  route(b .. "users/" .. ID .. "/tokens/", view("User Token List", users_tokens, { oauth2_view = true }))
  route(b .. "users/" .. ID .. "/personal_tokens/", view("Personal Token List", personal, { oauth2_view = true }))
  route(b .. "users/" .. ID .. "/authorized_tokens/", view("Authorized Token List", authorized,
    { oauth2_view = true }))
  route(b .. "users/", view("User List", { GET = users.list }))
  route(b .. "users/" .. ID .. "/", view("User Detail", { GET = users.detail }))
  route(b .. "organizations/", view("Organization List", { GET = orgs.list, POST = orgs.create }))
  route(b .. "organizations/" .. ID .. "/", view("Organization Detail", {
    GET = function(ctx, id) return respond.respond(ctx, 200, orgs.serialize(ctx, orgs.get(ctx, id))) end,
    PUT = orgs.update(false), PATCH = orgs.update(true), DELETE = orgs.delete,
  }))
  route(b .. "me/", view("Me", { GET = users.me }))

  if ctrl then
    route("/api/", view("Root", { GET = roots.controller_api }, { anon = true }))
    route("/api/v2/", view("Version 2", { GET = roots.controller_v2 }, { anon = true }))
    route("/api/v2/ping/", view("Ping", { GET = roots.controller_ping }, { anon = true }))
    route("/api/v2/tokens/" .. ID .. "/activity_stream/", view("Activity Stream", {
      GET = function(ctx, id) tokens.get(ctx, id); return common.empty_list(ctx) end }))
    route("/api/v2/applications/" .. ID .. "/activity_stream/", view("Activity Stream", {
      GET = function(ctx, id) apps.get(ctx, id); return common.empty_list(ctx) end }))
    route("/api/v2/users/" .. ID .. "/applications/", view("User Applications", {
      GET = function(ctx, id)
        local uid = request.user_id(ctx, id)
        return apps.list(ctx, function(a) return a.user == uid end)
      end,
      POST = function(ctx) return apps.create(ctx) end,
    }))
    route("/api/v2/organizations/" .. ID .. "/applications/", view("Organization Applications", {
      GET = function(ctx, id)
        local o = orgs.get(ctx, id)
        return apps.list(ctx, function(a) return a.organization == o.id end)
      end,
      POST = function(ctx, id) return apps.create(ctx, orgs.get(ctx, id).id) end,
    }))
    route("/api/o/", view("OAuth2 Root", { GET = roots.oauth("/api/o/") }, { anon = true }))
    route("/api/o/token/", { oauth = oauth.token })
    route("/api/o/revoke_token/", { oauth = oauth.revoke })
    route("/api/o/authorize/", { oauth = oauth.authorize("/api/login/") })
  else
    route("/api/", view("Api Root", { GET = roots.gateway_api }, { anon = true }))
    route("/api/gateway/", view("Api Versions", { GET = roots.gateway_versions }, { anon = true }))
    route("/api/gateway/v1/", view("Api V1 Root", { GET = roots.gateway_v1 }, { anon = true }))
    route("/api/gateway/v1/ping/", view("Ping", { GET = roots.gateway_ping },
      { anon = true, anon_unless = "ping_requires_auth" }))
    route("/api/gateway/v1/status/", view("Status", { GET = roots.gateway_status }))
    route("/o/", view("OAuth2 Root", { GET = roots.oauth("/o/") }, { anon = true }))
    route("/o/token/", { oauth = oauth.token })
    route("/o/revoke_token/", { oauth = oauth.revoke })
    route("/o/authorize/", { oauth = oauth.authorize("/api/gateway/v1/login/") })
  end
  return routes
end

--- The routes of each flavor, in match order: `M.gateway`, `M.controller`.
M.gateway = build_routes(false)
M.controller = build_routes(true)

return M
