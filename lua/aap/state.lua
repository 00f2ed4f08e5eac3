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
  return { version = M.VERSION, keys = {}, pending = {} }
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
