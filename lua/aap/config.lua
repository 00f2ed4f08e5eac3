--- Connection settings for the `aap` command: flags first, then the environment,
-- following the conventions of AAP's own tools (AAP_HOSTNAME, AAP_USERNAME, ...).
-- Secrets come only from the environment, a file or standard input, never from argv.
-- @module aap.config
local M = {}

local getenv = os.getenv

--- What the options for aap.connect do not carry: which credentials were chosen, and
-- whether another kind was set too (keyed by the options table; weak).
M.info = setmetatable({}, { __mode = "k" })

--- A local error (exit code 1): `nil` and an `aap.Error` (`aap.errors`) with code "usage"
-- and the formatted message, printed as the message alone (`plain`).
local function fail(fmt, ...)
  return nil, require("aap.errors").new("usage", fmt:format(...), { plain = true })
end
M.fail = fail

local TRUE = { ["1"] = true, ["true"] = true, yes = true, on = true }
local FALSE = { ["0"] = true, ["false"] = true, no = true, off = true }

--- Strict boolean parsing: 1/true/yes/on and 0/false/no/off (any case); anything else is an error.
-- @tparam string name the variable's name, for the message
-- @tparam ?string value
-- @treturn ?boolean the value (nil when unset or empty)
-- @treturn ?aap.Error error
function M.boolean(name, value)
  if value == nil or value == "" then return nil end
  local v = value:lower()
  if TRUE[v] then return true end
  if FALSE[v] then return false end
  return fail("%s must be true or false (1/0, yes/no, on/off), not %q", name, value)
end

--- Positive number of seconds (e.g. "30", "2.5").
function M.seconds(name, value)
  if value == nil or value == "" then return nil end
  local n = tonumber(value)
  if not n or n <= 0 or n ~= n or n == math.huge then
    return fail("%s must be a positive number of seconds, not %q", name, value)
  end
  return n
end

local function first_env(names)
  for _, n in ipairs(names) do
    local v = getenv(n)
    if v and v ~= "" then return v, n end
  end
end

