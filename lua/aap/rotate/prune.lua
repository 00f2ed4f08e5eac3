--- Pruning: revoking the tokens nobody used for a while (or expired), never one an env file
-- holds or its state file records. `aap.rotate.prune`, whose LDoc gives the options and the
-- result. Internal to `aap.rotate`.
-- @module aap.rotate.prune
local aap = require("aap")
local envfile = require("aap.env")
local duration = require("aap.duration")
local state = require("aap.state")
local workflow = require("aap.workflow")
local common = require("aap.rotate.common")

local err, message, delete, known_ids = common.err, common.message, common.delete, common.known_ids

local M = {}

local PRUNE_OPTS = { conn = true, unused_for = true, expired = true, description_like = true, kind = true,
                     user = true, all_users = true, dry_run = true, keep_ids = true, keep_env_files = true, now = true,
                     progress = true, confirm = true }

-- The ids an env file's tokens have: recorded in its state file (current, pending, in flight),
-- and every token value in it proven (workflow.prove_id: by its recorded fingerprint, else by
-- using it). A value that works but cannot be told apart is an error: prune cannot promise to
-- spare a token it cannot name.
local function env_file_ids(path, conn, ids)
  local doc, e = envfile.read(path)
  if not doc then return nil, e end
  local st, serr = state.load(path)
  if not st then return nil, err(serr.code, serr.message) end
  for id in pairs(known_ids(st)) do ids[id] = path end
  local keys, seen = {}, {}
  for _, k in ipairs({ workflow.KEYS.token, workflow.KEYS.pat }) do keys[#keys + 1] = k end
  for k in pairs(st.keys) do keys[#keys + 1] = k end
  for _, k in ipairs(keys) do
    local v = doc:get(k)
    if v and v ~= "" and not seen[k] then
      seen[k] = true
      local id, how = workflow.prove_id(conn, v, st.keys[k])
      if id then
        ids[id] = path
      elseif how and how.code ~= "auth" then
        return nil, err(how.code or "not_found", "cannot prove which token %s in %s is (%s), so prune cannot be "
          .. "sure to keep it; nothing was revoked", k, path, message(how))
      end
    end
  end
  return true
end

--- Finds tokens nobody used for a while (or expired) and revokes them: `aap.rotate.prune`,
-- whose LDoc gives the options and the result.
-- @tparam table opts
-- @treturn ?table the result, or nil and an error
function M.prune(opts)
  if type(opts) ~= "table" then error("rotate.prune expects a table of options", 2) end
  for k in pairs(opts) do
    if not PRUNE_OPTS[k] then error(("rotate.prune: unknown option %q"):format(tostring(k)), 2) end
  end
  if type(opts.conn) ~= "table" then error("rotate.prune: conn (aap.connect options) is required", 2) end
  local unused_for
  if opts.unused_for ~= nil then
    local n, why = duration.parse(opts.unused_for)
    if not n then return nil, err("usage", "unused_for: %s", why) end
    unused_for = n
  elseif not opts.expired then
    unused_for = 90 * 86400
  end
  local like = opts.description_like and tostring(opts.description_like):lower()
  local s, cerr = aap.connect(opts.conn)
  if not s then return nil, cerr end
  local function fail(e) s:close() return nil, e end
  local keep = {}
  for _, id in ipairs(opts.keep_ids or {}) do keep[id] = "kept by request" end
  if opts.conn.token then
    local raw, ierr = workflow.identify(opts.conn, opts.conn.token)
    if not raw then
      return fail(err(ierr and ierr.code or "auth", "cannot find the id of the token aap is authenticated with "
        .. "(%s), so prune cannot be sure to spare it", message(ierr)))
    end
    keep[raw.id] = "aap is authenticated with it"
  end
  for _, path in ipairs(opts.keep_env_files or {}) do
    local ids = {}
    local ok, e = env_file_ids(path, opts.conn, ids)
    if not ok then return fail(e) end
    for id in pairs(ids) do keep[id] = "recorded in " .. path end
  end
  if unused_for then
    local flavor = s:flavor()
    if flavor == "controller" then
      return fail(err("usage", "the controller does not report last_used; use --expired there"))
    end
  end
  local now = opts.now or workflow.server_now(s)
  -- Whose tokens: a gateway lists every user's tokens to anyone (API doc §17), and only a
  -- superuser may delete another user's.
  local me, merr = s:me()
  if not me then return fail(merr) end
  if (opts.all_users or (opts.user and tonumber(opts.user) ~= me.id)) and not me.is_superuser then
    return fail(err("forbidden", "only a superuser may prune other users' tokens (%s is not one)",
      tostring(me.username)))
  end
  local filters = {}
  if opts.user then filters.user = opts.user elseif not opts.all_users then filters.user = me.id end
  if opts.kind == "personal" then filters.application__isnull = "true" end
  if opts.kind == "application" then filters.application__isnull = "false" end
  local res = { candidates = {}, revoked = {}, failed = {}, scanned = 0, kept = {} }
  for tok, e in s:each_token(filters) do
    if not tok then return fail(e) end
    if filters.user and tok.user and tok.user ~= tonumber(filters.user) then goto continue end
    res.scanned = res.scanned + 1
    if opts.progress then opts.progress("scan", res.scanned) end
    local why
    if opts.expired and tok.expires and tok.expires <= now then
      why = "expired " .. duration.format(now - tok.expires) .. " ago"
    elseif unused_for then
      if tok.last_used and now - tok.last_used >= unused_for then
        why = "last used " .. duration.format(now - tok.last_used) .. " ago"
      elseif not tok.last_used and tok.created and now - tok.created >= unused_for then
        why = "never used, created " .. duration.format(now - tok.created) .. " ago"
      end
    end
    if why and like and not (tok.description or ""):lower():find(like, 1, true) then why = nil end
    if why and keep[tok.id] then
      res.kept[tok.id] = keep[tok.id]
      why = nil
    end
    if why then
      tok.why = why
      res.candidates[#res.candidates + 1] = tok
    end
    ::continue::
  end
  if opts.dry_run or #res.candidates == 0 then s:close() return res end
  if opts.confirm and not opts.confirm(res.candidates) then
    res.confirmed = false
    s:close()
    return res
  end
  res.confirmed = true
  for i, tok in ipairs(res.candidates) do
    local ok, e = delete(s, tok.id)
    if ok then
      res.revoked[#res.revoked + 1] = tok.id
    else
      res.failed[#res.failed + 1] = { id = tok.id, error = e }
      if e.code == "connect" or e.code == "timeout" or e.code == "tls" then
        for j = i + 1, #res.candidates do res.failed[#res.failed + 1] = { id = res.candidates[j].id, error = e } end
        break
      end
    end
    if opts.progress then opts.progress("revoke", i, #res.candidates) end
  end
  s:close()
  return res
end


return M
