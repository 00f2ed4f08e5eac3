--- The strategies of a rotation: `recreate` (create a new token, prove it, write it, commit;
-- the old one goes on the pending list) and `refresh` (the OAuth refresh of an application
-- token, which replaces it on the gateway at once), and finding the token the env file holds.
-- Each writes its intent to the journal before it changes anything, and stops at the
-- fault-injection steps (see `aap.rotate`). Internal to `aap.rotate`; every function takes the
-- run (`aap.rotate.run`).
-- @module aap.rotate.strategies
local aap = require("aap")
local state = require("aap.state")
local workflow = require("aap.workflow")
local common = require("aap.rotate.common")
local journal = require("aap.rotate.journal")

local err, message, fault, delete = common.err, common.message, common.fault, common.delete
local fp = state.fingerprint

local M = {}

-- The current token -------------------------------------------------------------------------

--- Finds the metadata of the token the file holds: by the id recorded in the state file,
-- else from its value. Returns the Token, or nil with a note when it is gone.
function M.current_token(run)
  local value = run.doc:get(run.key)
  local rec = run.st.keys[run.key]
  local id, how, used = workflow.prove_id(run.conn_for_identify, value, rec)
  if used then return used end   -- identified by use: its metadata came with the proof
  if not id then
    local e = how
    if e and e.code == "auth" then
      return nil, nil, ("the token in %s (%s) does not work: %s"):format(run.env_file, run.key, message(e))
    end
    return nil, err(e and e.code or "not_found", "cannot prove which token %s in %s is (%s); nothing was changed",
      run.key, run.env_file, message(e))
  end
  local tok, e = run.s:token(id)
  if tok then return tok end
  if e.code ~= "not_found" then return nil, e end
  return nil, nil, ("token id=%d recorded for %s is gone from the gateway"):format(id, run.key)
end

-- Strategies --------------------------------------------------------------------------------

local function description_for(run, old)
  local base = run.policy.description
  if not base then
    base = old and old.description or ""
    base = base:gsub("%s*aap%-%a+:%x+", "") -- this module's markers and token create's
    if base == "" then base = "aap " .. run.key end
  end
  return base
end

local CLIENT_ID_KEY = "AAP_CLIENT_ID"

-- The client id to record beside a recreated application token (so that `aap token refresh`
-- and the refresh strategy find it): the application's, when the env file holds none. A file
-- holding another one keeps it, with a warning (a rotation is not held up by what only a later
-- refresh needs, and the client secret beside it would no longer match); a failed lookup only
-- warns too.
local function client_id_to_record(run, s, application)
  local have = run.doc:get(CLIENT_ID_KEY)
  local a, e = s:application(application)
  if not a or type(a.client_id) ~= "string" or a.client_id == "" then
    if not have or have == "" then
      run.warn(("%s was not recorded in %s: the application id=%s could not be read (%s)"):format(CLIENT_ID_KEY,
        run.env_file, tostring(application), a and "no client_id" or message(e)))
    end
    return nil
  end
  if not have or have == "" then return a.client_id end
  if have ~= a.client_id then
    run.warn(("%s holds the %s of another application, not of id=%s whose token %s is: kept; `aap token refresh` "
      .. "needs that application's client id (and secret)"):format(run.env_file, CLIENT_ID_KEY, tostring(application),
      run.key))
  end
  return nil
end

