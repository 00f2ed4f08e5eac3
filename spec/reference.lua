--- The reference gateway for specs: django-ansible-base's oauth2_provider on
-- django-oauth-toolkit (../shared/reference-gateway, started by its up.sh), the real code
-- behind the gateway's token API. Where `aap sim` and it disagree, it is right.
--
-- scripts/test.sh starts one instance for a whole run and passes it on in AAP_REFERENCE_URL
-- and AAP_REFERENCE_DIR; a spec run on its own starts (and stops) its own. Between steps a
-- spec may `reset()` the database to the state right after seeding: the server opens the
-- SQLite file anew for every request, so an atomic rename of a pristine copy is a reset.
--
-- The server's state is read straight from its database (tokens are stored in plain text in
-- this October 2024 code), so a spec knows which token a value is without asking the API
-- that the client under test asks.
local helper = require("helper")

local M = {}

local sh = helper.shquote

--- Where up.sh is, or nil and why not.
function M.location()
  local dir = os.getenv("AAP_REFERENCE_GATEWAY") or (helper.ROOT .. "/../shared/reference-gateway")
  local f = io.open(dir .. "/up.sh", "r")
  if not f then return nil, "no reference gateway at " .. dir end
  f:close()
  return dir
end

local Ref = {}
Ref.__index = function(_, k) return Ref[k] or helper.Sim[k] end

-- JSON numbers decode as floats: ids become integers again (so that they print as 7, not 7.0).
local function integers(t)
  for k, v in pairs(t) do
    if type(v) == "table" then integers(v)
    elseif math.type(v) == "float" and math.tointeger(v) then t[k] = math.tointeger(v) end
  end
  return t
end

local function load_seed(dir)
  local text = assert(helper.readfile(dir .. "/seed.json"), "no seed.json in " .. dir)
  local seed = assert(helper.json.decode(text))
  return integers(seed)
end


local shared -- the instance of this process, when it started one

--- The reference gateway: the one scripts/test.sh started, else a new one (about 20 s).
-- Returns a Ref (url, dir, seed, admin_password, and the Sim methods raw, json, token_ids,
-- token_works), or nil and why when the sources are absent. Under CI=true an absent
-- reference is an error, never a skip.
function M.get()
  local url, dir = os.getenv("AAP_REFERENCE_URL"), os.getenv("AAP_REFERENCE_DIR")
  if url and url ~= "" and dir and dir ~= "" then
    local seed = load_seed(dir)
    return setmetatable({ url = url, dir = dir, seed = seed, admin_password = seed.admin.password }, Ref)
  end
  if shared then return shared end
  local where, why = M.location()
  if not where then
    assert(os.getenv("CI") ~= "true", why .. " (CI=true: the reference suite must run)")
    return nil, why
  end
  local p = io.popen(sh(where .. "/up.sh") .. " 2>&1")
  local out = p:read("a")
  p:close()
  local u, pid, d = out:match("(http://%S+) (%d+) (%S+)%s*$")
  assert(u, "reference gateway did not start:\n" .. out)
  M.snapshot(d)
  local seed = load_seed(d)
  shared = setmetatable({ url = u, pid = pid, dir = d, seed = seed, admin_password = seed.admin.password,
                          owned = true }, Ref)
  return shared
end

--- Keeps a pristine copy of a freshly seeded database (scripts/test.sh calls this too).
function M.snapshot(dir)
  assert(os.execute(("cp %s %s"):format(sh(dir .. "/gateway.sqlite3"), sh(dir .. "/pristine.sqlite3"))))
end

--- Keeps a copy of the database as it is now, under a name, for restore(name).
function Ref:save_as(name)
  assert(name:match("^[%w-]+$"), "bad snapshot name")
  assert(os.execute(("cp %s %s"):format(sh(self.dir .. "/gateway.sqlite3"), sh(self.dir .. "/" .. name .. ".sqlite3"))))
end

--- Back to a copy kept by save_as (atomically: the server opens the file anew per request).
function Ref:restore(name)
  local tmp = self.dir .. "/gateway.sqlite3.reset"
  assert(os.execute(("cp %s %s && mv -f %s %s"):format(sh(self.dir .. "/" .. name .. ".sqlite3"), sh(tmp), sh(tmp),
    sh(self.dir .. "/gateway.sqlite3"))))
end

--- Back to the state right after seeding: no tokens, the seeded users and applications.
function Ref:reset()
  self:restore("pristine")
end

--- Stops the instance if this process started it (else the owner stops it).
function Ref:release()
  if self.owned and self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    os.execute("rm -rf " .. sh(self.dir))
    shared, self.pid = nil, nil
  end
end

