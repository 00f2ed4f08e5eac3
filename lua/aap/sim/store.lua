--- The emulator's state: users, organizations, applications, access and refresh tokens,
-- settings and the clock.
-- Token and refresh-token values are stored only as `"$sha256$" .. hex(sha256(value))`
-- (django-ansible-base's hashing); passwords and client secrets as salted sha256.
-- Times are integers in microseconds since the epoch, so arithmetic and formatting are exact.
local socket = require("socket")
local digest = require("openssl.digest")
local rand = require("openssl.rand")

local floor, format = math.floor, string.format

local M = {}

local Store = {}
Store.__index = Store
M.Store = Store

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

--- A random string of `n` characters from `[A-Za-z0-9]` (oauthlib's generate_token alphabet).
-- @tparam integer n length
-- @treturn string
function M.random_token(n)
  local out = {}
  while #out < n do
    local bytes = rand.bytes(n * 2)
    for i = 1, #bytes do
      local b = bytes:byte(i)
      if b < 248 then
        local k = b % 62 + 1
        out[#out + 1] = ALNUM:sub(k, k)
        if #out == n then break end
      end
    end
  end
  return table.concat(out)
end

local function hex(s)
  return (s:gsub(".", function(c) return format("%02x", c:byte()) end))
end

--- sha256 of a string, as lowercase hex.
-- @tparam string s data
-- @treturn string 64 hex digits
function M.sha256_hex(s)
  return hex(digest.new("sha256"):final(s))
end

--- The stored form of a token or refresh-token value: `"$sha256$" .. hex(sha256(value))`.
-- @tparam string value plaintext
-- @treturn string
function M.token_hash(value)
  return "$sha256$" .. M.sha256_hex(value)
end

--- One-way salted hash of a password or client secret.
-- @tparam string secret plaintext
-- @treturn string `sha256$<salt>$<hex>`
function M.secret_hash(secret)
  local salt = M.random_token(16)
  return "sha256$" .. salt .. "$" .. M.sha256_hex(salt .. secret)
end

--- Check a plaintext against a `secret_hash` value (constant time over the digest).
-- @tparam string|nil stored the stored hash
-- @tparam string|nil secret the presented plaintext
-- @treturn boolean
function M.secret_matches(stored, secret)
  if type(stored) ~= "string" or type(secret) ~= "string" then return false end
  local salt, want = stored:match("^sha256%$([^$]*)%$(%x+)$")
  if not salt then return false end
  local got = M.sha256_hex(salt .. secret)
  local diff = #got ~ #want
  for i = 1, math.min(#got, #want) do diff = diff | (got:byte(i) ~ want:byte(i)) end
  return diff == 0
end

--- Format microseconds since the epoch as DRF does: ISO 8601 UTC, microseconds dropped when zero, `Z`.
-- @tparam integer us microseconds
-- @treturn string e.g. `2026-11-29T10:21:27.047839Z`
function M.iso(us)
  local sec, frac = us // 1000000, us % 1000000
  local s = os.date("!%Y-%m-%dT%H:%M:%S", sec)
  if frac ~= 0 then s = s .. format(".%06d", frac) end
  return s .. "Z"
end

--- Parse `YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+00:00]` (UTC) into microseconds, for state files.
-- @tparam string s ISO time
-- @treturn integer|nil microseconds
function M.parse_iso(s)
  local y, mo, d, h, mi, se, rest = tostring(s):match("^(%d%d%d%d)-(%d%d)-(%d%d)[T ](%d%d):(%d%d):(%d%d)(.*)$")
  if not y then return nil end
  local frac = rest:match("^%.(%d+)") or ""
  local tail = rest:sub(#frac + (#frac > 0 and 2 or 1))
  if tail ~= "" and tail ~= "Z" and tail ~= "+00:00" then return nil end
  -- days from civil (Howard Hinnant's algorithm): no dependence on the local time zone.
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  local us = ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60 + tonumber(se)
  us = us * 1000000 + tonumber((frac .. "000000"):sub(1, 6))
  return us
end

-- Settings ---------------------------------------------------------------------------

--- What each gateway generation does where they differ (docs/design.md "Settings"). `2024` is
-- the October 2024 django-ansible-base code of the reference gateway (API doc §17), the default;
-- `2025` is what later gateways do. Setting `behaviour` sets every key of its profile that the
-- same change does not set itself.
M.BEHAVIOURS = {
  ["2024"] = {
    access_token_lifetime = 31536000000,  -- DAB's default: 1000 years
    list_visibility = "all",              -- tokens/ lists every user's tokens, masked
    scope_permission_on_tokens = false,   -- a `read` token may POST/PATCH tokens/
    refresh_after_delete = "error",       -- DOT raises DoesNotExist: a 500 HTML page
    nested_list_filters = false,          -- users/{id}/*tokens/ ignore filters and order_by
    app_url = false,                      -- applications have no app_url field yet
    app_organization_required = false,    -- POST applications/ without organization: null
  },
  ["2025"] = {
    access_token_lifetime = 31536000,     -- gateways since 2.5.20250604: 1 year
    list_visibility = "own",
    scope_permission_on_tokens = true,
    refresh_after_delete = "invalid_grant",
    nested_list_filters = true,
    app_url = true,
    app_organization_required = true,
  },
}

--- Default settings (docs/design.md "Settings"): the `2024` behaviour.
M.DEFAULT_CONFIG = {
  behaviour = "2024",
  flavor = "gateway",
  refresh_token_lifetime = 2628000,
  page_size = 50,
  max_page_size = 200,
  basic_auth = true,
  revoke_token = "effective",
  product_name = "Unnamed",
  product_version = "2.5",
  allow_external_users = false,
  app_read_for_members = false,
  ping_requires_auth = false,
  latency_ms = 0,
  token_application_read_only = false,
}
for k, v in pairs(M.BEHAVIOURS["2024"]) do M.DEFAULT_CONFIG[k] = v end

-- refresh_after_delete: true and false are the values of before it had three
local REFRESH_AFTER_DELETE = { error = "error", invalid_grant = "invalid_grant", allow = "allow",
                               [true] = "allow", [false] = "invalid_grant" }

-- "2025" or 2025 (a JSON number): the profile's name, or nil
local function behaviour_name(v)
  if type(v) == "number" then v = math.tointeger(v) and format("%d", v) end
  return M.BEHAVIOURS[v] and v or nil
end

local CONFIG_CHECK = {
  behaviour = function(v) return behaviour_name(v) ~= nil end,
  flavor = function(v) return v == "gateway" or v == "controller" end,
  revoke_token = function(v) return v == "effective" or v == "noop" end,
  list_visibility = function(v) return v == "own" or v == "all" end,
  refresh_after_delete = function(v) return REFRESH_AFTER_DELETE[v] ~= nil end,
  product_name = "string", product_version = "string",
  access_token_lifetime = "int", refresh_token_lifetime = "int", latency_ms = "int",
  page_size = "posint", max_page_size = "posint",
  basic_auth = "boolean", scope_permission_on_tokens = "boolean", allow_external_users = "boolean",
  app_read_for_members = "boolean", ping_requires_auth = "boolean", app_url = "boolean",
  token_application_read_only = "boolean", nested_list_filters = "boolean",
  app_organization_required = "boolean",
}

--- Validate and merge settings into `into`.
-- @tparam table into the current settings (changed in place on success)
-- @tparam table changes key/value pairs
-- @treturn true|nil
-- @treturn string the error message
function M.merge_config(into, changes)
  if type(changes) ~= "table" then return nil, "config must be an object" end
  for k, v in pairs(changes) do
    local check = CONFIG_CHECK[k]
    if not check then return nil, "unknown setting: " .. tostring(k) end
    local ok
    if check == "int" then
      ok = math.type(v) == "integer" and v >= 0 or (type(v) == "number" and v >= 0 and v == floor(v))
    elseif check == "posint" then
      ok = type(v) == "number" and v >= 1 and v == floor(v)
    elseif type(check) == "string" then
      ok = type(v) == check
    else
      ok = check(v)
    end
    if not ok then return nil, "invalid value for " .. k end
  end
  if changes.behaviour ~= nil then
    for k, v in pairs(M.BEHAVIOURS[behaviour_name(changes.behaviour)]) do
      if changes[k] == nil then into[k] = v end
    end
  end
  for k, v in pairs(changes) do
    if k == "refresh_after_delete" then v = REFRESH_AFTER_DELETE[v] end
    if k == "behaviour" then v = behaviour_name(v) end
    into[k] = type(v) == "number" and floor(v) or v
  end
  -- the controller's page size, unless chosen explicitly
  if changes.flavor and not changes.page_size then
    into.page_size = changes.flavor == "controller" and 25 or 50
  end
  return true
end

-- Seed ------------------------------------------------------------------------------

local function opt(v, default)
  if v == nil then return default end
  return v
end

--- Resolve a seed spec (defaults, overridden by a state table) into concrete records with
-- every random value drawn once, so that a reset restores the same credentials.
-- @tparam table state the `--state` table (or {})
-- @tparam table opts `admin_password`
-- @treturn table resolved seed
-- @treturn table|nil `generated`: which secrets were drawn at random (for the start-up log)
function M.resolve_seed(state, opts)
  state = state or {}
  local generated = {}
  local users = state.users
  if users == nil then
    users = {
      { id = 1, username = "_system", first_name = "", last_name = "", login = false, managed = true },
      { id = 2, username = "admin", is_superuser = true },
      { id = 3, username = "dev", first_name = "Dev", last_name = "User", email = "dev@example.com" },
      { id = 4, username = "ldap-user", first_name = "Ldap", last_name = "User", external = "LDAP",
        account_type = "ldap", email = "ldap-user@example.com" },
    }
  end
  local out = { users = {}, organizations = {}, applications = {}, tokens = {} }
  local next_id = 1
  for _, u in ipairs(users) do
    local id = u.id or next_id
    next_id = math.max(next_id, id + 1)
    local pw = u.password
    if u.username == "admin" and opts.admin_password then pw = opts.admin_password end
    if pw == nil and u.login ~= false then
      pw = M.random_token(20)
      generated[u.username] = true
    end
    out.users[#out.users + 1] = {
      id = id, username = assert(u.username, "state: a user needs a username"), password = pw,
      is_superuser = u.is_superuser == true, is_platform_auditor = u.is_platform_auditor == true,
      is_active = opt(u.is_active, true), first_name = u.first_name or "", last_name = u.last_name or "",
      email = u.email or "", external = u.external, account_type = u.account_type or (u.external and "ldap"),
      managed = u.managed == true,
    }
  end
  local orgs = state.organizations or { { id = 1, name = "Default", description = "The default organization" } }
  for i, o in ipairs(orgs) do
    out.organizations[#out.organizations + 1] = {
      id = o.id or i, name = assert(o.name, "state: an organization needs a name"), description = o.description or "",
    }
  end
  local apps = state.applications or {
    { id = 1, name = "RHDH Integration", organization = 1, client_type = "confidential",
      authorization_grant_type = "password", description = "Red Hat Developer Hub" },
  }
  for i, a in ipairs(apps) do
    local r = {}
    for k, v in pairs(a) do r[k] = v end
    r.id = a.id or i
    r.client_id = a.client_id or M.random_token(40)
    r.client_type = a.client_type or "confidential"
    r.authorization_grant_type = a.authorization_grant_type or "password"
    if r.client_secret == nil and r.client_type == "confidential" then
      r.client_secret = M.random_token(128)
    end
    out.applications[#out.applications + 1] = r
  end
  for _, t in ipairs(state.tokens or {}) do out.tokens[#out.tokens + 1] = t end
  out.config = state.config or {}
  return out, generated
end

-- The store -------------------------------------------------------------------------

--- Build a store from a resolved seed and start-up settings.
-- @tparam table seed from `resolve_seed`
-- @tparam table config settings (copied)
-- @treturn Store
function M.new(seed, config)
  local self = setmetatable({ seed = seed, start_config = {} }, Store)
  for k, v in pairs(config) do self.start_config[k] = v end
  self:reset()
  return self
end

--- Back to the seeded state: same credentials, clock offset 0, start-up settings.
function Store:reset()
  self.offset_us = 0
  self.config = {}
  for k, v in pairs(self.start_config) do self.config[k] = v end
  self.users, self.users_by_name = {}, {}
  self.orgs, self.apps = {}, {}
  self.tokens, self.token_ids, self.by_hash = {}, {}, {}
  self.refresh, self.refresh_by_hash = {}, {}
  self.next_ids = { user = 1, org = 1, app = 1, token = 1, refresh = 1 }
  local now = self:now()
  local seed = self.seed
  for _, u in ipairs(seed.users) do
    local rec = {}
    for k, v in pairs(u) do rec[k] = v end
    rec.password = nil
    rec.pw_hash = u.password and M.secret_hash(u.password) or nil
    rec.created, rec.modified = now, now
    self.users[rec.id] = rec
    self.users_by_name[rec.username] = rec
    self.next_ids.user = math.max(self.next_ids.user, rec.id + 1)
  end
  local admin = self:first_superuser()
  local admin_id = admin and admin.id or nil
  for _, o in ipairs(seed.organizations) do
    self:add_org({ id = o.id, name = o.name, description = o.description }, admin_id)
  end
  for _, a in ipairs(seed.applications) do
    self:add_app(a, admin_id)
  end
  for _, t in ipairs(seed.tokens) do
    local rec = self:create_token{
      user = t.user or admin_id, application = t.application, description = t.description or "",
      scope = t.scope or "write", created_by = t.created_by or t.user or admin_id,
      value = t.token, refresh_value = t.refresh_token,
      created = t.created and M.parse_iso(t.created), expires = t.expires and M.parse_iso(t.expires),
    }
    if t.last_used then rec.last_used = M.parse_iso(t.last_used) end
  end
end

--- The emulator's clock, in microseconds: real time plus the offset.
-- @treturn integer
function Store:now()
  return floor(socket.gettime() * 1000000) + self.offset_us
end

--- Move the clock forward (or back) by `seconds`.
-- @tparam number seconds
function Store:advance(seconds)
  self.offset_us = self.offset_us + floor(seconds * 1000000)
end

--- The first superuser (the seeded `admin` unless the state file says otherwise).
-- @treturn table|nil user
function Store:first_superuser()
  local best
  for _, u in pairs(self.users) do
    if u.is_superuser and (not best or u.id < best.id) then best = u end
  end
  return best
end

--- The `_system` user (created_by of tokens made by `/o/token/`).
-- @treturn table|nil
function Store:system_user()
  return self.users_by_name["_system"]
end

--- Check a username and password (Basic auth, password grant).
-- @treturn table|nil the user
-- @treturn string|nil "invalid" or "inactive"
function Store:authenticate(username, password)
  local u = self.users_by_name[username]
  if not u or not M.secret_matches(u.pw_hash, password) then return nil, "invalid" end
  if not u.is_active then return nil, "inactive" end
  return u
end

--- Add an organization record.
-- @tparam table o `name`, `description`, optional `id`
-- @tparam integer|nil by creating user id
-- @treturn table the record
function Store:add_org(o, by)
  local now = self:now()
  local id = o.id or self.next_ids.org
  self.next_ids.org = math.max(self.next_ids.org, id + 1)
  local b = M.sha256_hex("org" .. id .. M.random_token(8))
  local rec = { id = id, name = o.name, description = o.description or "", created = now, modified = now,
                created_by = by, modified_by = by,
                ansible_id = ("%s-%s-4%s-a%s-%s"):format(b:sub(1, 8), b:sub(9, 12), b:sub(13, 15), b:sub(16, 18),
                                                          b:sub(19, 30)) }
  self.orgs[id] = rec
  return rec
end

--- Add an application record. `a.client_secret` (plaintext) is hashed; it is not kept.
-- @tparam table a fields
-- @tparam integer|nil by creating user id
-- @treturn table the record
function Store:add_app(a, by)
  local now = self:now()
  local id = a.id or self.next_ids.app
  self.next_ids.app = math.max(self.next_ids.app, id + 1)
  local rec = {
    id = id, name = a.name, organization = a.organization, client_id = a.client_id or M.random_token(40),
    client_type = a.client_type or "confidential", authorization_grant_type = a.authorization_grant_type or "password",
    redirect_uris = a.redirect_uris or "", post_logout_redirect_uris = a.post_logout_redirect_uris or "",
    algorithm = a.algorithm or "", user = a.user, description = a.description or "", app_url = a.app_url,
    skip_authorization = a.skip_authorization == true, created = now, modified = now,
    created_by = a.created_by or by, modified_by = a.created_by or by,
  }
  if a.client_secret then rec.secret_hash = M.secret_hash(a.client_secret) end
  self.apps[id] = rec
  return rec
end

--- The application with this client id.
-- @tparam string client_id
-- @treturn table|nil
function Store:app_by_client_id(client_id)
  if type(client_id) ~= "string" then return nil end
  for _, a in pairs(self.apps) do
    if a.client_id == client_id then return a end
  end
  return nil
end

--- Delete an application with its access and refresh tokens.
-- @tparam integer id
function Store:delete_app(id)
  local doomed = {}
  for _, tid in ipairs(self.token_ids) do
    if self.tokens[tid].application == id then doomed[#doomed + 1] = tid end
  end
  for _, tid in ipairs(doomed) do self:delete_token(tid) end
  for rid, r in pairs(self.refresh) do
    if r.application == id then
      self.refresh[rid] = nil
      self.refresh_by_hash[r.hash] = nil
    end
  end
  self.apps[id] = nil
end

-- binary search in the sorted id list
local function bsearch(ids, id)
  local lo, hi = 1, #ids
  while lo <= hi do
    local mid = (lo + hi) // 2
    local v = ids[mid]
    if v == id then return mid, true end
    if v < id then lo = mid + 1 else hi = mid - 1 end
  end
  return lo, false
end

--- Create an access token (and a refresh token when `with_refresh`, or when `refresh_value` is given).
-- @tparam table t `user`, `application`, `description`, `scope`, `created_by`, `source_refresh`,
--   `with_refresh`, `value`/`refresh_value` (plaintext to use), `created`, `expires` (microseconds),
--   `hash`/`refresh_hash` (pre-hashed values, for bulk seeding)
-- @treturn table the token record
-- @treturn string|nil the plaintext token (nil when `hash` was given)
-- @treturn string|nil the plaintext refresh token
function Store:create_token(t)
  local now = t.created or self:now()
  local id = self.next_ids.token
  self.next_ids.token = id + 1
  local value = t.value
  if not value and not t.hash then value = M.random_token(30) end
  local rec = {
    id = id, hash = t.hash or M.token_hash(value), user = t.user, application = t.application,
    description = t.description or "", scope = t.scope or "write", created = now, modified = now,
    created_by = t.created_by, modified_by = t.created_by,
    expires = t.expires or (now + self.config.access_token_lifetime * 1000000),
    source_refresh = t.source_refresh,
  }
  self.tokens[id] = rec
  self.by_hash[rec.hash] = rec
  local ids = self.token_ids
  if #ids == 0 or ids[#ids] < id then ids[#ids + 1] = id else table.insert(ids, (bsearch(ids, id)), id) end
  local rvalue = t.refresh_value
  if t.with_refresh or rvalue or t.refresh_hash then
    if not rvalue and not t.refresh_hash then rvalue = M.random_token(30) end
    local rid = self.next_ids.refresh
    self.next_ids.refresh = rid + 1
    local r = { id = rid, hash = t.refresh_hash or M.token_hash(rvalue), user = t.user, application = t.application,
                access = id, created = now, scope = rec.scope }
    self.refresh[rid] = r
    self.refresh_by_hash[r.hash] = r
    rec.refresh = r
  end
  return rec, value, rvalue
end

--- Delete an access token. Its refresh token survives, unrevoked, detached (DAB behaviour).
-- @tparam integer id
function Store:delete_token(id)
  local rec = self.tokens[id]
  if not rec then return end
  self.tokens[id] = nil
  self.by_hash[rec.hash] = nil
  local pos, found = bsearch(self.token_ids, id)
  if found then table.remove(self.token_ids, pos) end
  if rec.refresh then rec.refresh.access = nil end
end

--- Revoke a refresh token: delete its access token, mark it revoked (DOT `RefreshToken.revoke`).
-- @tparam table r refresh record
function Store:revoke_refresh(r)
  if r.access then self:delete_token(r.access) end
  r.access = nil
  r.revoked = self:now()
end

--- The access token whose plaintext is `value`.
-- @tparam string value
-- @treturn table|nil
function Store:token_by_value(value)
  return self.by_hash[M.token_hash(value)]
end

--- The refresh token whose plaintext is `value`.
-- @tparam string value
-- @treturn table|nil
function Store:refresh_by_value(value)
  return self.refresh_by_hash[M.token_hash(value)]
end

--- Add a user (used by state files and specs through the store).
-- @tparam table u fields
-- @treturn table record
function Store:add_user(u)
  local id = u.id or self.next_ids.user
  self.next_ids.user = math.max(self.next_ids.user, id + 1)
  local now = self:now()
  local rec = { id = id, username = u.username, is_superuser = u.is_superuser == true, is_active = true,
                first_name = u.first_name or "", last_name = u.last_name or "", email = u.email or "",
                pw_hash = u.password and M.secret_hash(u.password), created = now, modified = now }
  self.users[id] = rec
  self.users_by_name[rec.username] = rec
  return rec
end

return M
