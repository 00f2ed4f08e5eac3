--- A CronJob pod of deploy/k8s, for specs: deploy/k8s/rotate.sh run in a fresh work directory
-- each time (env -i, as in a container), with a stand-in kubectl that keeps Secrets in files as
-- the API server does: `apply` (the RHDH Secret) records its arguments and manifest in
-- kubectl.log and writes the values where the next pod sees them (secret/KEY); `get` and
-- `replace` serve the state Secret aap-rotate-state with its resourceVersion as a precondition.
-- Faults, by pod:fault(name, on): fail-apply (the apply is refused), kill-after-apply (the pod
-- dies right after the apply), bump-after-get (another run saves the state while this one works).
-- Used by spec/deploy_spec.lua (the emulator) and spec/reference_deploy_spec.lua (the reference).
local helper = require("helper")
local cjson = require("cjson")

local M = {}
local Pod = {}
Pod.__index = Pod

local STANDIN = [[#!/usr/bin/env lua5.4
local DIR = %q
local cjson = require("cjson")
local function readf(p) local f = io.open(p) if not f then return nil end local t = f:read("a") f:close() return t end
local function writef(p, t) local f = assert(io.open(p, "w")) f:write(t) f:close() end
local line = table.concat(arg, " ")
local calls = assert(io.open(DIR .. "/calls.log", "a")) calls:write(line, "\n") calls:close()
if arg[1] == "apply" then
  local manifest = io.read("a")
  if readf(DIR .. "/fail-apply") then io.stderr:write("error: forbidden\n") os.exit(1) end
  local log = assert(io.open(DIR .. "/kubectl.log", "a")) log:write(line, "\n", manifest) log:close()
  for k, v in pairs(require("lyaml").load(manifest).stringData) do writef(DIR .. "/secret/" .. k, v) end
  if readf(DIR .. "/kill-after-apply") then
    os.execute("kill -9 " .. readf("/proc/self/stat"):match("^%%d+ %%b() %%S+ (%%d+)"))
  end
elseif arg[1] == "get" then
  assert(arg[2] == "secret" and arg[4] == "-o"
    and arg[5] == 'jsonpath={.metadata.resourceVersion}{" "}{.data.state\\.json}')
  local path = DIR .. "/api/" .. arg[3] .. ".json"
  local o = readf(path)
  if not o then
    io.stderr:write(('Error from server (NotFound): secrets "%%s" not found\n'):format(arg[3]))
    os.exit(1)
  end
  o = cjson.decode(o)
  io.write(o.rv, " ", o.data or "")
  if readf(DIR .. "/bump-after-get") then o.rv = tostring(tonumber(o.rv) + 1) writef(path, cjson.encode(o)) end
elseif arg[1] == "replace" then
  assert(arg[2] == "-f" and arg[3] == "-" and arg[5] == "jsonpath={.metadata.resourceVersion}")
  local m = cjson.decode(io.read("a"))
  local path = DIR .. "/api/" .. m.metadata.name .. ".json"
  local o = cjson.decode(assert(readf(path)))
  if o.rv ~= m.metadata.resourceVersion then
    io.stderr:write(('Error from server (Conflict): Operation cannot be fulfilled on secrets "%%s": the object has '
      .. 'been modified; please apply your changes to the latest version and try again\n'):format(m.metadata.name))
    os.exit(1)
  end
  o.rv, o.data = tostring(tonumber(o.rv) + 1), m.data["state.json"]
  writef(path, cjson.encode(o))
  io.write(o.rv)
else
  io.stderr:write("stand-in kubectl: unexpected ", line, "\n") os.exit(2)
end
]]

--- Runs a shell command: exit code, output (stdout and stderr).
local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end
M.sh = sh