--- The gateway's base URL from --url or AAP_HOSTNAME / AAP_URL / AAP_HOST / CONTROLLER_HOST.
-- A bare host name gets https://; trailing slashes and an API path (/api/gateway/v1/,
-- /api/v2/, ...) are dropped, since aap adds the API's paths itself.
function M.url(flag)
  local v, from = flag, "--url"
  if not v or v == "" then v, from = first_env({ "AAP_HOSTNAME", "AAP_URL", "AAP_HOST", "CONTROLLER_HOST" }) end
  if not v then
    return fail("no gateway URL: set AAP_HOSTNAME (or AAP_URL) or pass --url")
  end
  if v:find("[%z\r\n%s]") then return fail("%s holds white space or control characters", from) end
  if not v:find("^%a[%w+.-]*://") then v = "https://" .. v end
  local scheme = v:match("^(%a[%w+.-]*)://"):lower()
  if scheme ~= "http" and scheme ~= "https" then
    return fail("%s must be an http:// or https:// URL", from)
  end
  if v:match("^%a+://[^/]*@") then
    return fail("%s must not carry credentials; use AAP_USERNAME and AAP_PASSWORD", from)
  end
  if v:find("[?#]") then return fail("%s must not have a query string or fragment", from) end
  local given = v
  -- The API's own path is added by aap: accept a URL copied from the browser or the docs.
  v = v:gsub("/+$", "")
  for _, suffix in ipairs({ "/api/gateway/v1", "/api/controller/v2", "/api/v2", "/api/gateway", "/api" }) do
    if v:sub(-#suffix) == suffix then
      v = v:sub(1, -#suffix - 1)
      break
    end
  end
  -- What the C core would refuse (no host, a port out of range or not a number, an unclosed
  -- [IPv6 literal]) is the person's mistake: say so here, as a usage error.
  local ok, why = require("aap").check_url(v)
  if not ok then return fail("%s is %q: %s", from, given, why) end
  return v
end

local function read_secret_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then return fail("cannot read %s file: %s", what, err) end
  local s = f:read("a") or ""
  f:close()
  s = s:gsub("\r?\n$", "")
  if s == "" then return fail("%s file %s is empty", what, path) end
  return s
end

--- Reads a secret from standard input (one line, or the whole input without the final newline).
function M.read_stdin(what)
  local s = io.stdin:read("a") or ""
  s = s:gsub("\r?\n$", "")
  if s == "" then return fail("no %s on standard input", what) end
  if s:find("[\r\n]") then return fail("%s on standard input holds more than one line", what) end
  return s
end

--- Builds the options for aap.connect from parsed flags and the environment.
-- @tparam table args parsed flags: url, username, password_stdin, ca_file, insecure, timeout, flavor,
--   allow_plain_http
-- @tparam ?table opts `anonymous = true` when the call needs no credentials (refresh);
--   `prompt`: function(text) -> password | nil, err, to ask for the password when none is set
-- @treturn table options for aap.connect, or nil, err
function M.connection(args, opts)
  opts = opts or {}
  local url, err = M.url(args.url)
  if not url then return nil, err end
  local c = { url = url, user_agent = "aap/" .. (require("aap")._VERSION) }

  local insecure = args.insecure or nil
  if insecure == nil then
    local validate, e1 = M.boolean("AAP_VALIDATE_CERTS", getenv("AAP_VALIDATE_CERTS"))
    if e1 then return nil, e1 end
    local skip, e2 = M.boolean("AAP_INSECURE_SKIP_VERIFY", getenv("AAP_INSECURE_SKIP_VERIFY"))
    if e2 then return nil, e2 end
    if validate == false or skip == true then insecure = true end
  end
  c.insecure = insecure or false
  c.ca_file = args.ca_file or getenv("AAP_CA_FILE")
  if c.ca_file == "" then c.ca_file = nil end
  local t, e3 = M.seconds("--timeout/AAP_TIMEOUT", args.timeout or getenv("AAP_TIMEOUT"))
  if e3 then return nil, e3 end
  c.timeout = t
  local flavor = args.flavor
  if not flavor then
    flavor = getenv("AAP_FLAVOR")
    if flavor == "" then flavor = nil end
    if flavor and flavor ~= "auto" and flavor ~= "gateway" and flavor ~= "controller" then
      return fail("AAP_FLAVOR must be auto, gateway or controller (not %q)", flavor:sub(1, 40))
    end
  end
  c.flavor = flavor or "auto"
  -- Credentials of any kind over plain http:// to a host that is not loopback: refused by the
  -- core unless allowed here. AAP_ALLOW_INSECURE_BASIC / --allow-insecure-basic: former names.
  local allow, e4 = M.boolean("AAP_ALLOW_PLAIN_HTTP", getenv("AAP_ALLOW_PLAIN_HTTP"))
  if e4 then return nil, e4 end
  local allow_old, e5 = M.boolean("AAP_ALLOW_INSECURE_BASIC", getenv("AAP_ALLOW_INSECURE_BASIC"))
  if e5 then return nil, e5 end
  c.allow_plain_http = (args.allow_plain_http or args.allow_insecure_basic or allow or allow_old) and true or false
  if opts.anonymous then return c end

  local token = getenv("AAP_TOKEN")
  if args.token_stdin then
    local s, e = M.read_stdin("token")
    if not s then return nil, e end
    token = s
  end
  if token and token ~= "" and not args.password_stdin then
    c.token = token
    M.info[c] = {
      credentials = args.token_stdin and "the token from --token-stdin" or "AAP_TOKEN",
      both = not args.token_stdin and ((getenv("AAP_PASSWORD") or "") ~= "" or
        (getenv("AAP_PASSWORD_FILE") or "") ~= ""),
    }
    return c
  end
  c.username = args.username or getenv("AAP_USERNAME")
  if not c.username or c.username == "" then c.username = "admin" end
  local password
  if args.password_stdin then
    local s, e = M.read_stdin("password")
    if not s then return nil, e end
    password = s
  else
    local pf = getenv("AAP_PASSWORD_FILE")
    if pf and pf ~= "" then
      local s, e = read_secret_file(pf, "AAP_PASSWORD_FILE")
      if not s then return nil, e end
      password = s
    else
      password = getenv("AAP_PASSWORD")
    end
  end
  if (not password or password == "") and opts.prompt then
    -- None given, and a person at a terminal: ask, without echo (never through argv).
    local s, e = opts.prompt(("Password for %s at %s: "):format(c.username, url))
    if not s then return nil, e end
    password = s
  end
  if not password or password == "" then
    return fail("no credentials: set AAP_PASSWORD (or AAP_PASSWORD_FILE, --password-stdin) or AAP_TOKEN")
  end
  c.password = password
  return c
end

--- Whether credentials are given (a password or token in the environment, or one to be read
-- from stdin). Without them, commands that can use the env file's own token (rotate, status)
-- connect anonymously.
-- @tparam table args parsed flags (password_stdin, token_stdin)
function M.has_credentials(args)
  for _, v in ipairs({ "AAP_PASSWORD", "AAP_PASSWORD_FILE", "AAP_TOKEN" }) do
    local x = getenv(v)
    if x and x ~= "" then return true end
  end
  return args.password_stdin or args.token_stdin or false
end

--- OAuth client credentials for refresh: AAP_CLIENT_ID / AAP_CLIENT_SECRET, else the same keys
-- in the env file document, if it holds them.
function M.client(doc)
  local id = getenv("AAP_CLIENT_ID")
  local secret = getenv("AAP_CLIENT_SECRET")
  if (not id or id == "") and doc then id = doc:get("AAP_CLIENT_ID") end
  if (not secret or secret == "") and doc then secret = doc:get("AAP_CLIENT_SECRET") end
  if not id or id == "" then
    return fail("no OAuth client id: set AAP_CLIENT_ID to the application's client_id (`aap app show NAME` "
      .. "shows it; `aap token create --application NAME --env-file FILE` records it in the file)")
  end
  if secret == "" then secret = nil end
  return { client_id = id, client_secret = secret }
end

return M
