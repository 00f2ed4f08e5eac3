--- Token rotation under a policy, and pruning of unused tokens: the engine behind
-- `aap token rotate` and `aap token prune`, usable from Lua to rotate many tokens for many
-- integrations in one run.
--
-- **Never without a working token.** A rotation creates the new token (or refreshes an
-- application token), proves it works (GET me/ with it), writes the env file atomically,
-- runs the `on_rotated` hook, and only then revokes the old token: at once, after the
-- policy's `grace`, or once the new token's `last_used` shows that the consumer picked it
-- up (`wait_for_use`). Revocations still to be done are kept in the state file beside the
-- env file (`aap.state`, ids only, no secrets) and finished by a later run.
--
-- **Crash safety.** Before it creates anything, a run writes an intent to the state file
-- (`rotations[KEY]`: a random marker that also goes into the new token's description, the
-- old token's id and a fingerprint of the value in the file); the new token's id is recorded
-- right after it is created. A later run that finds an intent resolves it before deciding
-- anything: when the env file holds the new token the rotation is finished (recorded, old
-- token scheduled for revocation); when it does not, the new token is deleted, found by id
-- or by its marker. Runs on one env file are serialized with `aap.os.lock`.
-- Fingerprints are the first 16 hex digits of the SHA-256 of a value (the gateway itself
-- stores the full unsalted SHA-256 of every token): they tell "the file holds the old token"
-- from "the file holds the new one" without keeping a secret.
--
-- **Fault injection** (for tests): with `AAP_FAULT_EXIT_AT=<step>` in the environment the
-- process exits at once (`os.exit(86)`, no cleanup) when it reaches that step. Steps, in
-- order: `intent` (intent saved), `created` (new token exists, its id not yet recorded),
-- `recorded` (id recorded), `verified` (new token proven), `written` (env file replaced),
-- `committed` (state says the file holds the new token; old token pending), `hooked`
-- (`on_rotated` done), `revoked` (old token deleted). The refresh strategy has `intent`,
-- `refreshed` (the gateway has replaced the token; nothing written yet), `written` and
-- `committed`.
--
-- **Layout.** This module is the public face; the parts are `aap.rotate.engine` (one run:
-- `run`), `aap.rotate.run` (the `Run` object a run carries), `aap.rotate.strategies`
-- (recreate, refresh), `aap.rotate.journal` (the state file: intents, recovery, commits,
-- pending revocations), `aap.rotate.hooks` (records, `ctx:run`, calling hooks),
-- `aap.rotate.prune` and `aap.rotate.common` (errors, fault injection).
--
-- Errors are `aap.Error`s (`aap.errors`) and never hold a secret; codes: `policy` (bad
-- policy, hook failure), `usage` (bad arguments or env file), `busy` (another run holds the
-- lock), `io` (cannot write a file), `local`, and the C core's codes (`auth`, `forbidden`,
-- `not_found`, `invalid`, `expired`, `connect`, ...).
-- @module aap.rotate
local state = require("aap.state")
local workflow = require("aap.workflow")
local common = require("aap.rotate.common")
local hooks = require("aap.rotate.hooks")
local engine = require("aap.rotate.engine")
local prune = require("aap.rotate.prune")

local M = {}

--- The exit code of a process stopped by AAP_FAULT_EXIT_AT.
M.FAULT_EXIT = common.FAULT_EXIT

--- The fault-injection steps, in the order a rotation reaches them.
M.STEPS = common.STEPS

--- The text of an error this module returned (or of any other error).
-- @function message
-- @param e
-- @treturn string
M.message = common.message

