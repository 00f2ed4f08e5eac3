--- The journal of rotations: the state file beside the env file (`aap.state`), written
-- ahead of every step. An intent (`rotations[KEY]`) before anything is created, the commit
-- once the env file holds the new token (its old token goes on `pending`), the recovery of an
-- intent an interrupted run left, and the pending revocations, settled once each per run:
-- `on_rotated`, then the revocation when it is due. Internal to `aap.rotate`; every function
-- takes the run (`aap.rotate.run`).
-- @module aap.rotate.journal
local aap = require("aap")
local state = require("aap.state")
local workflow = require("aap.workflow")
local common = require("aap.rotate.common")
local hooks = require("aap.rotate.hooks")

local err, message, fault, delete = common.err, common.message, common.fault, common.delete
local fp, record = state.fingerprint, hooks.record

local M = {}

--- Writes the run's state file, then hands the same text to the policy's `on_state_saved` (a
-- state kept elsewhere too, e.g. in the cluster by deploy/k8s): the state counts as saved only
-- when both succeed, so a run whose copy cannot be kept stops where a failed file write would.
-- @treturn ?boolean true, or nil and an error of code `io` (or `policy`: `on_state_saved` failed)
function M.save(run)
  local ok, e = state.save(run.env_file, run.st)
  if not ok then return nil, err("io", "cannot write the state file %s: %s", state.path(run.env_file), message(e)) end
  if run.policy.on_state_saved then
    local hok, why = hooks.call(run, "on_state_saved", { state = e, state_file = state.path(run.env_file) })
    if not hok then
      return nil, err("policy", "the state file %s was written, but %s", state.path(run.env_file), why)
    end
  end
  return true
end
local save = M.save

--- Records the intent `it` of a rotation of the run's key, before anything is created.
-- @treturn ?boolean true, or nil and an error
function M.intent(run, it)
  run.st.rotations[run.key] = it
  local ok, e = save(run)
  if not ok then return nil, e end
  fault("intent")
  return true
end

--- Forgets the intent of the run's key (nothing was changed, or all was undone).
-- @treturn ?boolean true, or nil and an error
function M.drop_intent(run)
  run.st.rotations[run.key] = nil
  return save(run)
end

