--- Test helpers: start the gateway emulator on an ephemeral loopback port, talk to
-- its /__sim/ controls, and run bin/aap as a subprocess with a controlled environment.
-- Secrets never go into a child's argv: environment values are passed through a 0600
-- file that the child's shell sources before it execs.
local http = require("socket.http")
local ltn12 = require("ltn12")
local mime = require("mime")
local cjson = require("cjson.safe").new()

local M = {}

local function absolute(dir)
  if dir:sub(1, 1) == "/" then return dir end
  local p = io.popen("cd " .. "'" .. dir:gsub("'", "'\\''") .. "'" .. " && pwd")
  local abs = p:read("l")
  p:close()
  return abs
end
local ROOT = absolute((debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$")) or ".")
M.ROOT = ROOT
M.AAP = ROOT .. "/bin/aap"
M.ADMIN_PASSWORD = "sim-admin-Pa55"

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shquote = shquote

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
M.readfile = readfile

--- Writes data to path (then chmod mode, when given); returns path.
function M.writefile(path, data, mode)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  if mode then os.execute(("chmod %o %s"):format(mode, shquote(path))) end
  return path
end

--- A fresh temporary directory, removed by M.cleanup().
local tmpdirs = {}
function M.tmpdir()
  local p = io.popen("mktemp -d /tmp/aap-spec.XXXXXX")
  local d = p:read("l")
  p:close()
  tmpdirs[#tmpdirs + 1] = d
  return d
end

function M.cleanup()
  for _, d in ipairs(tmpdirs) do os.execute("rm -rf " .. shquote(d)) end
  tmpdirs = {}
end

function M.mode(path)
  local p = io.popen("stat -c %a " .. shquote(path) .. " 2>/dev/null")
  local m = p:read("l")
  p:close()
  return m
end

local Sim = {}
Sim.__index = Sim

--- Start `bin/aap sim`. opts.args: extra arguments (e.g. {"--flavor", "controller"}).
-- opts.controls defaults to true. Returns a Sim with .url, .pid, .seed.
function M.start_sim(opts)
  opts = opts or {}
  local args = { "sim", "--port", "0", "--admin-password", M.ADMIN_PASSWORD }
  if opts.controls ~= false then args[#args + 1] = "--controls" end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
  local errlog = os.tmpname()
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = shquote(a) end
  local cmd = ("echo $$; exec lua5.4 %s %s 2>%s"):format(shquote(M.AAP), table.concat(quoted, " "),
    shquote(errlog))
  local h = assert(io.popen(cmd, "r"))
  local pid = h:read("l")
  local url = h:read("l")
  if not url or not url:match("^https?://") then
    h:close()
    error("aap sim did not start: " .. tostring(url) .. "\n" .. (readfile(errlog) or ""))
  end
  local self = setmetatable({ url = url, pid = pid, handle = h, errlog = errlog,
                              admin_password = M.ADMIN_PASSWORD }, Sim)
  if opts.controls ~= false then
    local st, seed = self:control("GET", "/__sim/seed")
    assert(st == 200, "GET /__sim/seed: " .. tostring(st))
    self.seed = seed
  end
  return self
end

local function request(url, method, headers, body, tls)
  local chunks = {}
  local req = {
    url = url, method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  local ok, status, resp_headers
  if url:match("^https:") then
    local https = require("ssl.https")
    req.verify = tls and tls.verify or "none"
    req.protocol = "any"
    ok, status, resp_headers = https.request(req)
  else
    ok, status, resp_headers = http.request(req)
  end
  if not ok then return nil, status end
  return status, table.concat(chunks), resp_headers
end

--- Raw HTTP against the sim. Returns status, body text, headers (lowercase keys).
function Sim:raw(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if opts.json ~= nil then
    body = cjson.encode(opts.json)
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  if body then headers["content-length"] = tostring(#body) end
  if opts.basic then
    headers["authorization"] = "Basic " .. mime.b64(opts.basic[1] .. ":" .. opts.basic[2])
  elseif opts.bearer then
    headers["authorization"] = "Bearer " .. opts.bearer
  end
  return request(self.url .. path, method, headers, body)
end

--- Raw request, body decoded as JSON when it is JSON.
function Sim:json(method, path, opts)
  local st, body, headers = self:raw(method, path, opts)
  if not st then return nil, body end
  local decoded = cjson.decode(body)
  return st, decoded ~= nil and decoded or body, headers
end

--- A /__sim/ control call as the admin.
function Sim:control(method, path, body)
  return self:json(method, path, { basic = { "admin", self.admin_password }, json = body })
end

function Sim:reset() return assert(self:control("POST", "/__sim/reset")) end

--- Runs bin/aap as the admin against this emulator (AAP_HOSTNAME, AAP_PASSWORD); `extra`
-- adds or (with false) removes environment variables. Returns what M.run returns.
function Sim:aap(argv, extra)
  local env = { AAP_HOSTNAME = self.url, AAP_PASSWORD = self.admin_password }
  for k, v in pairs(extra or {}) do env[k] = v end
  return M.run(argv, { env = env })
end
function Sim:advance(seconds) return self:control("POST", "/__sim/clock", { advance = seconds }) end
function Sim:fault(spec) return self:control("POST", "/__sim/faults", spec) end
function Sim:configure(cfg) return self:control("POST", "/__sim/config", cfg) end
function Sim:log()
  local st, body = self:control("GET", "/__sim/log")
  assert(st == 200, "GET /__sim/log failed")
  return body.entries
end
function Sim:clear_log() return self:control("DELETE", "/__sim/log") end

--- All tokens on the gateway, as the admin sees them: a sorted list of integer ids (only
-- those for which filter(token) is true, when given), and the raw token objects.
function Sim:token_ids(filter)
  local ids, all, path = {}, {}, "/api/gateway/v1/tokens/?page_size=200"
  while path do
    local st, body = self:json("GET", path, { basic = { "admin", self.admin_password } })
    assert(st == 200, "GET tokens/: " .. tostring(st))
    for _, t in ipairs(body.results) do
      if not filter or filter(t) then
        ids[#ids + 1] = math.tointeger(t.id)
        all[#all + 1] = t
      end
    end
    path = type(body.next) == "string" and body.next or nil
  end
  table.sort(ids)
  return ids, all
end

--- Whether a token value works (GET me/ with it answers 200). Sets its last_used.
function Sim:token_works(value)
  return self:json("GET", "/api/gateway/v1/me/", { bearer = value }) == 200
end

--- The id of the access token with this value, or nil: asked of the emulator's own store
-- (`POST /__sim/token_id`, the value in the body), so it cannot be misled by what lists show.
function Sim:token_id(value)
  local st, body = self:control("POST", "/__sim/token_id", { token = value })
  assert(st == 200, "POST /__sim/token_id: " .. tostring(st))
  if type(body.id) ~= "number" then return nil end
  return math.tointeger(body.id)
end

--- Stop with SIGTERM; returns the exit status (true when it exited 0).
function Sim:stop()
  if not self.handle then return true end
  os.execute("kill -TERM " .. self.pid)
  local ok, how, code = self.handle:close()
  self.handle = nil
  os.remove(self.errlog)
  return ok, how, code
end

function Sim:stderr() return readfile(self.errlog) end

--- Run bin/aap with argv (a list), opts.env (a table of variables added to a minimal
-- environment; false removes one), opts.stdin (a string), opts.cwd, opts.wrap (a command
-- list to run it under, e.g. strace), opts.lua_args (interpreter arguments before the
-- script, e.g. { "-e", code }).
-- Returns { code =, stdout =, stderr = }.
function M.run(argv, opts)
  opts = opts or {}
  local dir = os.tmpname()
  os.remove(dir)
  os.execute("mkdir -m 700 " .. shquote(dir))
  local envf = dir .. "/env"
  local lines = {}
  local base = { PATH = os.getenv("PATH"), HOME = os.getenv("HOME"), LANG = "C.UTF-8",
                 AAP_CPATH = os.getenv("AAP_CPATH"),
                 -- a sanitizer run (scripts/test.sh --sanitize) keeps its settings in children
                 ASAN_OPTIONS = os.getenv("ASAN_OPTIONS"), UBSAN_OPTIONS = os.getenv("UBSAN_OPTIONS") }
  for k, v in pairs(opts.env or {}) do base[k] = v end
  for k, v in pairs(base) do
    if v then lines[#lines + 1] = ("export %s=%s"):format(k, shquote(v)) end
  end
  M.writefile(envf, table.concat(lines, "\n") .. "\n", 384)
  M.writefile(dir .. "/in", opts.stdin or "")
  local q = {}
  for i, a in ipairs(argv) do q[i] = shquote(a) end
  local w = {}
  for i, a in ipairs(opts.wrap or {}) do w[i] = shquote(a) .. " " end
  local la = {}
  for i, a in ipairs(opts.lua_args or {}) do la[i] = shquote(a) .. " " end
  local cmd = ("env -i /bin/sh -c %s"):format(shquote(
    (". %s; %sexec %slua5.4 %s%s %s <%s >%s 2>%s"):format(shquote(envf),
      opts.cwd and ("cd " .. shquote(opts.cwd) .. " && ") or "", table.concat(w), table.concat(la),
      shquote(M.AAP), table.concat(q, " "),
      shquote(dir .. "/in"), shquote(dir .. "/out"), shquote(dir .. "/err"))))
  local _, _, code = os.execute(cmd)
  local res = { code = code, stdout = readfile(dir .. "/out") or "", stderr = readfile(dir .. "/err") or "" }
  os.execute("rm -rf " .. shquote(dir))
  return res
end

--- Source an env file with bash (`set -a; . file`) and return the variables it sets.
function M.source_env(path, keys)
  local q = {}
  for i, k in ipairs(keys) do q[i] = ('printf "%%s\\0" "${%s-<unset>}"'):format(k) end
  local p = io.popen(("bash -c %s"):format(shquote("set -a; . " .. shquote(path) .. " >/dev/null; " ..
    table.concat(q, "; "))))
  local out = p:read("a")
  p:close()
  local vals, i = {}, 1
  for v in out:gmatch("([^%z]*)%z") do vals[keys[i]] = v; i = i + 1 end
  return vals
end

--- A throwaway CA and server certificates, made with the openssl command in dir:
-- returns { ca = path, cert = path, key = path (for 127.0.0.1, ::1 and localhost),
--           wrong_cert = path, wrong_key = path (signed by the same CA, for wrong.example) }.
function M.make_certs(dir)
  local script = [[
set -e
cd "$1"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=aap test CA" \
  -keyout ca.key -out ca.pem -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
mk() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$2.key" -out "$2.csr" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$3" > "$2.ext"
  openssl x509 -req -in "$2.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$2.ext" -out "$2.pem" 2>/dev/null
}
mk localhost server "DNS:localhost,IP:127.0.0.1,IP:::1"
mk wrong.example wrong "DNS:wrong.example"
chmod 600 *.key
]]
  local f = assert(io.open(dir .. "/mk.sh", "w"))
  f:write(script)
  f:close()
  assert(os.execute("bash " .. shquote(dir .. "/mk.sh") .. " " .. shquote(dir)), "openssl failed")
  return { ca = dir .. "/ca.pem", cert = dir .. "/server.pem", key = dir .. "/server.key",
           wrong_cert = dir .. "/wrong.pem", wrong_key = dir .. "/wrong.key" }
end

--- A Python interpreter that has python-dotenv (Debian's python3-dotenv is for /usr/bin/python3;
-- another python3 may come first in PATH), or nil. Under CI it must be there: no silent skip.
M.PYTHON_DOTENV = (function()
  for _, py in ipairs({ "/usr/bin/python3", "python3" }) do
    if os.execute(py .. " -c 'import dotenv' >/dev/null 2>&1") == true then return py end
  end
  assert(os.getenv("CI") ~= "true", "python3-dotenv is missing (scripts/deps.sh installs it)")
end)()

M.json = cjson
M.Sim = Sim
return M
