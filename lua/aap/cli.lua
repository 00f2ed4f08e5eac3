--- The `aap` command: argument parsing, connection settings, output and exit codes.
-- The sub-commands live in `aap.commands.*`; each registers itself on the parser. They never
-- require this module (nor each other): `register` gets it as an argument, the handlers get
-- `ctx` (ctx:message, ctx:exit_code, ctx:log, ...), and what they share is
-- `aap.commands.common`. scripts/require_graph.lua (spec/modules_spec.lua) checks it.
-- Start-up (issue #12): a command loads only what it uses. argparse, the C core (libcurl,
-- OpenSSL) and the library modules are required where they are needed, not here; the
-- command modules require theirs inside their handlers. spec/startup_spec.lua checks it.
-- @module aap.cli

local M = {}

--- The version, known without loading the C core: `aap --version` needs neither libcurl
-- nor OpenSSL. It must equal the C core's `_VERSION` (AAP_VERSION in CMakeLists.txt);
-- spec/startup_spec.lua holds them together.
M.VERSION = "0.1.0"

--- Exit codes, stable for scripts (an error's comes from its code: `aap.errors.CODES`).
M.EXIT = { ok = 0, usage = 1, api = 2, auth = 3, network = 4 }

--- The exit code for an error's code (`aap.errors.exit_code`): 1 local, 2 server or API,
-- 3 authentication or permission, 4 network or TLS. aap.errors is loaded only when a
-- command fails: `aap --version` loads aap.cli alone.
function M.exit_code(err)
  return require("aap.errors").exit_code(err)
end

-- An error the CLI makes: an aap.Error printed as its message alone.
local function cli_error(code, message, fields)
  fields = fields or {}
  fields.plain = true
  return require("aap.errors").new(code, message, fields)
end
M.error = cli_error

local EPILOG = [[
Connection (flags win over the environment):
  AAP_HOSTNAME (or AAP_URL, AAP_HOST, CONTROLLER_HOST)  gateway URL; https:// if no scheme
  AAP_USERNAME (default admin), AAP_PASSWORD, AAP_PASSWORD_FILE, or --password-stdin
  AAP_TOKEN, --token-stdin  use this token (Bearer) instead of a password
  AAP_CA_FILE, AAP_VALIDATE_CERTS=false / AAP_INSECURE_SKIP_VERIFY=true, AAP_TIMEOUT
  AAP_ALLOW_PLAIN_HTTP=true  send credentials over plain http:// to a host that is not loopback
  AAP_CLIENT_ID, AAP_CLIENT_SECRET   the OAuth application's client, for refresh
  AAP_ENV_FILE              default env file (else .env)
  AAP_FLAVOR                auto, gateway (AAP 2.5+) or controller (AAP 2.4)
  AAP_LOG_FORMAT            text, or json: one JSON object per stderr line
  Passwords and tokens are never accepted on the command line.

Exit codes:
  0 ok   1 usage or local error   2 server or API error
  3 authentication or permission   4 network or TLS   5 token status: expiring soon
  6 token rotate --detailed-exit-code: rotated]]

--- A failure that ends the command: raised by handlers through ctx:fail / ctx:check and
-- turned into one line on stderr and an exit code by M.main.
local Fail = {}
Fail.__index = Fail

local function raise(err)
  error(setmetatable({ err = err }, Fail), 0)
end

-- stderr's lines: text (`aap: warning: ...`), or with --log-format json / AAP_LOG_FORMAT=json
-- one JSON object per line for a log pipeline: time, level (info, warning, error), the
-- command, the message; an error adds its code and the exit code. Never a secret: the same
-- messages as the text lines.
local log_json, log_command = false, nil

--- Writes one line of the log to stderr. `extra` (code, exit, policy) only shows in JSON.
function M.log(level, msg, extra)
  if not log_json then
    local prefix = ({ warning = "aap: warning: ", error = "aap: " })[level] or ""
    if extra and extra.policy then prefix = extra.policy .. ": " end
    io.stderr:write(prefix, msg, "\n")
    return
  end
  local report = require("aap.report")
  local o = { time = os.date("!%Y-%m-%dT%H:%M:%SZ"), level = level, message = msg,
              command = log_command or report.null }
  for k, v in pairs(extra or {}) do o[k] = v end
  io.stderr:write(report.encode(o), "\n")
end

local Ctx = {}
Ctx.__index = Ctx

--- Writes a line to stdout.
function Ctx:out(s) io.stdout:write(s, "\n") end
--- Writes a diagnostic line to stderr (not with --quiet).
function Ctx:info(s) if not self.args.quiet then M.log("info", s) end end
--- Writes a warning to stderr, always.
function Ctx:warn(s) M.log("warning", s) end
--- A policy hook's ctx:log line (rotate.run's `log`).
function Ctx:policy_log(policy, s) if not self.args.quiet then M.log("info", s, { policy = policy }) end end
--- Ends the command with an error: `ctx:fail(err)` (an aap.Error), or `ctx:fail(code, message)`
-- for one the command makes (`M.error`: printed as the message alone).
function Ctx:fail(err, message)
  if message ~= nil then err = cli_error(err, message) end
  raise(err)
