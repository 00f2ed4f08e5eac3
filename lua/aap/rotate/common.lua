--- What every part of the rotation engine shares: its errors, fault injection, and deleting a
-- token by id. Internal to `aap.rotate` (which re-exports `FAULT_EXIT`, `STEPS`, `message`).
-- @module aap.rotate.common
local M = {}

--- The exit code of a process stopped by AAP_FAULT_EXIT_AT.
M.FAULT_EXIT = 86

--- The fault-injection steps, in the order a rotation reaches them.
M.STEPS = { "intent", "created", "recorded", "refreshed", "verified", "written", "committed", "hooked", "revoked" }

--- The prefix of the marker a rotation puts into its new token's description.
M.MARKER = "aap-rotate:"

--- Exits the process at once (`os.exit(FAULT_EXIT)`, no cleanup) when `AAP_FAULT_EXIT_AT`
-- names this step.
-- @tparam string step
function M.fault(step)
  if os.getenv("AAP_FAULT_EXIT_AT") == step then
    io.stderr:write("aap: AAP_FAULT_EXIT_AT=", step, ": exiting now\n")
    os.exit(M.FAULT_EXIT, false)
  end
end

-- Errors: aap.errors (printed as the message alone); message(e) is one line for any error.
local errors = require("aap.errors")

--- An `aap.Error` of `code` whose message is `fmt` formatted with the rest, if any; it prints
-- as the message alone.
-- @tparam string code
-- @tparam string fmt
-- @treturn aap.Error
function M.err(code, fmt, ...)
  return errors.new(code, select("#", ...) > 0 and fmt:format(...) or fmt, { plain = true })
end

--- The text of an error (an `aap.Error`, or anything else): `aap.errors.message`.
M.message = errors.message

--- Deletes a token by id; a token already gone counts as deleted.
-- @param s an `aap.Session`
-- @tparam integer id
-- @treturn ?boolean true, or nil and the error
function M.delete(s, id)
  local ok, e = s:delete_token(id)
  if ok or (e and e.code == "not_found") then return true end
  return nil, e
end

--- Every token id a state file knows: the keys' current tokens, the pending revocations and
-- both tokens of each rotation in flight.
-- @tparam table st a state (`aap.state.load`)
-- @treturn table set of ids
function M.known_ids(st)
  local ids = {}
  for _, r in pairs(st.keys) do if r.id then ids[r.id] = true end end
  for _, e in ipairs(st.pending) do ids[e.id] = true end
  for _, it in pairs(st.rotations) do
    if it.old_id then ids[it.old_id] = true end
    if it.new_id then ids[it.new_id] = true end
  end
  return ids
end

return M