--- Replaces the token with a new one (see the module notes); the old one goes on the pending
-- list, the entry is `run.entry`.
-- @tparam table run the run (`aap.rotate.run`)
-- @param old the old token (`aap.Token`), or nil when it is gone
-- @treturn ?table the new token (`aap.Token`, with its values), or nil and an error
function M.recreate(run, old)
  local s, p = run.s, run.policy
  local oldrec = run.st.keys[run.key] or {}
  local kind = old and old.kind or oldrec.kind or (run.doc:get(run.refresh_key) and "application") or "personal"
  local application = old and old.application or oldrec.application
  if kind == "application" and not application then
    return nil, err("usage", "cannot recreate %s: the application of the old token is unknown", run.key)
  end
  local client_id = kind == "application" and client_id_to_record(run, s, application) or nil
  if old then run.old_values[old.id] = run.doc:get(run.key) end
  local marker = common.MARKER .. state.random_hex(8)
  local it = {
    strategy = "recreate", marker = marker, started = math.floor(run.now), old_fp = fp(run.doc:get(run.key)),
    old_id = old and old.id or nil, kind = kind, user = old and old.user or oldrec.user,
    grace = p.grace, wait_for_use = p.wait_for_use or nil, max_wait = p.max_wait,
    -- what proves, when the old token is revoked, that the id is still that token
    old_created = old and old.created and aap.format_time(old.created) or nil,
    old_user = old and old.user or nil, old_application = old and old.application or nil,
  }
  local ok, e = journal.intent(run, it)
  if not ok then return nil, e end
  local desc = description_for(run, old)
  desc = desc:sub(1, 200 - #marker - 1) .. " " .. marker
  local new, cerr, warning = workflow.create_marked(s, { application = kind == "application" and application or nil,
    description = desc, scope = p.scope or (old and old.scope) or nil }, marker)
  if warning then run.warn(warning) end
  local function undo(why, new_id)
    local deleted = new_id and delete(s, new_id)
    -- Without an id, a create that failed without a clear answer may still have made a token.
    local unknown = not new_id and (why.resent or why.status == nil or why.status >= 500)
    local swept = not unknown or workflow.sweep_marker(s, marker)
    -- A request whose answer was lost may still be finished by the gateway after the sweep:
    -- the intent (and so the marker) stays recorded until a later run sweeps again.
    local late = unknown and type(swept) == "table" and #swept == 0
    if (new_id == nil or deleted) and swept and not late then
      journal.drop_intent(run)
    else
      why = err(why.code, "%s (an unused new token may be left; the next run will delete it)", message(why))
    end
    return nil, why
  end
  if not new then return undo(cerr) end
  fault("created")
  local odd = workflow.odd_answer(new, kind == "application")
  if odd then
    return undo(err("bad_response", "the gateway's answer to the create is not usable (%s)", odd),
      math.type(new.id) == "integer" and new.id or nil)
  end
  it.new_id, it.new_fp, it.user = new.id, fp(new.token), new.user
  ok, e = journal.save(run)
  if not ok then return undo(e, new.id) end
  fault("recorded")
  if p.verify then
    local me, verr = workflow.verify(run.conn_for_identify, new.token)
    if not me then
      return undo(err(verr.code or "auth", "the new token did not work (%s); it was deleted", message(verr)), new.id)
    end
    if p.wait_for_use then
      -- The check above used the token: its use by the consumer must come later than this.
      local fresh = s:token(new.id)
      it.use_baseline = fresh and fresh.last_used or nil
    end
  end
  fault("verified")
  local values = { { run.key, new.token } }
  if new.refresh_token then values[2] = { run.refresh_key, new.refresh_token } end
  if client_id then values[#values + 1] = { CLIENT_ID_KEY, client_id } end
  ok, e = run:write_env(values)
  if not ok then return undo(e, new.id) end
  fault("written")
  ok, e = journal.commit(run, it, new, it.new_fp)
  if not ok then return nil, e end
  run.entry = e
  fault("committed")
  return new
end

--- Refreshes the application token (see the module notes).
-- @tparam table run the run (`aap.rotate.run`)
-- @param old the old token (`aap.Token`), or nil when it is gone
-- @treturn ?table the new token (`aap.Token`, with its values); or nil, an error, and whether
--   creating a new token could cure it
function M.refresh(run, old)
  local p = run.policy
  local rt = run.doc:get(run.refresh_key)
  if not rt or rt == "" then
    return nil, err("usage", "%s holds no %s: strategy \"refresh\" needs the application token's refresh token",
      run.env_file, run.refresh_key)
  end
  local client, cerr = run:oauth_client()
  if not client then return nil, cerr end
  -- The gateway deletes the old token the moment it answers: make sure the file can be replaced.
  local ok, e = workflow.preflight(run.env_file, run.doc)
  if not ok then return nil, e end
  local oldrec = run.st.keys[run.key] or {}
  local it = { strategy = "refresh", started = math.floor(run.now), old_fp = fp(run.doc:get(run.key)),
               old_id = old and old.id or oldrec.id, kind = "application",
               application = old and old.application or oldrec.application, user = old and old.user or oldrec.user }
  ok, e = journal.intent(run, it)
  if not ok then return nil, e end
  local new, rerr = workflow.refresh(run.conn, { refresh_token = rt, client_id = client.client_id,
                                             client_secret = client.client_secret, scope = p.scope })
  if not new then
    if rerr.refreshed then
      -- Replaced on the gateway, but the answer cannot be used: only a new token cures it.
      local sok, serr = journal.drop_intent(run)
      if not sok then return nil, serr end
      return nil, rerr, true
    end
    if rerr.status and rerr.status >= 400 and rerr.status < 500 then
      -- A definite answer: nothing changed on the gateway.
      journal.drop_intent(run)
      -- invalid_grant (a spent or revoked refresh token) and an expired refresh token can be
      -- cured by creating a new token (API doc §16.12); a bad client cannot.
      local curable = rerr.code == "expired" or
        (rerr.code == "invalid" and (rerr.oauth_error == nil or rerr.oauth_error == "invalid_grant"))
      return nil, rerr, curable
    end
    if workflow.refresh_spent(run.conn_for_identify, rerr, run.doc:get(run.key)) then
      -- The real gateway answers 500 to a refresh whose access token was deleted (API doc §17),
      -- every time: the refresh token is spent, and only a new token cures it.
      local sok, serr = journal.drop_intent(run)
      if not sok then return nil, serr end
      return nil, err("expired", "the gateway failed the refresh (%s) and the access token in %s no longer works: "
        .. "the refresh token is spent", message(rerr), run.env_file), true
    end
    return nil, err(rerr.code or "connect", "the refresh's outcome is unknown (%s); the next run will settle it",
      message(rerr))
  end
  fault("refreshed")
  local values = { { run.key, new.token } }
  if new.refresh_token then values[2] = { run.refresh_key, new.refresh_token } end
  ok, e = run:write_env(values)
  if not ok then
    return nil, err("io", "refreshed, but could not write %s (%s); the old token no longer works", run.env_file,
      message(e))
  end
  fault("written")
  if run.self_service then
    -- The session used the old access token, which the gateway has just deleted.
    local s2 = aap.connect(workflow.bearer(run.conn, new.token))
    if s2 then run.s:close() run.s = s2 end
  end
  local found, ierr = workflow.identify(run.conn_for_identify, new.token)
  if found then
    new.id, new.created, new.user, new.last_used = found.id, found.created, found.user, found.last_used
    new.application = found.application or it.application
  elseif p.verify then
    run.warn("the refreshed token was saved but did not pass the check: " .. message(ierr))
  end
  new.kind = "application"
  ok, e = journal.commit(run, it, new, fp(new.token))
  if not ok then return nil, e end
  fault("committed")
  return new
end

return M