end
--- Ends the command with a usage error.
function Ctx:usage(fmt, ...) raise(cli_error("usage", fmt:format(...))) end
--- Writes a line of the log to stderr, even with --quiet (M.log).
function Ctx:log(level, s, extra) M.log(level, s, extra) end
--- One readable line for an error (M.message): the command modules never require aap.cli.
function Ctx:message(err) return M.message(err) end
--- The exit code for an error (M.exit_code).
function Ctx:exit_code(err) return M.exit_code(err) end
--- Returns v, or ends the command with err.
function Ctx:check(v, err, prefix)
  if v == nil or v == false then
    if prefix and type(err) == "table" then
      err = cli_error(err.code, prefix .. ": " .. M.message(err), { status = err.status })
    end
    raise(err)
  end
  return v
end

--- Connection options for aap.connect from the flags and environment.
-- Asks for the password on the terminal (no echo).
local function prompt_password(text)
  local pw, msg, code = require("aap").os.read_password(text)
  if not pw then return nil, cli_error(code == "interrupted" and "interrupted" or "local", msg) end
  return pw
end

function Ctx:conn(opts)
  local config = require("aap.config")
  opts = { anonymous = opts and opts.anonymous }
  -- No password given and a person at the terminal: ask. A script (stdin not a terminal)
  -- gets the "no credentials" error at once rather than a prompt it cannot answer.
  if not self.args.password_stdin and not self.args.token_stdin and require("aap").os.isatty(0) then
    opts.prompt = prompt_password
  end
  local c, err = config.connection(self.args, opts)
  if not c then raise(err) end
  if c.allow_plain_http and c.url:lower():match("^http://") and not self.warned_plain then
    self.warned_plain = true
    self:warn("credentials may be sent over plain http://, unencrypted (--allow-plain-http / AAP_ALLOW_PLAIN_HTTP)")
  end
  local info = config.info[c] or {}
  if info.both and not self.warned_both then
    self.warned_both = true
    self:warn("both AAP_TOKEN and a password are set: authenticating with AAP_TOKEN "
      .. "(unset it, e.g. after `set -a; . .env`, to use the password)")
  end
  if c.insecure and not self.warned_insecure then
    self.warned_insecure = true
    self:warn("TLS certificate verification is OFF (--insecure / AAP_VALIDATE_CERTS=false)")
  end
  return c
end

