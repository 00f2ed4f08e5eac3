--- The small state file aap keeps beside an env file: which token (by id, never by value)
-- each key holds, and revocations still to be done. It holds no secret.
-- `.env` → `.env.aap-state.json`, written atomically with mode 0600.
-- @module aap.state
local aap = require("aap")
local cjson = require("cjson.safe").new()

local M = {}

-- Its errors are aap.Errors printed as the message alone (what the CLI shows); aap.errors is
-- loaded when one is made (spec/startup_spec.lua).
local function fail(code, message)
  return nil, require("aap.errors").new(code, message, { plain = true })
end
M.VERSION = 1

--- The state file's path for an env file.
function M.path(env_file)
  return env_file .. ".aap-state.json"
end

local function empty()
  return { version = M.VERSION, keys = {}, pending = {}, rotations = {} }
end

-- Validation ------------------------------------------------------------------------------------
-- Every value aap acts on is checked before it is used: a state file is refused whole when
-- one of them is not what aap writes. Fields aap does not know are kept and never read.

local function pos_int(v) return math.type(v) == "integer" and v > 0 end
local function number(v) return math.type(v) ~= nil and v == v and v > -math.huge and v < math.huge end
local function string_(v) return type(v) == "string" end
local function boolean(v) return type(v) == "boolean" end
local function hex16(v) return type(v) == "string" and #v == 16 and v:find("^[0-9a-f]+$") ~= nil end
local function env_key(v) return type(v) == "string" and v:find("^[A-Za-z_][A-Za-z0-9_]*$") ~= nil end
local function kind(v) return v == "personal" or v == "application" end
local function iso(v) return type(v) == "string" and v:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$") ~= nil end

--- The markers aap puts in the descriptions of the tokens it creates: the prefix, then
-- exactly 16 lowercase hex digits.
M.MARKERS = { create = "aap-create:", rotate = "aap-rotate:" }

