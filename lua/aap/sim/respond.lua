--- The emulator's answers: DRF responses with the gateway's (or the controller's) headers, the
-- error answers DRF and Django give (401, 403, 404, 500 pages), and how a view raises one.
-- A view stops with `raise(response)` (or `fail`, `unauthorized`, ...); the dispatcher in
-- aap.sim.gateway catches it with `M.caught` and sends it.
local socket = require("socket")
local json = require("aap.sim.json")
local store_mod = require("aap.sim.store")

local obj = json.obj
local format, gettime = string.format, socket.gettime

local M = {}

--- The `X-API-Node` the emulator names (and the controller's ping lists).
M.NODE = "aap-sim"
local NODE = M.NODE
local RAISED = { __name = "aap.sim.response" }
local PERMISSION = "You do not have permission to perform this action."
local NOT_AUTH = "Authentication credentials were not provided."

--- The product name and version the answers carry (the controller's own when not configured).
-- @tparam table ctx request context
-- @treturn string name
-- @treturn string version
function M.product(ctx)
  local cfg = ctx.cfg
  local name, version = cfg.product_name, cfg.product_version
  if ctx.ctrl then
    if name == "Unnamed" then name = "AWX" end
    if version == "2.5" then version = "24.6.1" end
  end
  return name, version
end
local product = M.product

--- A DRF response: JSON body (compact), `Vary`, `Allow`, the `X-API-*` headers.
-- @tparam table ctx request context
-- @tparam number status
-- @param[opt] body a JSON value (aap.sim.json), nil for none
-- @tparam[opt] table extra more headers, `{ {name, value}, ... }`
-- @treturn table response
function M.respond(ctx, status, body, extra)
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
local respond = M.respond

--- A 201 answer: DRF's CreateModelMixin adds `Location` from the object's `url` (the gateway's
-- relative one); the controller sends none.
-- @tparam table ctx request context
-- @param body the new object
-- @treturn table response
function M.created(ctx, body)
  local loc = not ctx.ctrl and json.get(body, "url") or nil
  return respond(ctx, 201, body, loc and { { "Location", loc } } or nil)
end

--- Stop the view: `response` is the answer (caught by the dispatcher, or by `M.caught`).
-- @tparam table resp response
function M.raise(resp)
  error(setmetatable(resp, RAISED), 0)
end
local raise = M.raise

--- Whether an error value is a response raised with `M.raise`.
-- @param e an error value
-- @treturn boolean
function M.is_raised(e) return getmetatable(e) == RAISED end

--- The response an error value stands for, if it was raised with `M.raise`, else nil.
-- @param e an error value
-- @treturn table|nil response
function M.caught(e)
  if getmetatable(e) == RAISED then return setmetatable(e, nil) end
end

--- DRF's error body, `{"detail": msg}`.
-- @tparam string msg
-- @return a JSON object
function M.detail(msg) return obj{ "detail", msg } end
local detail = M.detail

--- Raise a DRF error answer `{"detail": msg}`.
-- @tparam table ctx request context
-- @tparam number status
-- @tparam string msg
-- @tparam[opt] table extra more headers
function M.fail(ctx, status, msg, extra)
  raise(respond(ctx, status, detail(msg), extra))
end
local fail = M.fail

local function www_authenticate(ctx)
  if ctx.ctrl then return "Bearer realm=api authorization_url=/api/o/authorize/" end
  local v = 'Bearer realm="api"'
  if ctx.bearer_error then
    v = v .. ',error="invalid_token",error_description="' .. ctx.bearer_error .. '"'
  end
  return v
end

--- Raise the 401 `NotAuthenticated` answer (with `WWW-Authenticate`) for a context.
-- @tparam table ctx request context
-- @tparam[opt] string msg the detail (default: credentials not provided)
function M.unauthorized(ctx, msg)
  if not msg then
    msg = NOT_AUTH
    if ctx.ctrl then msg = msg .. " To establish a login session, visit /api/login/." end
  end
  fail(ctx, 401, msg, { { "WWW-Authenticate", www_authenticate(ctx) } })
end

--- Raise the 403 permission answer for a context.
-- @tparam table ctx request context
-- @tparam[opt] string msg the detail (default: DRF's permission message)
function M.forbidden(ctx, msg) fail(ctx, 403, msg or PERMISSION) end

--- Raise DRF's 404 (`No MODEL matches the given query.`, or `Not found.`).
-- @tparam table ctx request context
-- @tparam[opt] string model
function M.not_found(ctx, model)
  fail(ctx, 404, model and format("No %s matches the given query.", model) or "Not found.")
end

--- A plain (non-DRF) answer, `text/html; charset=utf-8`.
-- @tparam number status
-- @tparam[opt] string text body
-- @tparam[opt] table headers more headers
-- @treturn table response
function M.plain(status, text, headers)
  local h = { { "Content-Type", "text/html; charset=utf-8" } }
  for _, x in ipairs(headers or {}) do h[#h + 1] = x end
  return { status = status, headers = h, body = text or "" }
end

--- Django's page for a route it does not have (the reference gateway's, byte for byte).
M.NOT_FOUND_PAGE = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n"
  .. "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n"
--- Django's page for an unhandled exception (DEBUG off), as `text/html; charset=utf-8`.
M.SERVER_ERROR_PAGE = "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n"
  .. "</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"

--- Raise Django's 500 page.
function M.server_error() raise(M.plain(500, M.SERVER_ERROR_PAGE)) end

return M