--- Opens a session (and remembers it, to close it at the end).
function Ctx:connect(opts)
  local c = self:conn(opts)
  -- aap.connect raises on options it cannot take: from the command line or the environment,
  -- that is a usage error (exit 1, one line), not a bug.
  local ok, s, err = pcall(require("aap").connect, c)
  if not ok then
    local what = tostring(s):match("aap%.connect: (option .*)$")
    if not what then error(s, 0) end
    raise(cli_error("usage", what))
  end
  if not s then raise(err) end
  if c.token or c.password then
    self.credentials = (require("aap.config").info[c] or {}).credentials or ("the password of " .. tostring(c.username))
  end
  self.sessions[#self.sessions + 1] = s
  return s, c
end

--- One readable line for an error, with no secret in it.
-- The Lua API's option names in the core's messages, as the command's own flags.
local CLI_NAMES = {
  ["allow_plain_http = true"] = "--allow-plain-http or AAP_ALLOW_PLAIN_HTTP=true",
  ["insecure = true"] = "--insecure or AAP_VALIDATE_CERTS=false",
  ["ca_file = "] = "--ca-file ",
}

function M.message(err)
  local text = require("aap.errors").message(err)
  for api, flag in pairs(CLI_NAMES) do
    local i, j = text:find(api, 1, true)
    if i then text = text:sub(1, i - 1) .. flag .. text:sub(j + 1) end
  end
  -- An ambiguous name: the candidates, so the next command can name one (by id, or with
  -- --organization).
  if type(err) == "table" and err.code == "ambiguous" and type(err.candidates) == "table" then
    local names = {}
    for i, c in ipairs(err.candidates) do
      local org = c.organization_name or c.organization
      names[i] = ("id=%s%s"):format(tostring(c.id), org ~= nil and (" (organization %s)"):format(
        require("aap.commands.common").cell(org)) or "")
    end
    if #names > 0 then text = text .. "; candidates: " .. table.concat(names, ", ") end
  end
  return text
end

--- Adds the connection flags to a command.
function M.connection_options(cmd)
  cmd:option("--url", "Gateway URL (default: AAP_HOSTNAME, AAP_URL, AAP_HOST, CONTROLLER_HOST).")
  cmd:option("--username", "User name (default: AAP_USERNAME, else admin).")
  cmd:flag("--password-stdin", "Read the password from standard input.")
  cmd:flag("--token-stdin", "Read a token (Bearer) from standard input.")
  cmd:option("--password"):args("?"):hidden(true)
  cmd:option("--token"):args("?"):hidden(true)
  cmd:option("--ca-file", "CA bundle to verify the gateway's certificate (default: AAP_CA_FILE).")
  cmd:flag("-k --insecure", "Do not verify the TLS certificate (visible warning).")
  cmd:flag("--allow-plain-http", "Allow credentials over plain http:// to a host that is not loopback "
    .. "(visible warning).")
  cmd:flag("--allow-insecure-basic"):hidden(true)   -- the former name of --allow-plain-http
  cmd:option("--timeout", "Seconds per request (default: AAP_TIMEOUT, else 30).")
  cmd:option("--flavor", "auto, gateway (AAP 2.5+) or controller (AAP 2.4) (default: AAP_FLAVOR, else auto: "
    .. "learned from the first call; on a controller that costs a few requests per command).")
    :choices({ "auto", "gateway", "controller" })
  return cmd
end

--- Adds --log-format (with -q: every leaf has both).
function M.log_option(cmd)
  for _, o in ipairs(cmd._options) do
    for _, alias in ipairs(o._aliases) do
      if alias == "--log-format" then return cmd end
    end
  end
  cmd:option("--log-format", "text, or json: stderr as one JSON object per line (default: AAP_LOG_FORMAT, "
    .. "else text).")
    :choices({ "text", "json" })
  return cmd
end

--- Adds -q/--quiet (every leaf has it: M.parser adds it to those that do not).
function M.quiet_option(cmd)
  cmd:flag("-q --quiet", "No summary or diagnostics on stderr (warnings and errors still).")
  M.log_option(cmd)
  return cmd
end

-- Has this command an option of this name?
local function has_option(cmd, name)
  for _, o in ipairs(cmd._options) do
    for _, alias in ipairs(o._aliases) do
      if alias == name then return true end
    end
  end
  return false
end

--- Registers a handler for a leaf command.
function M.handler(cmd, fn)
  cmd:action(function(args) args._run = fn end)
  return cmd
end

-- While M.parser builds: the words that name each group ({} the root, {"token"}, {"app"}),
-- and the leaves registered through M.command, whose options are added at the end.
local building

--- Adds a leaf command to `parent` (a group of the parser, or the root): `build(cmd)` adds
-- its arguments and options, `fn` handles it. The leaf is always there (for the group's help
-- and dispatch); its options are built when the command line can reach it (see M.parser).
-- @treturn table the command
function M.command(parent, name, description, build, fn)
  local cmd = M.handler(parent:command(name, description), fn)
  local words = building and building.words[parent]
  if not words then
    build(cmd)
    return cmd
  end
  words = table.move(words, 1, #words, 1, {})
  words[#words + 1] = name
  building.leaves[#building.leaves + 1] = { cmd = cmd, build = build, words = words }
  return cmd
end

-- Does argv begin with these words?
local function starts_with(argv, words)
  for i, w in ipairs(words) do
    if argv[i] ~= w then return false end
  end
  return true
end

local COMMAND_MODULES = { "aap.commands.token", "aap.commands.app", "aap.commands.misc", "aap.commands.rotate",
                          "aap.commands.status" }

--- Builds the parser with every registered sub-command.
-- With `argv` whose first words name a leaf (`token create ...`: argparse can only reach
-- that leaf), the other leaves get no options (most of argparse's construction is options,
-- and only the reached leaf's are ever parsed or shown), and the command modules after the
-- one that registers it are not loaded. Otherwise (`--help`, `token`, a typo,
-- `-- token create`) every command module is loaded and every leaf built in full.
-- @tparam ?table argv the command line
function M.parser(argv)
  local argparse = require("argparse")
  local parser = argparse("aap", "Create, refresh, rotate, revoke and export AAP gateway tokens.")
    :epilog(EPILOG)
    :command_target("command")
    :help_max_width(100)
  parser:flag("--version", "Print the version and exit."):action(function()
    io.stdout:write("aap ", M.VERSION, "\n")
    os.exit(0)
  end)
  local groups = {
    root = parser,
    token = parser:command("token", "Create, refresh, list, show, revoke, rotate and prune tokens.")
      :command_target("token_command"),
    app = parser:command("app", "List, show and create OAuth applications.")
      :command_target("app_command"),
  }
  parser:command("sim", "Run the local gateway emulator (see `aap sim --help`)."):handle_options(false)
    :argument("args"):args("*")
  building = { words = { [groups.root] = {}, [groups.token] = { "token" }, [groups.app] = { "app" } }, leaves = {} }
  local leaves = building.leaves
  local reached
  for _, name in ipairs(COMMAND_MODULES) do
    local ok, mod = pcall(require, name)
    if ok then
      local first = #leaves + 1
      mod.register(groups, M)
      for i = first, #leaves do
        if argv and starts_with(argv, leaves[i].words) then reached = leaves[i] end
      end
    elseif not tostring(mod):find("module '" .. name .. "' not found", 1, true) then
      error(mod, 0)
    end
    -- The rest of the command modules add commands this command line cannot reach.
    if reached then break end
  end
  building = nil
  -- Commands that send nothing and load no library module: main runs them itself.
  local help = parser:command("help", "Show the help of a command: aap help token create.")
  help:argument("words", "The command."):args("*")
  help._is_help_command = true   -- its completion offers the command names
  parser:command("completion", "Print a completion script: aap completion bash > /etc/bash_completion.d/aap")
    :argument("shell", "bash, zsh or fish."):choices({ "bash", "zsh", "fish" })
  parser:command("man", "Print the manual page (roff): aap man | man -l -")
  for _, leaf in ipairs(leaves) do
    if not reached or leaf == reached then
      leaf.build(leaf.cmd)
      if not has_option(leaf.cmd, "--quiet") then M.quiet_option(leaf.cmd) end
    end
  end
  return parser
end

-- The flags every command that talks to the gateway takes, accepted before the command too
-- (`aap --url X token list`): true when the flag takes a value.
local GLOBAL_FLAGS = {
  ["--url"] = true, ["--username"] = true, ["--ca-file"] = true, ["--timeout"] = true, ["--flavor"] = true,
  ["--password-stdin"] = false, ["--token-stdin"] = false, ["-k"] = false, ["--insecure"] = false,
  ["--allow-plain-http"] = false, ["--allow-insecure-basic"] = false, ["-q"] = false, ["--quiet"] = false,
  ["--log-format"] = true,
}
local GROUPS = { token = true, app = true }
-- Root commands that take no connection flags.
local LOCAL_COMMANDS = { sim = true, help = true, completion = true, man = true }

--- The command line with the connection flags given before the command's words moved after
-- them (to the end, before a `--`), where the command's own parser takes them:
-- `aap --url X -k token list --kind personal` is parsed as `token list --kind personal --url X -k`.
-- Anything else before the command (--help, --version, an unknown flag) stops the move,
-- and is left for the parser to answer.
-- @tparam table argv
-- @treturn table argv, moved (a new table) or as it was
function M.hoist(argv)
  local words, moved, i = {}, {}, 1
  while argv[i] ~= nil do
    local a = argv[i]
    local takes = GLOBAL_FLAGS[a:match("^(%-%-[^=]+)=") or a]
    if takes ~= nil then
      moved[#moved + 1] = a
      if takes and not a:find("=", 1, true) and argv[i + 1] ~= nil then
        moved[#moved + 1] = argv[i + 1]
        i = i + 1
      end
    elseif a:sub(1, 1) ~= "-" and (#words == 0 or (#words == 1 and GROUPS[words[1]])) then
      words[#words + 1] = a
    else
      break
    end
    i = i + 1
  end
  if #moved == 0 or #words == 0 or LOCAL_COMMANDS[words[1]] then return argv end
  local out = table.move(words, 1, #words, 1, {})
  local stop = #argv + 1
  for j = i, #argv do
    if argv[j] == "--" then stop = j break end
  end
  table.move(argv, i, stop - 1, #out + 1, out)
  table.move(moved, 1, #moved, #out + 1, out)
  table.move(argv, stop, #argv, #out + 1, out)
  return out
end

-- A password or token flag anywhere before `--`: refused before parsing, never echoed.
local function secret_flag(argv)
  for _, a in ipairs(argv) do
    if a == "--" then return false end
    local name = a:match("^(%-%-[^=]+)=") or a
    if name == "--password" or name == "--token" then return true end
  end
  return false
end

-- The command the words name, from the root (nil when one is unknown).
local function find_command(parser, words)
  local cmd = parser
  for _, w in ipairs(words) do
    local found
    for _, c in ipairs(cmd._commands) do
      for _, alias in ipairs(c._aliases) do
        if alias == w and not c._hidden then found = c end
      end
    end
    if not found then return nil, w end
    cmd = found
  end
  return cmd
end

-- The words of the command a parse reached: {"token", "create"}, {"app"}, {}.
local function reached_words(args)
  local words, key = {}, "command"
  while args[key] do
    words[#words + 1] = args[key]
    key = args[key] .. "_command"
  end
  return words
end

-- help, completion and man: they read the parser only.
local function run_local(parser, args)
  if args.command == "help" then
    local cmd, unknown = find_command(parser, args.words)
    if not cmd then
      io.stderr:write("aap: unknown command '", unknown, "' (aap help lists the commands)\n")
      return M.EXIT.usage
    end
    io.stdout:write(cmd:get_help(), "\n")
  elseif args.command == "completion" then
    io.stdout:write(require("aap.clidoc").completion(parser, args.shell))
  else
    io.stdout:write(require("aap.clidoc").man(parser, M.VERSION, EPILOG))
  end
  return M.EXIT.ok
end

--- Runs the command line; returns the exit code.
-- @tparam table argv the arguments (arg)
-- @treturn integer exit code
function M.main(argv)
  local args_in = {}
  for i = 1, #(argv or {}) do args_in[i] = argv[i] end
  if args_in[1] == "sim" then
    table.remove(args_in, 1)
    -- The emulator is its own rock (aap-sim, with LuaSocket, LuaSec and luaossl).
    local ok, sim = pcall(require, "aap.sim")
    if not ok then
      local missing = tostring(sim):match("module '([^']+)' not found")
      if not missing then error(sim, 0) end
      io.stderr:write("aap: aap sim needs the module ", missing, ", which is not installed: the emulator is the ",
        "aap-sim rock (luarocks install aap-sim; it brings luasocket, luasec and luaossl)\n")
      return M.EXIT.usage
    end
    return sim.main(args_in)
  end
  if #args_in == 1 and args_in[1] == "--version" then
    -- What the parser's --version does, without building the parser (argparse and every
    -- command module). Any other command line with --version still goes through it.
    io.stdout:write("aap ", M.VERSION, "\n")
    return M.EXIT.ok
  end
  -- The log format before anything is said, so that a usage error is logged in it too.
  log_json = os.getenv("AAP_LOG_FORMAT") == "json"
  for i, a in ipairs(args_in) do
    if a == "--" then break end
    local v = a:match("^%-%-log%-format=(.*)$") or (a == "--log-format" and args_in[i + 1])
    if v == "json" or v == "text" then log_json = v == "json" end
  end
  if secret_flag(args_in) then
    M.log("error", "secrets are not accepted on the command line (they would show in `ps`); "
      .. "use AAP_PASSWORD, AAP_PASSWORD_FILE, --password-stdin, AAP_TOKEN or --token-stdin",
      { code = "usage", exit = M.EXIT.usage })
    return M.EXIT.usage
  end
  args_in = M.hoist(args_in)
  -- `aap help token create` needs the parser `aap token create` needs.
  local parser = M.parser(args_in[1] == "help" and table.move(args_in, 2, #args_in, 1, {}) or args_in)
  -- A parse error shows the usage of the command it happened in (argparse's own parse does;
  -- its pparse, which returns instead of exiting, keeps only the message).
  local failed
  local ok, args = pcall(parser._parse, parser, args_in, function(p, msg)
    failed = p
    error(msg, 0)
  end)
  if not ok then
    if not failed then error(args, 0) end   -- not a parse error: a bug
    if log_json then
      M.log("error", tostring(args), { code = "usage", exit = M.EXIT.usage })
    else
      io.stderr:write(failed:get_usage(), "\n\naap: ", tostring(args), "\n")
    end
    return M.EXIT.usage
  end
  if LOCAL_COMMANDS[args.command] then return run_local(parser, args) end
  if not args._run then
    -- A group without its sub-command (`aap token`): that group's help.
    io.stderr:write((find_command(parser, reached_words(args)) or parser):get_help(), "\n")
    return M.EXIT.usage
  end
  if args.password ~= nil or args.token ~= nil then
    M.log("error", "secrets are not accepted on the command line (they would show in `ps`); "
      .. "use AAP_PASSWORD, AAP_PASSWORD_FILE, --password-stdin, AAP_TOKEN or --token-stdin",
      { code = "usage", exit = M.EXIT.usage })
    return M.EXIT.usage
  end
  -- Passwords and tokens are in this process's memory: a crash must not write them to a core
  -- file. Before the handler, which is what reads them (help and usage errors read none, and
  -- need not load the C core, libcurl and OpenSSL).
  require("aap").os.no_core_dumps()
  log_command = table.concat(reached_words(args), " ")
  local ctx = setmetatable({ args = args, sessions = {} }, Ctx)
  local rok, res = xpcall(args._run, function(e)
    if getmetatable(e) == Fail then return e end
    -- Ctrl-C: lua5.4's own SIGINT handler raises "interrupted!" in whatever Lua code runs.
    if type(e) == "string" and e:match("^[^\n]*interrupted!$") then
      return setmetatable({ err = cli_error("interrupted", "interrupted") }, Fail)
    end
    return { internal = tostring(e), trace = debug.traceback() }
  end, args, ctx)
  for _, s in ipairs(ctx.sessions) do s:close() end
  if rok then return res or M.EXIT.ok end
  if getmetatable(res) == Fail then
    local msg = M.message(res.err)
    if type(res.err) == "table" and res.err.code == "auth" and ctx.credentials then
      msg = msg .. " [credentials: " .. ctx.credentials .. "]"
    end
    local code = M.exit_code(res.err)
    M.log("error", msg, { code = type(res.err) == "table" and res.err.code or nil, exit = code })
    return code
  end
  M.log("error", "internal error: " .. res.internal, { code = "internal", exit = M.EXIT.usage })
  if os.getenv("AAP_DEBUG") then io.stderr:write(res.trace, "\n") end
  return M.EXIT.usage
end

return M