--- Environment for bin/aap as a seeded user ("admin" or "normal"), with the RHDH
-- Integration client (AAP_CLIENT_ID / AAP_CLIENT_SECRET) unless opts.no_client.
function Ref:env(user, extra)
  user = user or "admin"
  local app = self.seed.applications["RHDH Integration"]
  local e = { AAP_HOSTNAME = self.url, AAP_USERNAME = user, AAP_PASSWORD = self.seed[user].password,
              AAP_CLIENT_ID = app.client_id, AAP_CLIENT_SECRET = app.client_secret }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local DB_QUERY = [[
import json, os, sqlite3, sys
db = sqlite3.connect(os.path.join(sys.argv[1], 'gateway.sqlite3'))
db.row_factory = sqlite3.Row
out = {'access': [dict(r) for r in db.execute(
         'select id, token, user_id, application_id, description, scope, last_used, expires, source_refresh_token_id '
         'from dab_oauth2_provider_oauth2accesstoken order by id')],
       'refresh': [dict(r) for r in db.execute(
         'select id, token, user_id, application_id, access_token_id, revoked '
         'from dab_oauth2_provider_oauth2refreshtoken order by id')]}
json.dump(out, sys.stdout)
]]

--- The server's tokens straight from its database: { access = {rows}, refresh = {rows} },
-- each row with id, token (the value), user_id, application_id, description, ...
local SQLITE3 = os.execute("command -v sqlite3 >/dev/null 2>&1") and "sqlite3" or nil

-- Rows of a query, through the sqlite3 command (a few ms) or else Python (0.2 s).
local function rows(dir, sql)
  local p = io.popen(("%s -json -cmd '.timeout 10000' %s %s"):format(SQLITE3, sh(dir .. "/gateway.sqlite3"), sh(sql)))
  local out = p:read("a")
  assert(p:close(), "reading the reference database failed")
  if out:match("^%s*$") then return {} end
  return assert(helper.json.decode(out))
end

function Ref:db()
  local t
  if SQLITE3 then
    t = {
      access = rows(self.dir, "select id, token, user_id, application_id, description, scope, last_used, expires, "
        .. "source_refresh_token_id from dab_oauth2_provider_oauth2accesstoken order by id"),
      refresh = rows(self.dir, "select id, token, user_id, application_id, access_token_id, revoked "
        .. "from dab_oauth2_provider_oauth2refreshtoken order by id"),
    }
  else
    local p = io.popen(("/usr/bin/python3 -c %s %s"):format(sh(DB_QUERY), sh(self.dir)))
    local out = p:read("a")
    assert(p:close(), "reading the reference database failed")
    t = assert(helper.json.decode(out))
  end
  for _, r in ipairs(t.access) do
    for k, v in pairs(r) do if v == helper.json.null then r[k] = nil end end
  end
  for _, r in ipairs(t.refresh) do
    for k, v in pairs(r) do if v == helper.json.null then r[k] = nil end end
  end
  return integers(t)
end

local SQL_UPDATE = [==[
import os, sqlite3, sys
db = sqlite3.connect(os.path.join(sys.argv[1], 'gateway.sqlite3'))
with db:
    n = db.execute(sys.argv[2], [int(a) if a.lstrip('-').isdigit() else a for a in sys.argv[3:]]).rowcount
print(n)
]==]

--- Runs one UPDATE on the server's database (the server reads it anew for every request);
-- `args` are its ? parameters. Returns the number of rows changed.
function Ref:update(statement, args)
  local q = {}
  for i, a in ipairs(args or {}) do q[i] = sh(tostring(a)) end
  local p = io.popen(("/usr/bin/python3 -c %s %s %s %s"):format(sh(SQL_UPDATE), sh(self.dir), sh(statement),
    table.concat(q, " ")))
  local out = p:read("a")
  assert(p:close(), "updating the reference database failed")
  return tonumber(out)
end

--- Makes an access token look `seconds` older (its created and last_used move back), as if
-- the server's clock had moved on: the reference has no clock to advance.
function Ref:age(id, seconds)
  local n = self:update("update dab_oauth2_provider_oauth2accesstoken set "
    .. "created = datetime(created, ? || ' seconds'), "
    .. "last_used = case when last_used is null then null else datetime(last_used, ? || ' seconds') end "
    .. "where id = ?", { -seconds, -seconds, id })
  assert(n == 1, "no access token id=" .. tostring(id))
end

--- Sets an access token's last_used to `seconds` from now (the server's clock is the host's):
-- a consumer's use of the token, placed unambiguously after anything aap did before.
function Ref:used_in(id, seconds)
  local n = self:update("update dab_oauth2_provider_oauth2accesstoken set "
    .. "last_used = strftime('%Y-%m-%d %H:%M:%f', 'now', ? || ' seconds') where id = ?", { seconds, id })
  assert(n == 1, "no access token id=" .. tostring(id))
end

--- The id of the access token with this value on the server, or nil when there is none.
function Ref:id_of(value)
  for _, r in ipairs(self:db().access) do
    if r.token == value then return math.tointeger(r.id) end
  end
  return nil
end

--- Sim:token_id's contract on the reference: the id of the access token with this value, or nil.
function Ref:token_id(value) return self:id_of(value) end

--- Sorted ids of every access token on the server (optionally only those of a user id).
function Ref:ids(user_id)
  local ids = {}
  for _, r in ipairs(self:db().access) do
    if not user_id or r.user_id == user_id then ids[#ids + 1] = math.tointeger(r.id) end
  end
  table.sort(ids)
  return ids
end

--- Whether a refresh token value is still usable (present and not revoked).
function Ref:refresh_alive(value)
  for _, r in ipairs(self:db().refresh) do
    if r.token == value then return r.revoked == nil end
  end
  return false
end

return M