--- A pod's world: `url`, `username`, `password` of the gateway; the state Secret exists (empty)
-- unless `no_state_secret`.
function M.new(opts)
  local dir = helper.tmpdir()
  local pod = setmetatable({ dir = dir, bin = dir .. "/bin", log = dir .. "/kubectl.log", api = dir .. "/api" }, Pod)
  os.execute(("mkdir -p %s/bin %s/creds %s/secret %s/work %s"):format(dir, dir, dir, dir, pod.api))
  helper.writefile(pod.bin .. "/aap", ("#!/bin/sh\nexec lua5.4 %s/bin/aap \"$@\"\n"):format(helper.ROOT), 493)
  helper.writefile(pod.bin .. "/kubectl", STANDIN:format(dir), 493)
  helper.writefile(dir .. "/creds/AAP_HOSTNAME", opts.url)
  helper.writefile(dir .. "/creds/AAP_USERNAME", opts.username or "admin")
  helper.writefile(dir .. "/creds/AAP_PASSWORD", opts.password .. "\n")
  if not opts.no_state_secret then pod:create_state_secret() end
  return pod
end

--- The state Secret as secret-state.yaml creates it: empty.
function Pod:create_state_secret()
  helper.writefile(self.api .. "/aap-rotate-state.json", '{"rv": "1"}')
end

--- Runs one pod: rotate.sh with `policy` (default deploy/k8s/policy.lua). Returns exit code, output.
function Pod:run(policy)
  os.execute("rm -rf " .. self.dir .. "/work")
  local root = helper.ROOT
  local vars = { PATH = self.bin .. ":" .. os.getenv("PATH"), HOME = self.dir,
                 AAP_CPATH = os.getenv("AAP_CPATH") or (root .. "/build"),
                 RHDH_SECRET_DIR = self.dir .. "/secret", AAP_CREDENTIALS_DIR = self.dir .. "/creds",
                 AAP_WORK_DIR = self.dir .. "/work", AAP_POLICY = policy or (root .. "/deploy/k8s/policy.lua"),
                 -- a sanitizer run keeps its settings in children
                 ASAN_OPTIONS = os.getenv("ASAN_OPTIONS"), UBSAN_OPTIONS = os.getenv("UBSAN_OPTIONS") }
  local words = {}
  for k, v in pairs(vars) do words[#words + 1] = ("'%s=%s'"):format(k, v) end
  return sh(("cd / && env -i %s /bin/sh '%s/deploy/k8s/rotate.sh'"):format(table.concat(words, " "), root))
end

--- A value of the RHDH Secret, as the next pod sees it.
function Pod:secret(key) return helper.readfile(self.dir .. "/secret/" .. key) end

--- Puts a value into the RHDH Secret (the first token, as deploy/README.md says).
function Pod:put(key, value) helper.writefile(self.dir .. "/secret/" .. key, value) end

--- The state Secret as the API server holds it: resourceVersion, decoded state (nil when empty).
function Pod:stored_state()
  local o = assert(helper.readfile(self.api .. "/aap-rotate-state.json"))
  o = cjson.decode(o)
  if not o.data then return o.rv, nil end
  local p = io.popen("printf '%s' '" .. o.data .. "' | base64 -d")
  local text = p:read("a")
  p:close()
  return o.rv, cjson.decode(text)
end

--- Rewrites the stored state (fn(state) changes it in place), as the API server would keep it.
function Pod:edit_state(fn)
  local rv, st = self:stored_state()
  fn(st)
  local text = cjson.encode(st)
  if #st.pending == 0 then text = text:gsub('"pending":{}', '"pending":[]') end
  local p = io.popen("base64 -w0 > " .. self.dir .. "/b64", "w")
  p:write(text)
  p:close()
  helper.writefile(self.api .. "/aap-rotate-state.json",
    cjson.encode({ rv = rv, data = helper.readfile(self.dir .. "/b64") }))
end

--- How many times the RHDH Secret was applied.
function Pod:applied()
  local text = helper.readfile(self.log)
  return text and select(2, text:gsub("apply %-%-server%-side", "")) or 0
end

--- The arguments and manifest of the first apply.
function Pod:first_apply()
  return assert(helper.readfile(self.log)):match("^([^\n]*)\n(.*)$")
end

--- Turns a fault on or off.
function Pod:fault(name, on)
  if on then helper.writefile(self.dir .. "/" .. name, "") else os.remove(self.dir .. "/" .. name) end
end

return M
