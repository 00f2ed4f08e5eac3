--- What a view reads from a request: its context (store, settings, query parameters), its body
-- parsed as DRF's parsers do, and the ids in its path.
local socket = require("socket")
local json = require("aap.sim.json")
local codec = require("aap.sim.codec")
local fields = require("aap.sim.fields")
local respond = require("aap.sim.respond")

local obj, arr, null = json.obj, json.arr, json.null
local format, gettime = string.format, socket.gettime
local raise, fail = respond.raise, respond.fail

local M = {}

--- The form media types DRF parses (the controller takes JSON only).
M.FORM = "application/x-www-form-urlencoded"
M.MULTIPART = "multipart/form-data"
local FORM, MULTIPART = M.FORM, M.MULTIPART

--- A request context.
-- @tparam table store
-- @tparam table req parsed request
-- @treturn table ctx
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

--- Parse the request body as DRF's parsers do (the controller takes JSON only). JSON that is
-- not an object is the serializer's 400, unless `any_json`: then `data.invalid` holds that answer.
-- @tparam table ctx request context
-- @tparam[opt] boolean any_json
-- @treturn table `{values = {...}, form = boolean, invalid = response?}`; raises 400/415 answers
function M.data(ctx, any_json)
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
      data = { values = {}, form = false, invalid = respond.respond(ctx, 400, obj{ "non_field_errors",
        arr{ "No data provided" } }) }
    elseif type(v) ~= "table" or #v > 0 or body:match("^%s*%[") then
      local t = body:match("^%s*%[") and "list" or fields.pytype(v)
      data = { values = {}, form = false, invalid = respond.respond(ctx, 400, obj{ "non_field_errors",
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

--- Python's truth of a request value (nil, null, false, "", 0 and {} are false).
-- @param v
-- @treturn boolean
function M.truthy(v)
  if v == nil or v == null or v == false or v == "" or v == 0 then return false end
  if type(v) == "table" and next(v) == nil then return false end
  return true
end

--- Whether a query parameter is set to `true` or `1` (`?validate=true`).
-- @tparam table ctx request context
-- @tparam string name
-- @treturn boolean
function M.flag(ctx, name)
  local v = ctx.params[name]
  return v ~= nil and (v:lower() == "true" or v == "1")
end

--- A detail route's id: a non-integer is DRF's plain 404.
-- @tparam table ctx request context
-- @tparam string s the path's id
-- @treturn integer
function M.id(ctx, s)
  local id = s:match("^%d+$") and math.tointeger(tonumber(s))
  if not id then respond.not_found(ctx) end
  return id
end

--- A sub-list's user id (`users/{id}/...`): a non-integer is the ORM's 400.
-- @tparam table ctx request context
-- @tparam string sid the path's id
-- @treturn integer
function M.user_id(ctx, sid)
  local id = sid:match("^%d+$") and math.tointeger(tonumber(sid))
  if not id then
    fail(ctx, 400, format("Field 'id' expected a number but got '%s'.", sid))
  end
  return id
end

return M
