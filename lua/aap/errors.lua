--- aap's one error contract: every error aap returns (`nil, err`) is an `aap.Error`, a table
-- with a stable `code`, a one-line `message` that never holds a secret, and the details its
-- maker knows (`status`, `method`, `path`, `fields`, `candidates`, ...).
--
-- The C core makes the errors of the gateway and the network; the Lua modules make theirs with
-- `errors.new`, which asks the C core (`aap.error`) for the same `aap.Error` metatable, so
-- `getmetatable(err)` is one table for all. `tostring(err)` is the C core's one line,
-- `code: message (HTTP 401, GET /api/gateway/v1/me/)`, or the message alone for an error made
-- with `plain = true` (a whole sentence written for the operator: the CLI shows it as it is).
--
-- `errors.CODES` is the one table of codes, with each one's exit code for the `aap` command
-- (1 local, 2 server or API, 3 authentication or permission, 4 network or TLS) and its
-- meaning; the CLI's exit codes derive from it, and spec/errors_spec.lua holds the C core's
-- codes (`aap.codes`) to it. `aap.os` is not an error maker: its functions return
-- `nil, msg, code` as luv does, and of its codes `busy`, `io`, `timeout` and `interrupted` are
-- error codes here, while `spawn` and `notty` never leave the module that called (`ctx:run`
-- raises, which fails the hook: `policy`; the password prompt makes a `local` error).
-- Loading this module loads no C: `aap --version` stays light;
-- `errors.new` loads the C core the first time it makes an error.
-- @module aap.errors

local M = {}

--- The exit codes of the `aap` command by kind of failure.
M.EXIT = { ["local"] = 1, api = 2, auth = 3, network = 4 }

--- The exit code of an error whose code is unknown or missing: a server or API error.
M.DEFAULT_EXIT = M.EXIT.api

local LOCAL, API, AUTH, NET = M.EXIT["local"], M.EXIT.api, M.EXIT.auth, M.EXIT.network

--- Every error code aap produces: `CODES[code] = {exit = n, meaning = "..."}`.
M.CODES = {
  -- The C core's (aap.codes): the gateway's answers and the transport.
  auth = { exit = AUTH, meaning = "401: no, wrong or expired credentials; an OAuth client refused (invalid_client)" },
  forbidden = { exit = AUTH, meaning = "403: authenticated but not allowed (external user, read-scope token, ...)" },
  expired = { exit = AUTH, meaning = "the refresh token has expired (403 from the token endpoint), or is spent" },
  not_found = { exit = API, meaning = "404, or nothing of that name; a token that nothing proves" },
  ambiguous = { exit = API, meaning = "several applications match a name; several tokens in use at once" },
  invalid = { exit = API, meaning = "400: validation, invalid_grant, invalid_scope (err.fields, err.oauth_error)" },
  conflict = { exit = API, meaning = "409 or 412" },
  rate_limited = { exit = API, meaning = "429 after the retries" },
  server = { exit = API, meaning = "5xx after the retries, or another unexpected status" },
  bad_response = { exit = API, meaning = "an answer that is not what the API promises (not the JSON expected)" },
  too_large = { exit = API, meaning = "a body or headers over the cap" },
  redirect = { exit = API, meaning = "a redirect refused: another origin, not a GET/HEAD, too many, not http(s)" },
  timeout = { exit = NET, meaning = "the connect or total timeout" },
  connect = { exit = NET, meaning = "refused, unreachable, DNS, connection closed early" },
  tls = { exit = NET, meaning = "a certificate or TLS handshake failure" },
  insecure = { exit = LOCAL, meaning = "a credential refused before any I/O: plain http:// to a host not loopback" },
  -- Local: the command line, the files and the machine.
  usage = { exit = LOCAL, meaning = "a bad command line, setting or argument; a state file that is not aap's" },
  io = { exit = LOCAL, meaning = "a file that cannot be read or written" },
  ["local"] = { exit = LOCAL, meaning = "a local failure: no terminal, a value a format cannot carry, a busy run" },
  policy = { exit = LOCAL, meaning = "a bad policy; a hook that failed or vetoed after the rotation" },
  interrupted = { exit = LOCAL, meaning = "SIGINT or SIGTERM" },
  busy = { exit = LOCAL, meaning = "another run holds the env file's lock, or left its rotation unfinished" },
  format = { exit = LOCAL, meaning = "a line or value aap will not write as asked (an export line, a quoted value)" },
  unsafe = { exit = LOCAL, meaning = "a file or directory another user could write or swap" },
  internal = { exit = LOCAL, meaning = "a bug in aap: an error raised, not returned (the CLI's log line)" },
}

local make -- aap.error, from the C core once needed

--- A new error.
-- @tparam string code one of `CODES` (anything else raises: a programmer's error)
-- @tparam string message one line, never a secret
-- @tparam[opt] table fields more fields (`path`, `status`, `plain = true`, ...), copied
-- @treturn table an `aap.Error`
-- @usage return nil, errors.new("io", "cannot read " .. path, { path = path })
function M.new(code, message, fields)
  if M.CODES[code] == nil then error(("aap.errors.new: unknown error code %q"):format(tostring(code)), 2) end
  if type(message) ~= "string" then error("aap.errors.new: the message must be a string", 2) end
  if fields ~= nil and type(fields) ~= "table" then error("aap.errors.new: fields must be a table", 2) end
  make = make or require("aap").error
  return make(code, message, fields)
end

--- The exit code of the `aap` command for an error (`DEFAULT_EXIT` for an unknown code or
-- anything that is not an error table).
-- @param err an error
-- @treturn integer
function M.exit_code(err)
  local c = M.CODES[type(err) == "table" and err.code or nil]
  return c and c.exit or M.DEFAULT_EXIT
end

--- One line for an error: `tostring(err)` when it has a `__tostring` (every `aap.Error`),
-- else its message (or code) - also for a plain `{code =, message =}` table or a string.
-- @param err an error
-- @treturn string
function M.message(err)
  if type(err) ~= "table" then return tostring(err) end
  local mt = getmetatable(err)
  if mt and mt.__tostring then return tostring(err) end
  return tostring(err.message or err.code or "error")
end

return M
