--- `aap sim`: a local emulator of the AAP platform gateway's token API (and, with
-- `--flavor controller`, of the AAP 2.4 controller's), for tests, benchmarks and the demo.
-- The first line on stdout is the base URL; stderr is the emulator's log. Serves until
-- SIGTERM or SIGINT, then exits 0.
local argparse = require("argparse")
local cjson = require("cjson.safe")
local server = require("aap.sim.server")
local store_mod = require("aap.sim.store")
local gateway = require("aap.sim.gateway")
local request = require("aap.sim.request")
local respond = require("aap.sim.respond")
local controls = require("aap.sim.controls")

local format = string.format

local M = {}

local LOG_CAP = 20000
local SECRET_KEYS = { "token", "secret", "password", "refresh", "code", "key", "access" }

--- The request path for the log, with the values of secret-looking query keys replaced by `REDACTED`.
-- @tparam table req
-- @treturn string
function M.redacted_path(req)
  if req.query == "" then return req.rawpath end
  local parts = {}
  for part in req.query:gmatch("[^&]+") do
    local k = part:match("^([^=]*)") or part
    local lk = k:lower()
    local secret = false
    for _, s in ipairs(SECRET_KEYS) do
      if lk:find(s, 1, true) then secret = true end
    end
    parts[#parts + 1] = secret and (k .. "=REDACTED") or part
  end
  return req.rawpath .. "?" .. table.concat(parts, "&")
end

local FAULT_BODIES = {
  ["404"] = { "text/html; charset=utf-8", respond.NOT_FOUND_PAGE },
  ["500"] = { "text/html; charset=utf-8", respond.SERVER_ERROR_PAGE },
  ["502"] = { "text/html", "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    .. "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n" },
  ["503"] = { "text/plain", "upstream connect error or disconnect/reset before headers. reset reason: "
    .. "connection failure" },
  ["504"] = { "text/plain", "upstream request timeout" },
}

local function take_fault(sim, req)
  for i, f in ipairs(sim.faults) do
    if (not f.path or req.path:sub(1, #f.path) == f.path) and (not f.method or f.method == req.method) then
      f.count = f.count - 1
      if f.count <= 0 then table.remove(sim.faults, i) end
      return f
    end
  end
end

local function fault_response(f)
  local k = f.kind
  if FAULT_BODIES[k] then
    local b = FAULT_BODIES[k]
    return { status = tonumber(k), headers = { { "Content-Type", b[1] } }, body = b[2] }
  elseif k == "429" then
    local s = f.retry_after or 1
    s = math.tointeger(s) or s
    return { status = 429, headers = { { "Content-Type", "application/json" }, { "Retry-After", tostring(s) } },
             body = format('{"detail":"Request was throttled. Expected available in %s seconds."}', s) }
  elseif k == "malformed_json" then
    return { status = 200, headers = { { "Content-Type", "application/json" } },
             body = '{"count":1,"next":null,"previous":null,"results":[{"id":1,"url":"/api/gateway/v1/tok' }
  elseif k == "huge_body" then
    return { status = 200, headers = { { "Content-Type", "application/json" } },
             stream = { chunk = string.rep(" ", 65536), total = math.floor(f.size or 64 * 1024 * 1024) } }
  elseif k == "redirect" then
    return { status = math.tointeger(f.status) or 302,
             headers = { { "Content-Type", "text/html; charset=utf-8" }, { "Location", f.location } },
             body = "" }
  elseif k == "reset" then
    return { status = 0, reset = true }
  end
end

--- Build the emulator's request handler around a store.
-- @tparam table opts `seed` (resolved), `config`, `controls` (boolean), `log` (function or nil)
-- @treturn table sim with `handle(req) -> response`, `store`, `faults`, `log`
function M.new(opts)
  local sim = { seed = opts.seed, faults = {}, log = {}, seq = 0, controls = opts.controls }
  sim.store = store_mod.new(opts.seed, opts.config)
  local say = opts.log
  function sim.handle(req)
    if req.path:sub(1, 7) == "/__sim/" and sim.controls then
      return controls.handle(sim, req)
    end
    local store = sim.store
    local latency = store.config.latency_ms
    if latency and latency > 0 then server.sleep(latency / 1000) end
    local f = take_fault(sim, req)
    local resp, ctx
    if f and f.kind == "delay" then
      server.sleep((f.delay_ms or 1000) / 1000)
    end
    if f and f.kind ~= "delay" and f.kind ~= "close" and f.kind ~= "drop" then
      resp = fault_response(f)
      ctx = request.context(store, req)
    else
      resp, ctx = gateway.handle(store, req)
      if f and f.kind == "close" then resp.truncate = true end
      -- drop: the request took effect, the connection closes before a byte of the answer
      -- (what a client sees when a kept-alive connection dies under a request in flight)
      if f and f.kind == "drop" then resp.drop = true end
    end
    sim.seq = sim.seq + 1
    local entry = {
      seq = sim.seq, conn = req.conn, method = req.method, path = M.redacted_path(req), status = resp.status,
      auth = ctx and ctx.auth or "none", user = ctx and ctx.user and ctx.user.username or cjson.null,
      fault = f and f.kind or cjson.null,
    }
    sim.log[#sim.log + 1] = entry
    if #sim.log > LOG_CAP then
      -- keep the newest half: amortised O(1) per request, even under a benchmark's load
      sim.log = table.move(sim.log, #sim.log - LOG_CAP // 2 + 1, #sim.log, 1, {})
    end
    if say then
      say(format("conn=%d %s %s -> %s%s", req.conn or 0, req.method, entry.path,
        resp.reset and "reset" or tostring(resp.status), f and (" [fault " .. f.kind .. "]") or ""))
    end
    return resp
  end
  return sim
end

-- lua-cjson decodes every JSON number as a float: ids and counts must be integers (a user id
-- of 2.0 would make URLs like users/2.0/).
local function integral(v)
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = integral(x) end
  elseif math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
    return math.tointeger(v)
  end
  return v
end

local function load_state(path)
  local fh, err = io.open(path, "rb")
  if not fh then return nil, err end
  local text = fh:read("a")
  fh:close()
  if path:match("%.json$") or text:match("^%s*[%[{]") then
    local v, jerr = cjson.decode(text)
    if type(v) ~= "table" then return nil, path .. ": invalid JSON: " .. tostring(jerr) end
    return integral(v)
  end
  local chunk, lerr = load(text, "@" .. path, "t", {})
  if not chunk then return nil, lerr end
  local ok, v = pcall(chunk)
  if not ok then return nil, tostring(v) end
  if type(v) ~= "table" then return nil, path .. ": must return a table" end
  return v
end

local function parser()
  local p = argparse("aap sim", "Run a local emulator of the AAP platform gateway token API.")
  p:option("--host", "Address to listen on (127.0.0.1, ::1, ...).", "127.0.0.1")
  p:option("--port", "Port to listen on (0: any free port).", "0"):convert(tonumber)
  p:option("--flavor", "What to emulate: gateway (AAP 2.5+) or controller (AAP 2.4).")
    :choices{ "gateway", "controller" }
  p:option("--state", "A Lua or JSON file with users, organizations, applications, tokens and config.")
  p:option("--admin-password", "The admin password (default: $AAP_SIM_ADMIN_PASSWORD, else random).")
  p:option("--tls-cert", "PEM certificate (chain) to serve HTTPS with.")
  p:option("--tls-key", "PEM private key of --tls-cert.")
  p:option("--behaviour", "Which gateway to behave as where they differ: 2024 (the October 2024 "
    .. "django-ansible-base code of the reference gateway: nested token lists ignore filters, refresh after "
    .. "DELETE is a 500, every user's tokens listed, read tokens may write tokens/, 1000-year tokens, "
    .. "applications without an organization) or 2025 (later gateways: all of those the other way, "
    .. "1-year tokens, app_url). Default: 2024."):choices{ "2024", "2025" }
  p:option("--access-lifetime", "Access token lifetime in seconds (default: 31536000000 with --behaviour "
    .. "2024, 31536000 with 2025)."):convert(math.tointeger)
  p:option("--refresh-lifetime", "Refresh token lifetime in seconds (default 2628000)."):convert(math.tointeger)
  p:option("--idle-timeout", "Seconds before an idle connection is closed.", "30"):convert(tonumber)
  p:flag("--controls", "Enable the /__sim/ test controls (superusers only).")
  p:flag("-q --quiet", "Do not log requests on stderr.")
  return p
end

local function signals()
  local ok, aap = pcall(require, "aap")
  local osx = ok and type(aap) == "table" and aap.os or nil
  if osx and osx.catch_signals and osx.caught then
    osx.catch_signals()
    return function() return osx.caught() ~= nil end, true
  end
  return function() return false end, false
end

--- Entry point of `aap sim`.
-- @tparam table argv the arguments after `sim`
-- @treturn integer exit code
function M.main(argv)
  local p = parser()
  local ok, args = p:pparse(argv or {})
  if not ok then
    io.stderr:write(p:get_usage(), "\n\naap sim: error: ", tostring(args), "\n")
    return 1
  end
  local function err(msg)
    io.stderr:write("aap sim: ", msg, "\n")
    return 1
  end
  if (args.tls_cert == nil) ~= (args.tls_key == nil) then return err("--tls-cert and --tls-key go together") end
  if not args.port or args.port < 0 or args.port > 65535 then return err("--port must be 0..65535") end
  local state = {}
  if args.state then
    local s, serr = load_state(args.state)
    if not s then return err("cannot load state: " .. tostring(serr)) end
    state = s
  end
  local admin_password = args.admin_password or os.getenv("AAP_SIM_ADMIN_PASSWORD")
  if admin_password == "" then admin_password = nil end
  local sok, seed, generated = pcall(store_mod.resolve_seed, state, { admin_password = admin_password })
  if not sok then return err("invalid state: " .. tostring(seed)) end
  local config = {}
  for k, v in pairs(store_mod.DEFAULT_CONFIG) do config[k] = v end
  -- one change: a setting given in the state file or by a flag wins over the behaviour's profile
  local changes = {}
  if type(seed.config) ~= "table" then return err("invalid config: config must be an object") end
  for k, v in pairs(seed.config) do changes[k] = v end
  if args.behaviour then changes.behaviour = args.behaviour end
  if args.flavor then changes.flavor = args.flavor end
  if args.access_lifetime then changes.access_token_lifetime = args.access_lifetime end
  if args.refresh_lifetime then changes.refresh_token_lifetime = args.refresh_lifetime end
  local cok, cerr = store_mod.merge_config(config, changes)
  if not cok then return err("invalid config: " .. cerr) end
  local quiet = args.quiet
  local function log(msg)
    if not quiet then io.stderr:write("aap sim: ", msg, "\n") end
  end
  local sim = M.new{ seed = seed, config = config, controls = args.controls, log = log }
  local srv = server.new{
    host = args.host, port = args.port, handler = sim.handle, log = log,
    clock = function() return sim.store:now() // 1000000 end,
    idle_timeout = args.idle_timeout, request_timeout = args.idle_timeout,
    tls = args.tls_cert and { cert = args.tls_cert, key = args.tls_key } or nil,
  }
  local should_stop, catching = signals()
  local url, lerr = srv:start()
  if not url then return err(lerr) end
  -- the log's start-up lines come first: once a reader has the URL, the credentials are in the log
  io.stderr:write(format("aap sim: %s emulator on %s (behaviour %s, controls %s)\n", config.flavor, url,
    config.behaviour, args.controls and "on" or "off"))
  for _, u in ipairs(seed.users) do
    if u.username == "admin" and generated.admin then
      io.stderr:write(format("aap sim: admin password (random): %s\n", u.password))
    end
  end
  for _, a in ipairs(seed.applications) do
    if a.client_secret then
      io.stderr:write(format("aap sim: application %q (id %d): client_id=%s client_secret=%s\n", a.name, a.id,
        a.client_id, a.client_secret))
    end
  end
  if not catching then
    io.stderr:write("aap sim: aap.os signal helpers unavailable; SIGTERM uses the default action\n")
  end
  io.stderr:flush()
  io.stdout:write(url, "\n")
  io.stdout:flush()
  srv:run(should_stop, 0.2)
  io.stderr:write("aap sim: stopped\n")
  return 0
end

return M
