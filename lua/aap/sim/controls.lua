--- The emulator's test controls under `/__sim/` (docs/design.md, "The emulator's test
-- controls"): seed, reset, clock, faults, config, log, bulk token seeding. Only with
-- `--controls`, and only for a superuser; control requests are not logged and never
-- consume faults.
local json = require("aap.sim.json")
local gateway = require("aap.sim.gateway")
local request = require("aap.sim.request")
local respond = require("aap.sim.respond")
local auth = require("aap.sim.auth")
local store_mod = require("aap.sim.store")
local fields = require("aap.sim.fields")

local arr, null = json.arr, json.null

local M = {}

--- Fault kinds and the parameters each takes.
M.KINDS = {
  ["404"] = {}, ["500"] = {}, ["502"] = {}, ["503"] = {}, ["504"] = {}, ["429"] = { retry_after = "number" },
  delay = { delay_ms = "number" }, close = {}, drop = {}, malformed_json = {}, huge_body = { size = "number" },
  redirect = { location = "string", status = "number" }, reset = {},
}

local function answer(status, body)
  return { status = status, headers = { { "Content-Type", "application/json" } },
           body = body == nil and "" or json.encode(body) }
end

local function bad(msg) return answer(400, { detail = msg }) end

local function body_of(req)
  local b = req.body or ""
  if b == "" then return {} end
  local v, err = json.decode(b)
  if type(v) ~= "table" or #v > 0 then return nil, "JSON object expected" .. (err and (": " .. err) or "") end
  return v
end

local function clock(sim)
  local offset = sim.store.offset_us / 1000000
  if offset == math.floor(offset) then offset = math.tointeger(offset) end
  return { now = store_mod.iso(sim.store:now()), offset = offset }
end

local function fault_list(sim)
  local out = arr{}
  for i, f in ipairs(sim.faults) do
    local o = {}
    for k, v in pairs(f) do o[k] = v end
    out[i] = o
  end
  return { faults = out }
end

local function seed_answer(sim)
  local seed, store = sim.seed, sim.store
  local out = { admin = null, user = null, external = null, organization = null, application = null }
  local function cred(u) return { id = u.id, username = u.username, password = u.password or null } end
  for _, u in ipairs(seed.users) do
    if u.username ~= "_system" and u.password then
      if u.is_superuser and out.admin == null then out.admin = cred(u)
      elseif u.external and out.external == null then out.external = cred(u)
      elseif not u.is_superuser and not u.external and out.user == null then out.user = cred(u) end
    end
  end
  local org = seed.organizations[1]
  if org then out.organization = { id = org.id, name = org.name } end
  for _, a in ipairs(seed.applications) do
    if a.client_type == "confidential" and store.apps[a.id] then
      out.application = { id = a.id, name = a.name, client_id = a.client_id, client_secret = a.client_secret }
      break
    end
  end
  return out
end

