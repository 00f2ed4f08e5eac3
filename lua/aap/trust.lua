--- Which files aap trusts with a token or a record of one: its own regular files, not
-- writable by others, in a directory nobody else can swap them in (see `check_file`). Every
-- file aap reads a secret or a record from goes through `read_trusted` (the env file, the
-- state file) or `check_file` (the lock file, before it is created).
-- Errors are `aap.Error`s (`aap.errors`) `{code = "unsafe" | "io", message, path}`.
-- @module aap.trust
local M = {}

--- The mode of every file aap writes a secret to: 0600 (Lua has no octal literals).
M.MODE_PRIVATE = 384

-- aap.errors is loaded when a file fails, not before (spec/startup_spec.lua).
local function fail(code, message, path)
  return require("aap.errors").new(code, message, { path = path })
end

-- What a non-regular file is, for messages.
local KINDS = { directory = "a directory", fifo = "a FIFO", socket = "a socket", char = "a character device",
                block = "a block device", other = "not a regular file" }

local function euid() return require("aap").os.geteuid() end

-- The directory part of a path ("." for a bare name).
local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  return d == "" and "/" or d
end

-- Why a file with this lstat/fstat cannot be trusted, or nil. `what` names it ("env file").
local function distrust(st, path, what)
  if st.type == "link" then
    return ("%s is a symbolic link: aap does not follow links into another file; give the path of the "
      .. "file itself"):format(path)
  end
  if st.type ~= "file" then
    return ("%s is %s, not a regular %s"):format(path, KINDS[st.type] or KINDS.other, what)
  end
  local me = euid()
  if st.uid ~= me then
    return ("%s belongs to uid %d, not to you (uid %d): aap trusts only its own %ss; move it aside, or "
      .. "give a path of your own"):format(path, st.uid, me, what)
  end
  if st.mode & 18 ~= 0 then -- 022
    return ("%s is writable by group or others (mode %04o): run `chmod 600 %s`"):format(path, st.mode, path)
  end
  return nil
end

--- Whether aap may trust a file it keeps tokens or records in, checked before anything is
-- opened (lstat: a symlink is not followed, a device or FIFO is not opened). Trusted means:
-- a regular file (not a symlink), owned by the current user, not writable by group or
-- others (a file only they may *read* is still trusted: aap narrows it to 0600 when it
-- rewrites it); and its directory is not writable by others unless sticky (/tmp: nobody
-- else can then rename or remove the file). A group-writable directory is accepted: with
-- user-private groups (umask 002, the RHEL default) it is the norm, and every file is
-- checked on its own. A missing file is trusted when its directory is.
-- @tparam string path
-- @tparam[opt="env file"] string what what the file is, for the message
-- @treturn[1] table the lstat (`type`, `mode`, `uid`, ...), or false when the file is missing
-- @treturn[2] nil
-- @treturn[2] aap.Error `code` "unsafe" | "io", with `message` and `path`
function M.check_file(path, what)
  if type(path) ~= "string" then
    error(("bad path (string expected, got %s)"):format(type(path)), 2)
  end
  what = what or "env file"
  local aos = require("aap").os
  local dir = dirname(path)
  local dst = aos.stat(dir, true)
  if dst and dst.mode & 2 ~= 0 and dst.mode & 512 == 0 then -- o+w without the sticky bit (01000)
    return nil, fail("unsafe", ("%s is in %s, which anyone may write to (mode %04o, not sticky): anyone "
      .. "could replace it; run `chmod o-w %s` or use another directory"):format(path, dir, dst.mode, dir), path)
  end
  local st, msg, errno = aos.stat(path)
  if not st then
    if errno == 2 then return false end
    return nil, fail("io", "cannot read " .. msg, path)
  end
  local why = distrust(st, path, what)
  if why then return nil, fail("unsafe", why, path) end
  return st
end

--- Reads a whole file that passes `check_file`, without following a symlink or blocking, and
-- checks the opened file again (it may have been swapped after the check).
-- @treturn[1] string the contents, or false when the file is missing
-- @treturn[2] nil
-- @treturn[2] aap.Error (see `check_file`)
function M.read_trusted(path, what)
  local st, err = M.check_file(path, what)
  if not st then return st, err end
  local f, msg, errno = require("aap").os.open(path)
  -- EAGAIN: replaced between the check and the open - another writer's atomic rename, which
  -- many aap runs on one file make all the time. Checked and opened again, from the start.
  for _ = 1, 5 do
    if f or errno ~= 11 then break end
    st, err = M.check_file(path, what)
    if not st then return st, err end
    f, msg, errno = require("aap").os.open(path)
  end
  if not f then
    if errno == 2 then return false end
    local swapped = errno == 40 or errno == 22 or errno == 21 or errno == 11 -- ELOOP EINVAL EISDIR EAGAIN
    return nil, fail(swapped and "unsafe" or "io", "cannot read " .. msg, path)
  end
  local why = distrust(msg, path, what or "env file")
  if why then
    f:close()
    return nil, fail("unsafe", why, path)
  end
  local text, rerr = f:read("a")
  f:close()
  if not text then return nil, fail("io", ("cannot read %s: %s"):format(path, tostring(rerr)), path) end
  return text
end

return M
