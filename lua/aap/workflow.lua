--- The lesson's workflows, as Lua an operator can change without recompiling:
-- create a PAT or an application token and prove it works, refresh an application token,
-- find a token's id from its value, revoke, and save the result to an env file.
-- Every function returns its result, or nil and an error (an aap.Error: from the C core, or
-- made here by `aap.errors` for local failures); none raises on a runtime failure.
-- @module aap.workflow
local aap = require("aap")
local envfile = require("aap.env")
local state = require("aap.state")

local M = {}

--- Default env keys, the lesson's names.
M.KEYS = { pat = "AAP_PAT", token = "AAP_TOKEN", refresh = "REFRESH_TOKEN" }

--- An error made here: an `aap.Error` (`aap.errors.new`), printed `code: message`.
local function local_error(code, message)
  return require("aap.errors").new(code, message)
end
M.error = local_error

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- Once a session has told the gateway from a controller, later sessions with the same
-- options (the Bearer check, identify) need not ask again: one request fewer each.
local function pin_flavor(conn, s)
  if conn.flavor == nil or conn.flavor == "auto" then
    local fl = s:flavor()
    if fl then conn.flavor = fl end
  end
end
M.pin_flavor = pin_flavor

--- Options for a Bearer session with a token value, from a connection table.
function M.bearer(conn, token_value)
  local c = copy(conn)
  c.username, c.password = nil, nil
  c.token = token_value
  return c
end

--- Proves a token works: GET me/ with it as a Bearer token.
-- @treturn table the user it belongs to, or nil, err
function M.verify(conn, token_value)
  local s, err = aap.connect(M.bearer(conn, token_value))
  if not s then return nil, err end
  local me, merr = s:me()
  s:close()
  return me, merr
end

-- The user's tokens, id → the raw `last_used` text (or false), from the top-level tokens/
-- list with its `user` filter: the nested users/{id}/tokens/ lists ignore every filter on
-- the real gateway, and tokens/ without the filter shows a non-superuser every user's tokens.
local function last_used_by_id(s, user_id)
  local list, err = s:tokens({ user = user_id, page_size = 200 })
  if not list then return nil, err end
  local seen, toks = {}, {}
  for _, t in ipairs(list) do
    if t.id and (t.user == nil or t.user == user_id) then
      local lu = t.raw and t.raw.last_used
      seen[t.id] = type(lu) == "string" and lu or false
      toks[t.id] = t
    end
  end
  return seen, toks
end

--- How many times identify lists the user's tokens before it gives up on telling them apart.
M.IDENTIFY_TRIES = 4