--- The fingerprint of a secret value: 16 hex digits of its SHA-256 (see the module's notes).
-- @function fingerprint
-- @tparam string value
-- @treturn string
M.fingerprint = state.fingerprint

--- A token record as hooks see it (`aap.rotate.hooks`): from an `aap.Token` (or a table with
-- its fields), the env key, and the values, which only `rec:secret()` and
-- `rec:refresh_secret()` return.
-- @function record
-- @tparam ?table tok
-- @tparam string key
-- @tparam ?string token_value
-- @tparam ?string refresh_value
-- @return a Record, or nil when `tok` is nil
M.record = hooks.record

--- The environment of a program started by `ctx:run`: these variables of aap's own
-- environment, and nothing else unless the hook names it (`env = {...}`). No `AAP_*`
-- credential reaches a hook's program by default.
M.CHILD_ENV = hooks.CHILD_ENV

--- The gateway's clock (see workflow.server_now).
-- @function server_now
M.server_now = workflow.server_now

--- Rotates the token in one env file if its policy says it is due.
-- @tparam table opts
--   `conn` (options for `aap.connect`: url, credentials, TLS; without username/password or
--   token, the token in the file authenticates — a PAT rotating itself),
--   `env_file` (path), `key` (default: the key the state file records, else AAP_TOKEN if
--   present, else AAP_PAT), `refresh_key` (default: recorded, else REFRESH_TOKEN),
--   `policy` (a file name, loaded in the sandbox of `aap.policy`; or a table, validated the
--   same way, whose hooks run as the caller's ordinary Lua), `dry_run` (decide and report only: no write request,
--   no file written), `now` (epoch seconds; default the gateway's clock),
--   `client` (the OAuth client for refresh: {client_id =, client_secret =}, or a function(doc)
--   returning one, or nil and an error, given the env file's `aap.env` document; default:
--   `aap.config.client`, i.e. AAP_CLIENT_ID and AAP_CLIENT_SECRET from the environment, else
--   the env file's), `warn` (function(msg) for warnings;
--   default: stderr), `log` (function(policy, msg) for the hooks' ctx:log; default: stderr)
-- @treturn table `{decision = "keep"|"rotate"|"vetoed", code =, reason =, rotated = bool,
--   strategy =, fallback = bool, old = Record, new = Record, revoked = {ids},
--   waiting = {{id =, reason =}}, notes = {strings}, dry_run = bool, held = why an old token
--   stays valid because `on_rotated` vetoed or failed (it is retried by the next run),
--   hook_failed = why `on_rotated` vetoed or failed when there was no old token to hold (after a
--   refresh, or when the old token was gone; not retried)}`,
--   or nil and an error
-- @usage
-- local rotate = require("aap.rotate")
-- for _, it in ipairs(integrations) do
--   local res, err = rotate.run{ conn = { url = URL, username = "admin", password = PW },
--                                env_file = it.env, policy = "policies/yearly.lua" }
--   print(it.env, res and (res.decision .. ": " .. res.reason) or tostring(err))
-- end
-- @function run
function M.run(opts)
  -- The engine reads no configuration: it is given the default client, aap.config.client
  -- (AAP_CLIENT_ID / AAP_CLIENT_SECRET from the environment, else from the env file).
  return engine.run(opts, require("aap.config").client)
end

--- Finds tokens nobody used for a while (or expired) and revokes them.
-- Never touches the token the connection is authenticated with, nor the tokens recorded in
-- `keep_env_files` (their current, pending and in-flight tokens).
-- @tparam table opts `conn` (aap.connect options), `unused_for` (duration: last used that
--   long ago, or never used and created that long ago; default 90d unless `expired` is
--   given), `expired` (bool: also tokens past their expiry), `description_like` (substring,
--   case-insensitive), `kind` ("personal"|"application"), `user` (id; default: the caller's
--   own tokens), `all_users` (every user's tokens; superusers only), `dry_run`,
--   `keep_ids` (list), `keep_env_files` (list of paths), `now` (default: the gateway's clock),
--   `progress` (function(phase, done, total) called while scanning ("scan") and revoking
--   ("revoke")), `confirm` (function(candidates) → bool, asked before revoking)
-- @treturn table `{candidates = {Token with .why}, revoked = {ids}, failed = {{id =, error =}},
--   scanned = N, kept = {[id] = why}, confirmed = bool}`, or nil and an error
-- @usage local res = rotate.prune{ conn = c, unused_for = "180d", dry_run = true }
-- @function prune
M.prune = prune.prune

return M
