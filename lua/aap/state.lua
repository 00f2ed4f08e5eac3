--- The small state file aap keeps beside an env file: which token (by id, never by value)
-- each key holds, and revocations still to be done. It holds no secret.
-- `.env` → `.env.aap-state.json`, written atomically with mode 0600.
-- @module aap.state
local aap = require("aap")
local cjson = require("cjson.safe").new()

local M = {}
M.VERSION = 1

--- The state file's path for an env file.
function M.path(env_file)
  return env_file .. ".aap-state.json"
end

local function empty()
  return { version = M.VERSION, keys = {}, pending = {}, rotations = {} }
end

--- Loads the state for an env file; a missing file gives an empty state.
-- @treturn table state, or nil and an error table {code = "io"|"usage", message}
function M.load(env_file)
  local path = M.path(env_file)
  local f, err = io.open(path, "rb")
  if not f then
    if err and err:find("No such file") then return empty() end
    return nil, { code = "io", message = "cannot read " .. path .. ": " .. tostring(err) }
  end
  local text = f:read("a")
  f:close()
  local st = cjson.decode(text)
  if type(st) ~= "table" or st.version ~= M.VERSION then
    return nil, { code = "usage", message = path .. " is not an aap state file (version " .. M.VERSION ..
      "); move it aside to start afresh" }
  end
  st.keys = type(st.keys) == "table" and st.keys or {}
  st.pending = type(st.pending) == "table" and st.pending or {}
  st.rotations = type(st.rotations) == "table" and st.rotations or {}
  -- JSON numbers come back as floats: give ids back their integer type (so that they print as 7,
  -- not 7.0).
  local function ints(t)
    for _, k in ipairs({ "id", "user", "application", "old_id", "new_id" }) do
      if math.type(t[k]) == "float" then t[k] = math.tointeger(t[k]) or t[k] end
    end
  end
  for _, r in pairs(st.keys) do if type(r) == "table" then ints(r) end end
  for _, r in pairs(st.rotations) do if type(r) == "table" then ints(r) end end
  for _, r in ipairs(st.pending) do
    if type(r) == "table" then
      ints(r)
      if type(r.wait_for_use) == "table" then ints(r.wait_for_use) end
    end
  end
  return st
end

--- Saves the state atomically (mode 0600).
function M.save(env_file, st)
  local text = cjson.encode(st)
  if #st.pending == 0 then
    -- cjson writes an empty table as {}; keep "pending" a list for other readers.
    text = text:gsub('"pending":{}', '"pending":[]')
  end
  local ok, err = aap.os.write_atomic(M.path(env_file), text .. "\n", 384)
  if not ok then return nil, { code = "io", message = tostring(err) } end
  return true
end

--- The lock file's path for an env file (a separate file: the state file itself is
-- replaced by rename on every save, so a lock on it would not hold).
function M.lock_path(env_file)
  return env_file .. ".aap-lock"
end

--- Takes the advisory lock that serializes runs on one env file (aap.os.lock, non-blocking).
-- @treturn userdata the lock (release with :unlock() or let it go out of scope), or nil and
--   an error {code = "busy", message}
function M.lock(env_file, wait)
  local path = M.lock_path(env_file)
  local lk, err = aap.os.lock(path, wait)
  if not lk then
    if not tostring(err):find("locked by another process", 1, true) then
      return nil, { code = "io", message = tostring(err) }
    end
    return nil, { code = "busy", message = ("another aap run holds the lock %s; try again when it is done")
      :format(path) }
  end
  return lk
end

--- The fingerprint of a secret value kept in the state file instead of the value: 16 hex
-- digits of its SHA-256 (enough to tell values apart, useless to guess them).
-- The empty value's is a constant, so that a fresh env file needs no digest library.
local EMPTY_FP = "e3b0c44298fc1c14"
function M.fingerprint(value)
  if value == nil or value == "" then return EMPTY_FP end
  local d = require("openssl.digest").new("sha256"):final(value)
  return (d:sub(1, 8):gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- Random hex digits (2 per byte) from the kernel, for markers.
function M.random_hex(nbytes)
  local f = assert(io.open("/dev/urandom", "rb"))
  local b = f:read(nbytes)
  f:close()
  return (b:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
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