local function add_fault(sim, spec)
  local kind = spec.kind
  if type(kind) == "number" then kind = string.format("%d", kind) end
  local params = M.KINDS[kind]
  if not params then return nil, "unknown fault kind: " .. tostring(spec.kind) end
  local count = spec.count == nil and 1 or spec.count
  if math.type(count) ~= "integer" and not (type(count) == "number" and count == math.floor(count)) or count < 1 then
    return nil, "count must be a positive integer"
  end
  local f = { kind = kind, count = math.tointeger(count) }
  for _, k in ipairs{ "path", "method" } do
    if spec[k] ~= nil then
      if type(spec[k]) ~= "string" then return nil, k .. " must be a string" end
      f[k] = k == "method" and spec[k]:upper() or spec[k]
    end
  end
  for k, t in pairs(params) do
    if spec[k] ~= nil then
      if type(spec[k]) ~= t or (t == "number" and spec[k] < 0) then return nil, k .. " must be a " .. t end
      f[k] = spec[k]
    end
  end
  if kind == "redirect" and (not f.location or f.location:find("[\r\n]")) then
    f.location = f.location and f.location:gsub("[\r\n]", "") or "/"
  end
  if kind == "redirect" and f.status and not ({ [301] = 1, [302] = 1, [303] = 1, [307] = 1, [308] = 1 })[f.status] then
    return nil, "status must be 301, 302, 303, 307 or 308"
  end
  sim.faults[#sim.faults + 1] = f
  return true
end

local function bulk_tokens(sim, spec)
  local store = sim.store
  local n = spec.count
  if math.type(n) ~= "integer" or n < 1 or n > 200000 then return nil, "count must be an integer from 1 to 200000" end
  local admin = store:first_superuser()
  local uid = spec.user or (admin and admin.id)
  if not store.users[uid] then return nil, "unknown user" end
  local app = spec.application
  if app ~= nil and app ~= null and not store.apps[app] then return nil, "unknown application" end
  if app == null then app = nil end
  local scope = spec.scope or "write"
  if type(scope) ~= "string" or fields.serializer_scope_check(scope) then return nil, "invalid scope" end
  local now = store:now()
  local age = tonumber(spec.age) or 0
  local created = now - math.floor(age * 1000000)
  local last_used
  if spec.last_used_ago ~= nil then last_used = now - math.floor(tonumber(spec.last_used_ago) * 1000000) end
  local rand = require("openssl.rand")
  local first, last
  for _ = 1, n do
    local t = store:create_token{
      user = uid, application = app, scope = scope, description = tostring(spec.description or ""),
      created_by = uid, created = created, hash = "$sha256$" .. store_mod.sha256_hex(rand.bytes(32)),
      refresh_hash = app and ("$sha256$" .. store_mod.sha256_hex(rand.bytes(32))) or nil,
    }
    if t.refresh then t.refresh.scope = scope end
    t.last_used = last_used
    first = first or t.id
    last = t.id
  end
  return { ids = { first, last } }
end

--- Handle a `/__sim/` request.
-- @tparam table sim the running emulator (store, seed, faults, log, start_config)
-- @tparam table req parsed request
-- @treturn table response
function M.handle(sim, req)
  local store = sim.store
  local ctx = request.context(store, req)
  -- the harness must be able to reset a sim whose Basic auth was switched off
  ctx.cfg = setmetatable({ basic_auth = true }, { __index = store.config })
  -- the gateway's own 401/403 answers for anyone but a superuser
  local denied = gateway.catch(function()
    auth.authenticate(ctx)
    if not ctx.user then respond.unauthorized(ctx) end
    if not ctx.user.is_superuser then respond.forbidden(ctx) end
  end)
  if denied then return denied end
  local what = req.path:match("^/__sim/([%w_]+)/?$")
  local m = req.method
  local spec, perr
  if m == "POST" then
    spec, perr = body_of(req)
    if not spec then return bad(perr) end
  end
  if what == "seed" and m == "GET" then
    return answer(200, seed_answer(sim))
  elseif what == "reset" and m == "POST" then
    store:reset()
    sim.faults = {}
    sim.log = {}
    return answer(200, { reset = true, clock = clock(sim) })
  elseif what == "clock" and (m == "GET" or m == "POST") then
    if m == "POST" then
      if spec.advance ~= nil then
        if type(spec.advance) ~= "number" then return bad("advance must be a number of seconds") end
        store:advance(spec.advance)
      elseif spec.offset ~= nil then
        if type(spec.offset) ~= "number" then return bad("offset must be a number of seconds") end
        store.offset_us = math.floor(spec.offset * 1000000)
      else
        return bad("give advance (seconds) or offset (seconds)")
      end
    end
    return answer(200, clock(sim))
  elseif what == "faults" and (m == "GET" or m == "POST" or m == "DELETE") then
    if m == "DELETE" then sim.faults = {} end
    if m == "POST" then
      local okf, ferr = add_fault(sim, spec)
      if not okf then return bad(ferr) end
    end
    return answer(200, fault_list(sim))
  elseif what == "config" and (m == "GET" or m == "POST") then
    if m == "POST" then
      local okc, cerr = store_mod.merge_config(store.config, spec)
      if not okc then return bad(cerr) end
    end
    return answer(200, store.config)
  elseif what == "log" and (m == "GET" or m == "DELETE") then
    if m == "DELETE" then sim.log = {} end
    return answer(200, { entries = arr(sim.log) })
  elseif what == "token_id" and m == "POST" then
    -- ground truth for specs: which access token has this value (it comes in the body, never
    -- in the URL, so it is not logged)
    if type(spec.token) ~= "string" then return bad("give token (the access token's value)") end
    local t = store:token_by_value(spec.token)
    return answer(200, { id = t and t.id or null })
  elseif what == "tokens" and m == "POST" then
    local res, terr = bulk_tokens(sim, spec)
    if not res then return bad(terr) end
    return answer(201, res)
  elseif what and ({ seed = 1, reset = 1, clock = 1, faults = 1, config = 1, log = 1, tokens = 1,
                     token_id = 1 })[what] then
    return answer(405, { detail = ('Method "%s" not allowed.'):format(m) })
  end
  return answer(404, { detail = "Not found." })
end

return M