--- Whether a string is a marker with the given prefix (`M.MARKERS`), exactly.
function M.valid_marker(v, prefix)
  return type(v) == "string" and v:sub(1, #prefix) == prefix and hex16(v:sub(#prefix + 1))
end

local KEY_FIELDS = { id = pos_int, fp = hex16, kind = kind, application = pos_int, user = pos_int,
                     scope = string_, created = number, expires = number, refresh_key = env_key }
local ROTATION_FIELDS = { old_id = pos_int, new_id = pos_int, old_fp = hex16, new_fp = hex16, kind = kind,
                          user = pos_int, application = pos_int, started = number, grace = number,
                          wait_for_use = boolean, max_wait = number, use_baseline = number,
                          old_created = iso, old_user = pos_int, old_application = pos_int }
local PENDING_FIELDS = { id = pos_int, key = env_key, kind = kind, rotated_at = number, new_id = pos_int,
                         not_before = number, hooks_done = boolean, max_wait_until = number,
                         created = iso, user = pos_int, application = pos_int }
local WAIT_FIELDS = { id = pos_int, after = number }

-- Checks the optional fields of t against a schema; returns the name of a bad one.
local function bad_field(t, schema)
  for k, ok in pairs(schema) do
    if t[k] ~= nil and not ok(t[k]) then return k end
  end
end

-- JSON numbers come back as floats: give ids back their integer type (so that they print as 7,
-- not 7.0, and compare equal to the gateway's).
local function ints(t, schema)
  for k, check in pairs(schema) do
    if check == pos_int and math.type(t[k]) == "float" then t[k] = math.tointeger(t[k]) or t[k] end
  end
end

-- The first thing wrong in a decoded state, as "where: what", or nil.
local function invalid(st)
  for _, part in ipairs({ "keys", "rotations" }) do
    if type(st[part]) ~= "table" then return part .. " is not an object" end
  end
  if type(st.pending) ~= "table" then return "pending is not a list" end
  local n = 0
  for _ in pairs(st.pending) do n = n + 1 end
  if n ~= #st.pending then return "pending is not a list" end
  for k, r in pairs(st.keys) do
    if not env_key(k) or type(r) ~= "table" then return ("keys.%s is not a key record"):format(tostring(k)) end
    ints(r, KEY_FIELDS)
    local f = bad_field(r, KEY_FIELDS)
    if f then return ("keys.%s.%s is not valid"):format(k, f) end
  end
  for k, it in pairs(st.rotations) do
    if not env_key(k) or type(it) ~= "table" then return ("rotations.%s is not an intent"):format(tostring(k)) end
    ints(it, ROTATION_FIELDS)
    local f = bad_field(it, ROTATION_FIELDS)
    if f then return ("rotations.%s.%s is not valid"):format(k, f) end
    if it.strategy == "recreate" then
      local prefix = it.origin == "create" and M.MARKERS.create or M.MARKERS.rotate
      if it.origin ~= nil and it.origin ~= "create" then return ("rotations.%s.origin is not valid"):format(k) end
      if not M.valid_marker(it.marker, prefix) then
        return ("rotations.%s.marker is not %s followed by 16 lowercase hex digits"):format(k, prefix)
      end
    elseif it.strategy ~= "refresh" or it.marker ~= nil or it.origin ~= nil then
      return ("rotations.%s is not a recreate or refresh intent"):format(k)
    end
    if not number(it.started) then return ("rotations.%s.started is not valid"):format(k) end
  end
  for i, e in ipairs(st.pending) do
    if type(e) ~= "table" then return ("pending[%d] is not an entry"):format(i) end
    ints(e, PENDING_FIELDS)
    if not pos_int(e.id) or not env_key(e.key) then return ("pending[%d] has no valid id and key"):format(i) end
    local f = bad_field(e, PENDING_FIELDS)
    if f then return ("pending[%d].%s is not valid"):format(i, f) end
    if e.wait_for_use ~= nil then
      if type(e.wait_for_use) ~= "table" then return ("pending[%d].wait_for_use is not valid"):format(i) end
      ints(e.wait_for_use, WAIT_FIELDS)
      if not pos_int(e.wait_for_use.id) or bad_field(e.wait_for_use, WAIT_FIELDS) then
        return ("pending[%d].wait_for_use is not valid"):format(i)
      end
    end
  end
  return nil
end

--- Loads the state for an env file; a missing file gives an empty state. The file must be
-- the current user's own regular file, not writable by others (`aap.trust.check_file`), and
-- every value in it what aap writes (ids positive integers, fingerprints and markers in
-- their exact format, pending entries complete); anything else is refused, never acted on.
-- @treturn table state, or nil and an error (code "io", "unsafe" or "usage")
function M.load(env_file)
  local path = M.path(env_file)
  local text, err = require("aap.trust").read_trusted(path, "state file")
  if text == false then return empty() end
  if not text then return fail(err.code, err.message) end
  local st = cjson.decode(text)
  if type(st) ~= "table" or st.version ~= M.VERSION then
    return fail("usage", path .. " is not an aap state file (version " .. M.VERSION ..
      "); move it aside to start afresh")
  end
  -- cjson decodes an empty list as an empty object.
  if st.pending == nil or (type(st.pending) == "table" and next(st.pending) == nil) then st.pending = {} end
  st.keys = st.keys or {}
  st.rotations = st.rotations or {}
  local why = invalid(st)
  if why then
    return fail("usage", ("%s is not a valid aap state file (%s); nothing was done: move it "
      .. "aside to start afresh"):format(path, why))
  end
  return st
end

--- Checks, before anything is done, that the state file and the lock file of an env file
-- can be trusted (the state file is also loaded and validated).
-- @treturn true, or nil and an error
function M.check(env_file)
  local st, err = M.load(env_file)
  if not st then return nil, err end
  local ok, lerr = require("aap.trust").check_file(M.lock_path(env_file), "lock file")
  if ok == nil then return fail(lerr.code, lerr.message) end
  return true
end

--- Saves the state atomically (mode 0600).
-- @treturn true and the text written, or nil and an error (code "io")
function M.save(env_file, st)
  local text = cjson.encode(st)
  if #st.pending == 0 then
    -- cjson writes an empty table as {}; keep "pending" a list for other readers.
    text = text:gsub('"pending":{}', '"pending":[]')
  end
  local ok, err = aap.os.write_atomic(M.path(env_file), text .. "\n", require("aap.trust").MODE_PRIVATE)
  if not ok then return fail("io", tostring(err)) end
  return true, text .. "\n"
end

--- The lock file's path for an env file (a separate file: the state file itself is
-- replaced by rename on every save, so a lock on it would not hold).
function M.lock_path(env_file)
  return env_file .. ".aap-lock"
end

-- Locks this process holds, by lock file path: a command holds its env file's lock from the
-- first read to the last write, and the helpers it calls take the same lock again.
local held = {}

local Held = {}
Held.__index = Held
function Held:unlock()
  if self.n == 0 then return end
  self.n = self.n - 1
  if self.n == 0 then
    held[self.path] = nil
    self.lk:unlock()
  end
end

--- Takes the advisory lock that serializes runs on one env file (aap.os.lock, non-blocking).
-- Re-entrant within a process: a second lock of the same file counts, and the file is
-- unlocked by the last :unlock().
-- @treturn table the lock (release with :unlock(); the process's exit releases it too), or nil and
--   an error (code "busy" when another process holds it: aap.os.lock's code)
function M.lock(env_file, wait)
  local path = M.lock_path(env_file)
  local h = held[path]
  if h then
    h.n = h.n + 1
    return h
  end
  local ok, terr = require("aap.trust").check_file(path, "lock file")
  if ok == nil then return fail(terr.code, terr.message) end
  local lk, err, code = aap.os.lock(path, wait)
  if not lk then
    if code ~= "busy" then return fail("io", tostring(err)) end
    return fail("busy", ("another aap run holds the lock %s; try again when it is done"):format(path))
  end
  h = setmetatable({ n = 1, lk = lk, path = path }, Held)
  held[path] = h
  return h
end

--- The fingerprint of a secret value kept in the state file instead of the value: 16 hex
-- digits of its SHA-256 (enough to tell values apart, useless to guess them).
-- The SHA-256 comes from the C core (libcrypto, which libcurl's TLS loads anyway).
local EMPTY_FP = "e3b0c44298fc1c14"
function M.fingerprint(value)
  if value == nil or value == "" then return EMPTY_FP end
  local d = aap.sha256(value)
  return (d:sub(1, 8):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- Random hex digits (2 per byte) for markers and ids: OpenSSL's CSPRNG (aap.random_bytes),
-- the one source of randomness on the Lua side.
function M.random_hex(nbytes)
  return (aap.random_bytes(nbytes):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- The metadata recorded for a token: what rotation and revocation need, no secret.
function M.record(tok, extra)
  local r = {
    id = tok.id, kind = tok.kind, application = tok.application, scope = tok.scope,
    user = tok.user, created = tok.created, expires = tok.expires,
  }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

return M
