--- One rotation run (`aap.rotate.run`): a `Run` holds what the run works on, what it has
-- found, and what it will report. The engine (`aap.rotate.engine`) makes it and fills it in as
-- the run goes; the journal (`aap.rotate.journal`), the strategies
-- (`aap.rotate.strategies`) and the hooks (`aap.rotate.hooks`) read and update it.
-- Internal to `aap.rotate`.
-- @module aap.rotate.run
local envfile = require("aap.env")
local workflow = require("aap.workflow")
local common = require("aap.rotate.common")
local hooks = require("aap.rotate.hooks")

local err, message = common.err, common.message

local M = {}

--- The state of one run.
--
-- From the caller's options (`Run.new`):
--
-- * `env_file` (path), `policy` (validated, `aap.policy.get`), `dry_run` (bool)
-- * `client` (OAuth client credentials for the refresh strategy: a table, or a function(doc))
-- * `warn` (function(msg)), `log` (function(policy, msg), for the hooks' `ctx:log`)
--
-- Once the env file is read (`aap.rotate.engine`):
--
-- * `doc` (the env file, `aap.env`), `st` (its state file, `aap.state`)
-- * `key`, `refresh_key` (the env keys of the token and its refresh token)
--
-- Once connected:
--
-- * `conn` (the session's `aap.connect` options: the caller's credentials, or the token in
--   the file when the caller gave none), `conn_for_identify` (the caller's options: used to
--   identify and verify tokens by their value), `self_service` (bool: the token in the file
--   authenticates), `s` (the `aap.Session`), `now` (epoch seconds, the gateway's clock)
--
-- While it runs:
--
-- * `decision` (the policy's, once taken: `aap.policy.decide`), `entry` (the pending
--   revocation this run's rotation added), `lost` (an interrupted refresh lost the token in
--   the file), `held` (why an old token stays valid: `on_rotated` vetoed or failed),
--   `hook_failed` (why `on_rotated` vetoed or failed after a refresh)
-- * `old_values` (`[old token id] = its value`, read before the file changed, for `on_rotated`)
--
-- What it reports: `notes` (strings), `revoked` (ids), `waiting` (`{id =, reason =}`).
-- @type Run
local Run = {}
Run.__index = Run
Run.__name = "aap.rotate.Run"
M.Run = Run

local function default_warn(m) io.stderr:write("aap: warning: ", m, "\n") end

--- A run over one env file.
-- @tparam table opts the options of `aap.rotate.run` (`env_file`, `dry_run`, `client`, `warn`, `log`)
-- @tparam table p the validated policy
-- @tparam function default_client the client when `opts.client` is nil
-- @treturn Run
function M.new(opts, p, default_client)
  return setmetatable({ env_file = opts.env_file, policy = p, dry_run = opts.dry_run or false,
                        client = opts.client or default_client,
                        warn = opts.warn or default_warn, log = opts.log,
                        notes = {}, revoked = {}, waiting = {}, old_values = {} }, Run)
end

--- Adds a line to the run's notes.
-- @tparam string msg
function Run:note(msg)
  self.notes[#self.notes + 1] = msg
end

--- Tells the policy's `on_error` hook about a failure (a failing hook is only warned about),
-- and returns it.
-- @param e the error
-- @tparam ?table fields more for the hook's context (`old`, `new`)
-- @treturn nil
-- @return e
function Run:fail(e, fields)
  fields = fields or {}
  fields.error = { code = e.code, message = message(e) }
  local ok, why = hooks.call(self, "on_error", fields)
  if not ok then self.warn(why) end
  return nil, e
end

--- Writes `values` (`{{KEY, value}, ...}`) into the env file, atomically, on top of what it
-- holds now; the run's `doc` becomes what was written.
-- @treturn ?boolean true, or nil and an error
function Run:write_env(values)
  local doc, e = envfile.read(self.env_file)
  if not doc then return nil, e end
  local cok, cerr = workflow.check_values(doc, self.env_file, values)
  if not cok then return nil, cerr end
  for _, kv in ipairs(values) do doc:set(kv[1], kv[2]) end
  local ok, werr = envfile.write(self.env_file, doc)
  if not ok then return nil, err("io", "cannot write %s: %s", self.env_file, werr.message) end
  self.doc = doc
  return true
end

--- The OAuth client credentials for a refresh: the run's `client` (a table, or a
-- function(doc) returning one or nil and an error; `aap.rotate.run` gives `aap.config.client`
-- when the caller gives none).
-- @treturn ?table `{client_id =, client_secret =}`, or nil and an error
function Run:oauth_client()
  local c = self.client
  if type(c) == "function" then return c(self.doc) end
  return c
end

return M
