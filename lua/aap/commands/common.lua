--- What the command modules (`aap.commands.*`) share: text cells and columns, times, the
-- report flag (`--output`), the token output flags (`--format`, `--key`, ...), id arguments,
-- organizations.
--
-- The command modules require this module and the library, never `aap.cli` nor each other:
-- `aap.cli` loads them, and hands them what it owns (the parser's helpers to `register`,
-- `ctx` to the handlers: `ctx:message`, `ctx:exit_code`, `ctx:log`). This module requires
-- nothing when it loads (building the parser, for --help, loads no library module nor the
-- C core); its functions require the library where they use it.
-- @module aap.commands.common
local M = {}

--- A cell as text a terminal shows as it is: control characters (an ANSI escape, a newline
-- in a description) become \xNN.
-- @param v any value
-- @treturn string
function M.cell(v)
  return (tostring(v):gsub("[%c\127]", function(c) return ("\\x%02x"):format(c:byte()) end))
end
local cell = M.cell

--- Rows as aligned columns under their headers (each cell through `cell`; trailing blanks
-- dropped).
-- @tparam table rows list of lists of values (changed in place: each value becomes its cell)
-- @tparam {string,...} headers
-- @treturn string the lines, without a final newline
function M.columns(rows, headers)
  local widths = {}
  for _, r in ipairs(rows) do
    for i, v in ipairs(r) do r[i] = cell(v) end
  end
  for i, h in ipairs(headers) do widths[i] = #h end
  for _, r in ipairs(rows) do
    for i, v in ipairs(r) do widths[i] = math.max(widths[i], #tostring(v)) end
  end
  local out = {}
  local function line(r)
    local cells = {}
    for i, v in ipairs(r) do cells[i] = ("%-" .. widths[i] .. "s"):format(tostring(v)) end
    out[#out + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  line(headers)
  for _, r in ipairs(rows) do line(r) end
  return table.concat(out, "\n")
end

--- A time for a report field: ISO 8601 (UTC), or nil (JSON null) for nil.
-- @tparam ?number t epoch seconds
-- @treturn ?string
function M.iso_or_nil(t)
  return t and require("aap").format_time(t) or nil
end

--- A time for a line or a table: ISO 8601 (UTC), or "never" for nil.
-- @tparam ?number t epoch seconds
-- @treturn string
function M.iso(t)
  return M.iso_or_nil(t) or "never"
end

--- Prints token values on stdout in a `--format` (env, shell, json, k8s-secret), with
-- `--secret-name` and `--namespace` from the command line.
-- @param ctx the command's context
-- @tparam string fmt
-- @tparam table values ordered list of {key, value}
-- @tparam table tok what the json and k8s-secret formats say of the token (id, kind, scope, expires)
function M.print_format(ctx, fmt, values, tok)
  local export = require("aap.export")
  local text, err = export.format(fmt, values, {
    id = tok.id, kind = tok.kind, scope = tok.scope, expires = tok.expires,
    name = ctx.args.secret_name, namespace = ctx.args.namespace,
  })
  ctx:check(text, err)
  io.stdout:write(text)
  if text:sub(-1) ~= "\n" then io.stdout:write("\n") end
end

local function validate_key(ctx, key)
  if not require("aap.env").valid_key(key) then ctx:usage("%q is not a valid env key", key) end
end

--- Checks every output flag (`--key`, `--refresh-key`, and `--secret-name`, `--namespace` for
-- `--format k8s-secret`) before anything is sent, so a typo never costs a token.
function M.check_output_flags(ctx, args)
  for _, k in ipairs({ args.key or "AAP_PAT", args.refresh_key or "REFRESH_TOKEN" }) do validate_key(ctx, k) end
  if args.format == "k8s-secret" then
    local export = require("aap.export")
    local ok, why = export.check_name(args.secret_name)
    if not ok then ctx:usage("%s", why) end
    if args.namespace then
      ok, why = export.check_namespace(args.namespace)
      if not ok then ctx:usage("%s", why) end
    end
  end
end

--- Adds `--output text|json` (a report with every field) and `--format`, its older spelling
-- (hidden), to a command that shows what it finds.
-- @treturn table the command
function M.output_option(cmd)
  cmd:option("--output", "text, or json: a report with every field (null when unknown), [] when empty.")
    :choices({ "text", "json" })
  cmd:option("--format"):choices({ "table", "text", "json" }):hidden(true) -- the older spelling of --output
  return cmd
end

--- Whether the command line asks for the JSON report (`--output json`, or `--format json`).
function M.json_output(args)
  return args.output == "json" or args.format == "json"
end

--- An argparse converter for an id. What it refuses is never echoed: a token value given
-- by mistake where an id belongs must not land in a terminal's scrollback or a CI log.
-- @tparam string what "a token id", "a user id", ...
-- @tparam ?string hint appended to the message
function M.id_arg(what, hint)
  return function(v)
    if v:match("^%d+$") and #v <= 18 then return v end
    return nil, ("%s is a whole number%s"):format(what, hint or "")
  end
end

--- The name of an application's organization, or nil: `aap.apps.organization_name`, which
-- this module loads when it is called.
function M.organization_name(a)
  return require("aap.apps").organization_name(a)
end

--- An organization's id from --organization (a name or an id); nil when not given.
function M.org_id(ctx, s, org)
  if org == nil then return nil end
  if org:match("^%d+$") then return tonumber(org) end
  return ctx:check(require("aap.workflow").organization_id(s, org))
end

return M