--- Finds which token a value is, by proof, and returns its (masked) metadata.
-- A gateway never filters on values (it keeps only their hashes), but every use of a token
-- sets its `last_used`, to the microsecond. identify lists the user's tokens twice with the
-- value itself as the Bearer token: the value's token is one whose `last_used` moved in
-- between, since the listing used it. When exactly one moved, that one is proven; when
-- others moved too (the user's other tokens in use at that moment) it lists again, and in
-- the end fails with code `ambiguous` rather than guess. A gateway that does not record
-- `last_used` gives `not_found`: nothing is proven.
-- @tparam table conn connection options (its credentials are not used)
-- @tparam string token_value
-- @treturn Token the token (id, user, application, created, last_used, description, raw), or
--   nil, err (`auth` when the value does not work)
function M.identify(conn, token_value)
  local s, err = aap.connect(M.bearer(conn, token_value))
  if not s then return nil, err end
  local me, merr = s:me()
  if not me then s:close() return nil, merr end
  local before, berr = last_used_by_id(s, me.id)
  if not before then s:close() return nil, berr end
  local moved, toks
  for _ = 1, M.IDENTIFY_TRIES do
    local after
    after, toks = last_used_by_id(s, me.id)
    if not after then s:close() return nil, toks end
    moved = {}
    for id, lu in pairs(after) do
      if lu and lu ~= before[id] then moved[#moved + 1] = id end
    end
    if #moved == 1 then break end
    before = after
  end
  s:close()
  if #moved == 1 then return toks[moved[1]] end
  if #moved == 0 then
    return nil, local_error("not_found", "cannot tell which token this is: using it did not change the "
      .. "last_used of any token of user id=" .. tostring(me.id))
  end
  return nil, local_error("ambiguous", ("cannot tell which token this is: %d tokens of user id=%s were in use "
    .. "at the same time"):format(#moved, tostring(me.id)))
end

--- Proves which token id an env file's value is. The id recorded beside the value's
-- fingerprint (aap saved both from the gateway's create or refresh answer) is proof; a record
-- without a fingerprint, or with another one (the file was changed outside aap), is not, and
-- the value is then identified by using it (M.identify).
-- @tparam table conn connection options
-- @tparam string value the token value
-- @tparam ?table rec the state file's record for the key
-- @treturn integer the id, string how ("recorded" or "used"), ?Token the token when used;
--   or nil, err (`auth`: the value does not work; `ambiguous`/`not_found`: cannot tell)
function M.prove_id(conn, value, rec)
  if type(rec) == "table" and math.type(rec.id) == "integer" and type(rec.fp) == "string"
    and rec.fp == state.fingerprint(value) then
    return rec.id, "recorded"
  end
  local tok, err = M.identify(conn, value)
  if not tok then return nil, err end
  return tok.id, "used", tok
end

--- Whether a token value can be used and written: an RFC 6750 b64token (letters, digits and
-- `-._~+/`, then `=` padding), at most 4096 bytes. Anything else (a space, a newline, a NUL, a
-- quote) is not a token a gateway makes, and would break the env file or the header.
-- @tparam any v
-- @treturn boolean
function M.token_value_ok(v)
  return type(v) == "string" and #v > 0 and #v <= 4096 and v:find("^[%w%-%._~%+/]+=*$") ~= nil
end

--- What is wrong with a token answer (a create's, or with `id_optional` a refresh's), or nil.
-- @tparam Token tok
-- @tparam boolean with_refresh a refresh token is expected too
-- @tparam ?boolean id_optional the answer carries no id (the token endpoint's)
-- @treturn ?string the reason
function M.odd_answer(tok, with_refresh, id_optional)
  if not id_optional and math.type(tok.id) ~= "integer" then
    return "its id is not an integer: " .. type(tok.raw and tok.raw.id)
  end
  if tok.token == nil then return "no token value" end
  if not M.token_value_ok(tok.token) then return "the token value has characters no token has" end
  if with_refresh and tok.refresh_token == nil then return "no refresh token" end
  if with_refresh and not M.token_value_ok(tok.refresh_token) then
    return "the refresh token has characters no token has"
  end
  return nil
end

-- Failures after which the gateway cannot have created anything.
local CERTAINLY_NOT_CREATED = { auth = true, forbidden = true, invalid = true, not_found = true,
  expired = true, ambiguous = true, insecure = true, tls = true, redirect = true }

--- `s:create_token(fields)` for a token whose description holds `marker`: the POST rides the
-- kept-alive connection (no new TCP+TLS handshake), and should libcurl have had to send it
-- again on a new connection (the kept one died under it, so the gateway may have made a token
-- from the first copy, whose answer was lost), every other token with the marker is deleted.
-- @treturn Token the token, or nil, err; then a warning when a second copy may be left
function M.create_marked(s, fields, marker)
  local f = copy(fields)
  f.resend_safe = true
  local before = s:stats().maybe_resent
  local tok, err = s:create_token(f)
  local resent = s:stats().maybe_resent ~= before
  if not tok then
    -- Sent twice and the second answer is an error: whatever it says, the first copy may
    -- have made a token. The caller's sweep must run.
    if resent and type(err) == "table" then err.unsent, err.resent = nil, true end
    return nil, err
  end
  if not resent then return tok end
  -- Without an integer id the answer is refused (odd_answer) and its undo sweeps every copy.
  local id = math.type(tok.id) == "integer" and tok.id or nil
  if not id then return tok end
  local ids, serr = M.sweep_marker(s, marker, id)
  if not ids then
    return tok, nil, ("the create was sent twice (the connection died under it) and the second copy could not "
      .. "be looked for (%s): delete any other token whose description ends with %s"):format(
      tostring(serr and serr.message or serr), marker)
  end
  return tok
end

--- Creates a token the lesson's way and proves it works before anyone relies on it.
-- @tparam Session s an admin session (app tokens need a superuser)
-- @tparam table conn the connection options (for the Bearer check)
-- @tparam table opts application (name or id, or the table `apps.find` returned; nil for a
--   PAT), organization, description, scope,
--   verify (default true), marker (see begin_create: the description must hold it; without
--   one, a fresh marker is added to the description)
-- @treturn Token the new token (with its secret values), the application table or nil, and a
--   warning (string) when a copy of it may have been left on the gateway
-- @usage local tok, app = workflow.create(s, conn, { application = "RHDH Integration" })
function M.create(s, conn, opts)
  local app
  if type(opts.application) == "table" then
    app = opts.application -- looked up already
  elseif opts.application ~= nil then
    local err
    -- by name: aap.apps (loaded only then: a PAT's create does without it)
    app, err = require("aap.apps").find(s, opts.application, { organization = opts.organization })
    if not app then return nil, err end
  end
  -- Every token aap creates carries a random marker at the end of its description: should the
  -- answer be lost (timeout, connection closed, garbled body), the token the gateway may still
  -- have made is found by it, and by nothing less certain, and deleted.
  local marker, description = opts.marker, opts.description
  if not marker then
    marker = M.new_marker()
    description = ((description or ""):sub(1, 200) .. " " .. marker):gsub("^ ", "")
  end
  local tok, err, warning = M.create_marked(s, { application = app and app.id or nil,
                                                description = description, scope = opts.scope }, marker)
  if not tok then
    if err.resent or (not CERTAINLY_NOT_CREATED[err.code] and not err.unsent) then
      local ids = M.sweep_marker(s, marker)
      if ids and #ids > 0 then
        err.message = tostring(err.message) .. (" (the token the gateway made anyway, id=%s, was deleted)")
          :format(table.concat(ids, ","))
      elseif opts.marker then
        -- The gateway may still finish the request, or could not be asked: the marker stays
        -- recorded and the next run on the env file sweeps again.
        err.uncertain = true
        err.message = tostring(err.message) .. " (should the gateway have made a token, it is recorded by its "
          .. "marker; the next aap run on this env file deletes it)"
      else
        err.message = tostring(err.message) .. (" (the gateway may still make a token: its description ends "
          .. "with %s; check `aap token list`)"):format(marker)
      end
    end
    return nil, err
  end
  -- Deletes what the create made: by the id in the answer, else (an id that is not one) by
  -- the marker, which only this create's token carries.
  local function undo()
    if math.type(tok.id) == "integer" and s:delete_token(tok.id) then return true end
    local ids = M.sweep_marker(s, marker)
    return ids ~= nil and #ids > 0
  end
  local odd = M.odd_answer(tok, app ~= nil)
  if odd then
    local gone = undo()
    return nil, local_error("bad_response", ("the gateway's answer to the create is not usable (%s); %s"):format(odd,
      gone and "the new token was deleted" or "the new token could not be deleted: look for its marker " ..
      marker .. " in `aap token list`"))
  end
  if opts.verify ~= false then
    pin_flavor(conn, s)
    local me, verr = M.verify(conn, tok.token)
    if not me then
      undo()
      return nil, local_error(verr.code or "auth", "the new token did not work, so it was deleted: " ..
        tostring(verr.message or verr))
    end
  end
  return tok, app, warning
end

--- Refreshes an application token at the token endpoint. The gateway deletes the old access
-- token at once and revokes the old refresh token: the caller must save the result.
-- `conn.flavor` is set to the flavor found, when it was "auto".
-- @tparam table conn connection options (no credentials needed)
-- @tparam table opts refresh_token, client_id, client_secret, scope
-- @treturn Token the new pair (no id), or nil, err
function M.refresh(conn, opts)
  local c = copy(conn)
  c.username, c.password, c.token = nil, nil, nil
  local s, err = aap.connect(c)
  if not s then return nil, err end
  local tok, rerr = s:refresh(opts)
  if tok then pin_flavor(conn, s) end
  s:close()
  local odd = tok and M.odd_answer(tok, true, true)
  if odd then
    -- The gateway has replaced the pair, but what it sent cannot be written or used.
    local e = local_error("bad_response", ("the gateway's answer to the refresh is not usable (%s); the old "
      .. "token no longer works: create a new one"):format(odd))
    e.refreshed = true
    return nil, e
  end
  return tok, rerr
end

--- Whether a failed refresh grant means its refresh token is spent for good: the gateway
-- answered (any status but a refused client) and the access token the pair belongs to no
-- longer works. The real gateway answers a refresh whose access token was deleted with a 500
-- (API doc §17), every time: retrying cannot help, creating a new token can.
-- @tparam table conn connection options
-- @tparam table err the refresh's error
-- @tparam ?string access_value the pair's access token, when known
-- @treturn boolean
function M.refresh_spent(conn, err, access_value)
  if type(err) ~= "table" or not err.status or err.oauth_error == "invalid_client" then return false end
  if not access_value or access_value == "" then return false end
  local me, verr = M.verify(conn, access_value)
  return not me and verr ~= nil and verr.code == "auth"
end

--- The gateway's clock: ping's `pong`, else the `Date` header, else the local clock.
-- Decisions use the server's time, since `created` and `expires` are the server's.
-- @tparam Session s
-- @treturn number epoch seconds
function M.server_now(s)
  local status, body, headers = s:request("GET", "ping/")
  if status == 200 and type(body) == "table" and type(body.pong) == "string" then
    local t = aap.parse_time(body.pong)
    if t then return t end
  end
  local date = status and type(headers) == "table" and (headers.date or headers.Date)
  local t = type(date) == "string" and aap.parse_http_date(date)
  return t or aap.os.now()
end

--- The id of an organization, from its name (the gateway filters the list by name).
-- @treturn integer, or nil and an `aap.Error` (`not_found`, or the list's own)
function M.organization_id(s, name)
  local orgs, err = s:organizations({ name = name })
  if not orgs then return nil, err end
  for _, o in ipairs(orgs) do
    if o.name == name then return o.id end
  end
  return nil, local_error("not_found", ("no organization named %q"):format(name))
end

--- The marker aap puts in the description of a token it creates for an env file, so that a
-- create whose answer was lost can be found again (the gateway never filters on values).
M.MARKER = "aap-create:"

--- A fresh marker.
function M.new_marker()
  return M.MARKER .. state.random_hex(8)
end

--- Deletes every token whose description holds the marker, except `keep` (an id). Used by
-- token create and by aap.rotate (both write such markers).
-- @treturn ?table the ids deleted (integers), or nil, err
function M.sweep_marker(s, marker, keep)
  -- An empty or short marker would match tokens aap never made: only an exact marker is swept.
  if not (state.valid_marker(marker, state.MARKERS.create) or state.valid_marker(marker, state.MARKERS.rotate)) then
    return nil, local_error("usage", ("refusing to delete tokens by the marker %q: not one aap makes"):format(
      tostring(marker)))
  end
  local list, err = s:tokens({ description__contains = marker })
  if not list then return nil, err end
  local ids = {}
  for _, t in ipairs(list) do
    if t.id ~= keep and (t.description or ""):find(marker, 1, true) then
      local ok, derr = s:delete_token(t.id)
      if not ok and not (derr and derr.code == "not_found") then return nil, derr end
      ids[#ids + 1] = t.id
    end
  end
  return ids
end

-- Runs fn(st) on the env file's state under its lock and saves what it changed.
local function with_state(path, fn)
  local lk, lerr = state.lock(path, M.LOCK_WAIT)
  if not lk then return nil, lerr end
  local st, err = state.load(path)
  local ok, res
  if st then
    ok, res = fn(st)
    if ok then
      local sok, serr = state.save(path, st)
      if not sok then ok, res = nil, serr end
    end
  else
    ok, res = nil, err
  end
  lk:unlock()
  return ok, res
end

--- Write-ahead for a create into an env file: records the marker of the token about to be
-- made (as `aap.rotate` records its intents, so `aap token rotate` can finish it too).
-- A create intent left by an interrupted run is resolved first: its tokens are deleted.
-- @treturn true, or nil, err (code "busy" when a rotation of the key is unfinished)
function M.begin_create(s, path, key, marker, kind, current)
  local left
  local ok, err = with_state(path, function(st)
    local it = st.rotations[key]
    if it and it.origin ~= "create" then
      return nil, local_error("busy", ("an interrupted rotation of %s is unfinished; run `aap token rotate` "
        .. "on %s first"):format(key, path))
    end
    left = it
    return true
  end)
  if not ok then return nil, err end
  if left then
    local keep = (state.load(path) or { keys = {} }).keys[key]
    local ids, serr = M.sweep_marker(s, left.marker, keep and keep.id)
    if not ids then return nil, serr end
  end
  return with_state(path, function(st)
    st.rotations[key] = { strategy = "recreate", origin = "create", marker = marker, kind = kind,
                          started = os.time(), old_fp = state.fingerprint(current) }
    return true
  end)
end

--- Drops the create intent of a key (after the create failed for certain, or was swept).
function M.end_create(path, key)
  return with_state(path, function(st)
    local it = st.rotations[key]
    if it and it.origin == "create" then st.rotations[key] = nil end
    return true
  end)
end

--- Reads an env file, failing early, before anything is done on the gateway, when it cannot be
-- read or parsed, when it, its state file or its lock file cannot be trusted
-- (`aap.trust.check_file`, `aap.state.check`), or when a line of one of `keys` (the keys the
-- command will write) cannot be rewritten so that every reader agrees (`Doc:check_owned`).
-- @tparam string path
-- @tparam[opt] {string,...} keys
function M.read_env(path, keys)
  local doc, err = envfile.read(path)
  if not doc then return nil, err end
  local ok, serr = state.check(path)
  if not ok then return nil, serr end
  if keys then
    local cok, cerr = doc:check_owned(keys, path)
    if not cok then return nil, cerr end
  end
  return doc
end

--- Checks values before they are written to an env file: each must be `aap.env.portable`
-- (written bare, so that bash, python-dotenv, docker compose, kubectl and systemd read it as
-- it is), and no line of their keys may carry an `export ` prefix (`Doc:check_owned`).
-- aap's writers of token values (`save` here, aap.rotate's) call it before they set the values
-- and hand the document to `aap.env.write`, which writes any document as it is (`preflight`
-- rewrites one unchanged; `aap.env.update` quotes what is not portable).
-- @tparam Doc doc the document they go into
-- @tparam string path its path, for messages
-- @tparam table values ordered list of {key, value}
-- @treturn true, or nil, err (code `format`; the message names the key, never the value)
function M.check_values(doc, path, values)
  local keys = {}
  for i, kv in ipairs(values) do
    keys[i] = kv[1]
    if type(kv[2]) ~= "string" or not envfile.portable(kv[2]) then
      return nil, local_error("format", ("the value for %s has characters that not every reader of %s takes "
        .. "literally (only letters, digits and _ . / : @ %% + , = ~ - are written): it was not written")
        :format(kv[1], path))
    end
  end
  return doc:check_owned(keys, path)
end

--- Checks that an env file can be replaced, by rewriting it unchanged (atomic, 0600).
-- Used before an operation that invalidates the old token (refresh), so that the new pair
-- cannot be lost to a read-only directory.
function M.preflight(path, doc)
  return envfile.write(path, doc)
end

--- Takes an env file's lock for a whole command (read, gateway, write) and reads the file again
-- under it, so that runs on one file never interleave: a second create, refresh or revoke waits
-- for the first and then sees what it wrote.
-- @tparam string path the env file
-- @tparam ?Doc first the document read before taking the lock (to fail early)
-- @tparam ?string key the key the command is about
-- @treturn lock (release with :unlock()), the document now, and whether `key`'s value changed
--   since `first` (another aap run wrote it while this one waited); or nil, err
function M.hold(path, first, key)
  local lk, err = state.lock(path, M.HOLD_WAIT)
  if not lk then return nil, err end
  -- A run killed before its rename left a temporary copy (with a token): gone now, even when
  -- this run ends up writing nothing.
  aap.os.remove_stale_temps(path)
  local doc, derr = M.read_env(path)
  if not doc then lk:unlock() return nil, derr end
  local changed = key ~= nil and first ~= nil and (first:get(key) or "") ~= (doc:get(key) or "")
  return lk, doc, changed
end

--- Seconds a writer waits for another one to finish with the same env file.
M.LOCK_WAIT = 30

--- Seconds a command waits for the runs before it on the same env file (M.hold): each holds
-- the file for its whole exchange with the gateway, so many at once take turns.
M.HOLD_WAIT = 300

local function save_locked(path, values, records, remove)
  local doc, err = envfile.read(path)
  if not doc then return nil, err end
  local cok, cerr = M.check_values(doc, path, values)
  if not cok then return nil, cerr end
  for _, kv in ipairs(values) do doc:set(kv[1], kv[2]) end
  for _, k in ipairs(remove or {}) do doc:unset(k) end
  local ok, werr = envfile.write(path, doc)
  if not ok then return nil, werr end
  if records then
    local st, serr = state.load(path)
    if not st then return nil, serr end
    for k, r in pairs(records) do
      st.keys[k] = r or nil
      local it = st.rotations and st.rotations[k]
      if it and it.origin == "create" then st.rotations[k] = nil end
    end
    for _, k in ipairs(remove or {}) do st.keys[k] = nil end
    local sok, serr2 = state.save(path, st)
    if not sok then return nil, serr2 end
  end
  return true
end

--- Saves token values to an env file and their ids to its state file.
-- @tparam string path the env file
-- @tparam table values ordered list of {key, value}
-- @tparam table records map key → state record (aap.state.record), or nil
-- @tparam ?table remove keys to remove from the file
function M.save(path, values, records, remove)
  -- Many writers may share one file: the read-modify-write is serialised by the state lock.
  local lk, lerr = state.lock(path, M.LOCK_WAIT)
  if not lk then return nil, lerr end
  local ok, err = save_locked(path, values, records, remove)
  lk:unlock()
  return ok, err
end

return M