-- Records that the env file now holds `new` (a Token or state record) in place of the
-- intent's old token, which goes on the pending list (recreate).
-- @treturn ?boolean true and the pending entry added (or nil), or nil and an error
function M.commit(run, it, new, new_fp)
  local st = run.st
  st.keys[run.key] = state.record(new, { refresh_key = new.kind == "application" and run.refresh_key or nil,
                                       fp = new_fp })
  local entry
  if it.old_id and it.strategy == "recreate" then
    -- Times are whole seconds, rounded towards "later": the state file's JSON keeps only 14
    -- significant digits, and a bound rounded down could count aap's own check as the
    -- consumer's use.
    local ceil = math.ceil
    entry = {
      id = it.old_id, key = run.key, kind = it.kind, rotated_at = it.started, new_id = new.id,
      created = it.old_created, user = it.old_user, application = it.old_application,
      not_before = ceil(it.started + (it.grace or 0)), hooks_done = false,
      wait_for_use = it.wait_for_use and { id = new.id, after = ceil(it.use_baseline or new.last_used or new.created
                                           or it.started) } or nil,
      max_wait_until = it.max_wait and ceil(it.started + it.max_wait) or nil,
    }
    st.pending[#st.pending + 1] = entry
  end
  st.rotations[run.key] = nil
  local ok, e = save(run)
  if not ok then return nil, e end
  return true, entry
end

--- Resolves an intent left by an interrupted run, before the run decides anything.
-- @treturn ?string a note for the report, or nil and an error
function M.recover(run)
  local it = run.st.rotations[run.key]
  local s = run.s
  local value = run.doc:get(run.key) or ""
  local file_fp = fp(value)
  if it.strategy == "refresh" then
    if file_fp ~= it.old_fp then
      -- The refreshed pair reached the file: identify the token by its value and record it.
      local tok = workflow.identify(run.conn_for_identify, value)
      local rec = tok or { kind = "application", application = it.application, user = it.user }
      local ok, e = M.commit(run, it, rec, file_fp)
      if not ok then return nil, e end
      return ("finished an interrupted refresh of %s (new token id=%s)"):format(run.key, tostring(rec.id or "?"))
    end
    local old, oerr = s:token(it.old_id)
    if old then
      run.st.rotations[run.key] = nil
      local ok, e = save(run)
      if not ok then return nil, e end
      return ("an interrupted refresh of %s never reached the gateway; nothing to undo"):format(run.key)
    end
    if oerr.code == "auth" and run.self_service then
      -- aap authenticates with the token in the file, and the gateway has deleted it.
      return nil, err("auth", "an interrupted refresh of %s lost the new token and the old one no longer works; "
        .. "run again with admin credentials (AAP_PASSWORD or AAP_TOKEN) to delete the orphan and create a new "
        .. "token", run.key)
    end
    if oerr.code ~= "not_found" then return nil, oerr end
    -- The gateway replaced the token but the new pair was lost. Its new token has no marker
    -- (a refresh keeps no description) and nothing proves which one it is: list the likely
    -- ones for the operator, delete none.
    local known, likely = common.known_ids(run.st), {}
    for tok, e in s:each_token({ application = it.application, user = it.user }) do
      if not tok then return nil, e end
      if not known[tok.id] and tok.id > (it.old_id or 0) and (it.user == nil or tok.user == it.user)
        and (tok.description or "") == "" and (tok.created or 0) >= it.started - 1 then
        likely[#likely + 1] = tok.id
      end
    end
    run.st.rotations[run.key] = nil
    run.lost = true
    local ok, e = save(run)
    if not ok then return nil, e end
    return ("an interrupted refresh of %s lost the new token; the token in the file no longer works%s"):format(run.key,
      #likely > 0 and ("; the lost one is likely among id " .. table.concat(likely, ", ") ..
        " (not deleted: nothing proves which; revoke it with `aap token revoke ID`)") or "")
  end
  -- recreate
  if it.new_id and file_fp == it.new_fp then
    local tok, terr = s:token(it.new_id)
    if not tok and terr.code ~= "not_found" then return nil, terr end
    local ok, e = M.commit(run, it, tok or { id = it.new_id, kind = it.kind }, file_fp)
    if not ok then return nil, e end
    return ("finished an interrupted rotation of %s (new token id=%d; old token id=%s pending revocation)")
      :format(run.key, it.new_id, tostring(it.old_id))
  end
  -- The new token (it.new_id too) is deleted by its marker, which proves aap made it: an id
  -- alone, read from a file, proves nothing.
  local deleted, serr = workflow.sweep_marker(s, it.marker)
  if not deleted then return nil, serr end
  if file_fp ~= it.old_fp then
    -- Someone else changed the file meanwhile: what the state says about the key is stale.
    run.st.keys[run.key] = nil
    run.warn(("%s in %s changed outside aap during an interrupted rotation; its record was dropped")
      :format(run.key, run.env_file))
  end
  run.st.rotations[run.key] = nil
  local ok, e = save(run)
  if not ok then return nil, e end
  return ("rolled back an interrupted rotation of %s%s"):format(run.key,
    #deleted > 0 and (" (deleted the unused new token id=" .. table.concat(deleted, ", ") .. ")") or
    " (no new token had been created)")
end

-- Pending revocations -----------------------------------------------------------------------

local function current_record(run)
  local r = run.st.keys[run.key] or {}
  return record({ id = r.id, kind = r.kind, scope = r.scope, application = r.application, user = r.user,
                  created = r.created, expires = r.expires }, run.key, run.doc:get(run.key),
                r.refresh_key and run.doc:get(r.refresh_key) or nil)
end

-- Revokes the old token of a pending entry once the gateway's token with that id is proven
-- to be the one recorded when it was rotated out: same created time, user and application.
-- Returns true (revoked or already gone), false and why (not that token: nothing revoked),
-- or nil and an error.
local function revoke_pending(s, e)
  local tok, terr = s:token(e.id)
  if not tok then
    if terr.code == "not_found" then return true end
    return nil, terr
  end
  if not e.created then
    return false, ("nothing recorded proves that token id=%d is the one rotated out; it was not revoked "
      .. "(check it with `aap token show %d`, then `aap token revoke %d`)"):format(e.id, e.id, e.id)
  end
  if aap.format_time(tok.created or 0) ~= e.created or tok.user ~= e.user or tok.application ~= e.application then
    return false, ("token id=%d is not the one rotated out (created %s, user %s, application %s recorded; the "
      .. "gateway has created %s, user %s, application %s); it was not revoked"):format(e.id, e.created,
      tostring(e.user), tostring(e.application), tok.created and aap.format_time(tok.created) or "?",
      tostring(tok.user), tostring(tok.application))
  end
  return delete(s, e.id)
end

-- Whether the wait for the consumer is over (true), or why not (false, why); nil and an error.
-- An entry whose new token is gone is pointed at the key's current token (changed = true).
local function consumer_switched(run, e)
  local new, nerr = run.s:token(e.wait_for_use.id)
  if not new and nerr.code ~= "not_found" then return nil, nerr end
  local used = new and new.last_used and new.last_used > (e.wait_for_use.after or 0) or false
  local gone_why, changed
  if not new then
    -- The token the consumer was to pick up is gone (deleted outside aap): revoking the
    -- old one now could cut off a consumer still on it. Wait for the key's current token.
    local cur = run.st.keys[e.key or run.key]
    if cur and cur.id and cur.id ~= e.wait_for_use.id then
      gone_why = ("the new token id=%d is gone; waiting for the consumer to use token id=%d instead")
        :format(e.wait_for_use.id, cur.id)
      if not run.dry_run then
        e.wait_for_use = { id = cur.id, after = math.ceil(run.now) }
        changed = true
      end
    else
      gone_why = ("the new token id=%d no longer exists; the old token id=%d is kept until a new one "
        .. "is in use (run a rotation)"):format(e.wait_for_use.id, e.id)
    end
    run.warn(gone_why)
  end
  if not used and e.max_wait_until and run.now >= e.max_wait_until then
    used = true
    run.warn(("the consumer never used token id=%d; revoking the old token id=%d anyway (max_wait)")
      :format(e.wait_for_use.id, e.id))
  end
  if used then return true, nil, changed end
  return false, gone_why or ("waiting for the consumer to use the new token id=%d"):format(e.wait_for_use.id), changed
end

-- The hooks' view of a switch: the old token (its value, when this run read it) and the new.
local function switch_fields(run, e, decision)
  if e.unheld then return { old = e.old, new = e.new, decision = decision } end
  return { old = record({ id = e.id, kind = e.kind }, run.key, run.old_values[e.id]), new = current_record(run),
           decision = decision }
end

--- The pending revocations of the run's key, oldest first: what earlier runs (or this run's
-- recovery) left to do.
-- @treturn table list of entries of `st.pending`
function M.owed(run)
  local list = {}
  for _, e in ipairs(run.st.pending) do
    if e.key == run.key then list[#list + 1] = e end
  end
  return list
end

--- Settles switches from an old token to a new one, each once: runs `on_rotated` where it is
-- owed (the one place that hook is called), then revokes the old token once it is due (grace
-- over, the consumer on the new token or `max_wait` past). `entries` are entries of the
-- state's `pending` list (`M.owed`, or the one `M.commit` added), or a switch with no old token
-- to hold (`{unheld = why, old = Record, new = Record}`: a refresh, whose old token the gateway
-- has deleted, or a recreate whose old token was gone; an `on_rotated` that fails or vetoes
-- is reported as `run.hook_failed`).
-- Notes go to `run.notes`, revoked ids to `run.revoked`, waits to `run.waiting`; a held old
-- token sets `run.held`.
-- @tparam table run
-- @tparam table entries
-- @tparam ?table decision what the hooks see as `ctx.decision` (default: "finishing an
--   earlier rotation")
-- @treturn ?boolean true, or nil and an error
function M.settle(run, entries, decision)
  decision = decision or { action = "rotate", code = "pending", reason = "finishing an earlier rotation" }
  local settled, changed = {}, false
  -- The file must still hold the token the rotation put there: otherwise (restored from a
  -- backup; or, in a pod, rebuilt from a Secret that on_rotated never updated) the old token
  -- may be what the consumer uses again, and neither the hook nor the revocation may run.
  -- Proven by the key's record: its fingerprint is the file's value. No record (dropped when
  -- the file changed under an interrupted rotation) or one without a fingerprint proves nothing.
  local rec = run.st.keys[run.key]
  local proven = rec ~= nil and rec.fp ~= nil and rec.fp == fp(run.doc:get(run.key) or "")
  for _, e in ipairs(entries) do
    if not proven and not e.unheld then
      if e.hooks_done then
        local why = ("%s in %s no longer holds the token id=%s it was switched to"):format(run.key, run.env_file,
          tostring(e.new_id))
        run:note(("old token id=%d stays valid: %s"):format(e.id, why))
        run.waiting[#run.waiting + 1] = { id = e.id, reason = why }
      elseif run.dry_run then
        run:note(("would drop the rotation from token id=%d: %s in %s no longer holds its new token id=%s")
          :format(e.id, run.key, run.env_file, tostring(e.new_id)))
      else
        -- The switch never reached the consumer: it did not happen. The new token is left
        -- live (aap cannot prove that nothing picked it up from the file meanwhile): named,
        -- not deleted.
        run.warn(("%s in %s no longer holds the new token id=%s of an earlier rotation, whose on_rotated never "
          .. "succeeded: the rotation is dropped, the old token id=%d is not revoked, and token id=%s is left live "
          .. "(`aap token revoke %s` when nothing uses it)"):format(run.key, run.env_file, tostring(e.new_id), e.id,
          tostring(e.new_id), tostring(e.new_id)))
        run.st.keys[run.key] = nil
        settled[e], changed = true, true
      end
    else
      if not e.hooks_done then
        if run.dry_run then
          run:note(("would run on_rotated for the switch from token id=%d"):format(e.id))
        else
          local ok, why = hooks.call(run, "on_rotated", switch_fields(run, e, decision))
          if e.unheld then
            if not ok then run.hook_failed = ("%s (%s; nothing was undone)"):format(why, e.unheld) end
          elseif ok then
            e.hooks_done, changed = true, true
            local sok, serr = save(run)
            if not sok then return nil, serr end
            fault("hooked")
          else
            run.held = why
            run:note(("old token id=%d stays valid: %s"):format(e.id, why))
          end
        end
      end
      if not e.unheld and (e.hooks_done or (run.dry_run and not run.held)) then
        local due, why = run.now >= (e.not_before or 0), nil
        if not due then
          why = ("grace period until %s"):format(aap.format_time(e.not_before))
        elseif e.wait_for_use then
          local moved
          due, why, moved = consumer_switched(run, e)
          if due == nil then return nil, why end
          changed = changed or moved or false
        end
        if due and run.dry_run then
          run:note(("would revoke the old token id=%d"):format(e.id))
        elseif due then
          local ok, derr = revoke_pending(run.s, e)
          if ok == nil then return nil, derr end
          settled[e], changed = true, true
          if ok then
            run.revoked[#run.revoked + 1] = e.id
            run:note(("revoked the old token id=%d"):format(e.id))
          else
            run.warn(derr)
          end
        else
          run:note(("old token id=%d stays valid: %s"):format(e.id, why))
          run.waiting[#run.waiting + 1] = { id = e.id, reason = why }
        end
      end
    end
  end
  if changed and not run.dry_run then
    local keep = {}
    for _, e in ipairs(run.st.pending) do
      if not settled[e] then keep[#keep + 1] = e end
    end
    run.st.pending = keep
    local ok, serr = save(run)
    if not ok then return nil, serr end
    if #run.revoked > 0 then fault("revoked") end
  end
  return true
end

return M
