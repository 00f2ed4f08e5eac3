--- The emulated platform gateway (django-ansible-base's oauth2_provider behind DRF) and,
-- with `flavor = "controller"`, the AAP 2.4 automation controller's token API: the dispatcher.
-- It routes a request (aap.sim.routes), negotiates content, authenticates (aap.sim.auth),
-- checks the token's scope and the method, and runs the view (aap.sim.views.*, aap.sim.oauth),
-- turning a raised answer (aap.sim.respond) into the response. See
-- ../shared/docs/aap-gateway-api.md for the behaviour reproduced.
local json = require("aap.sim.json")
local respond = require("aap.sim.respond")
local request = require("aap.sim.request")
local auth = require("aap.sim.auth")
local routes = require("aap.sim.routes")

local obj, arr = json.obj, json.arr
local format = string.format
local fail, plain = respond.fail, respond.plain

local M = {}

local ROUTES = { gateway = routes.gateway, controller = routes.controller }

local function options_response(ctx, v)
  local parses = ctx.ctrl and arr{ "application/json" }
    or arr{ "application/json", request.FORM, request.MULTIPART }
  return respond.respond(ctx, 200, obj{ "name", v.name, "description", "",
                                        "renders", arr{ "application/json", "text/html" }, "parses", parses })
end

local function not_found_page(ctx)
  if ctx.ctrl and ctx.req.path:sub(1, 5) == "/api/" then
    return { status = 404, headers = { { "Content-Type", "application/json" } },
             body = json.encode(respond.detail("The requested resource could not be found.")) }
  end
  return plain(404, respond.NOT_FOUND_PAGE)
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
  auth.authenticate(ctx)
  local anon = v.anon and not (v.anon_unless and ctx.cfg[v.anon_unless])
  if not anon and not ctx.user then respond.unauthorized(ctx) end
  auth.check_scope(ctx, v.oauth2_view)
  local method = ctx.method
  if method == "OPTIONS" then return options_response(ctx, v) end
  local fn = v.methods[method] or (method == "HEAD" and v.methods.GET)
  if not fn then fail(ctx, 405, format('Method "%s" not allowed.', method)) end
  return fn(ctx, table.unpack(captures))
end

--- Route and answer one request (no faults, no log: those are aap.sim's).
-- @tparam table store
-- @tparam table req parsed request
-- @tparam[opt] table ctx the request's context (made from store and req when nil)
-- @treturn table response
-- @treturn table ctx
function M.handle(store, req, ctx)
  ctx = ctx or request.context(store, req)
  local flavor_routes = ROUTES[ctx.cfg.flavor] or ROUTES.gateway
  local path = req.path
  local v, captures
  for _, r in ipairs(flavor_routes) do
    local caps = { path:match(r[1]) }
    if caps[1] then
      v, captures = r[2], caps
      if caps[1] == path then captures = {} end
      break
    end
  end
  if not v then
    for _, r in ipairs(flavor_routes) do
      if (path .. "/"):match(r[1]) then
        local loc = req.rawpath .. "/" .. (req.query ~= "" and ("?" .. req.query) or "")
        return plain(301, "", { { "Location", loc } }), ctx
      end
    end
    return not_found_page(ctx), ctx
  end
  local ok, resp = xpcall(run_view, function(e)
    if respond.is_raised(e) then return e end
    return debug.traceback(tostring(e), 2)
  end, ctx, v, captures)
  if not ok then
    local raised = respond.caught(resp)
    if raised then return raised, ctx end
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
  local raised = respond.caught(err)
  if raised then return raised end
  error(err, 0)
end

return M
