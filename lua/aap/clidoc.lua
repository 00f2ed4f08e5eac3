--- Shell completions and the manual page of the `aap` command, generated from its parser,
-- so they list exactly the commands and flags the command accepts.
-- Completions come from lua-argparse's own generators (bash, zsh, fish); the manual page
-- (roff, man(7) macros) is written here by walking the parser. Both read argparse's fields
-- (`_commands`, `_options`, ...), as spec/startup_spec.lua does: lua-argparse 0.7 (Debian's)
-- has no public accessor for them.
-- @module aap.clidoc

local M = {}

-- Removes hidden options and commands (the refused --password/--token, former flag names),
-- in place: the parser is built for this one use.
local function strip(p)
  for i = #p._options, 1, -1 do
    if p._options[i]._hidden then table.remove(p._options, i) end
  end
  for i = #p._commands, 1, -1 do
    if p._commands[i]._hidden then table.remove(p._commands, i) else strip(p._commands[i]) end
  end
end

--- A completion script.
-- @tparam table parser the full parser (aap.cli.parser() with no command line)
-- @tparam string shell "bash", "zsh" or "fish"
-- @treturn string the script
function M.completion(parser, shell)
  strip(parser)
  return parser["get_" .. shell .. "_complete"](parser)
end

-- Text as roff: backslashes and hyphens escaped, and a line that would start with a control
-- character (. or ') made plain text.
local function esc(s)
  s = tostring(s):gsub("\\", "\\e"):gsub("%-", "\\-")
  return (s:gsub("\n([.'])", "\n\\&%1"):gsub("^([.'])", "\\&%1"))
end

-- The leaves of a parser, depth first, in the order `aap --help` lists them.
local function leaves(p, out)
  out = out or {}
  for _, c in ipairs(p._commands) do
    if not c._hidden then
      if #c._commands > 0 then leaves(c, out) else out[#out + 1] = c end
    end
  end
  return out
end

-- One option or argument as a tagged paragraph: its label, then its description.
local function item(out, label, description)
  out[#out + 1] = ".TP"
  out[#out + 1] = "\\fB" .. esc(label) .. "\\fR"
  out[#out + 1] = esc(description ~= "" and description or " ")
end

local function command_section(out, cmd)
  out[#out + 1] = ".SS \"" .. esc(cmd:_get_fullname()) .. "\""
  out[#out + 1] = esc(cmd._description or cmd._summary or "")
  out[#out + 1] = ".PP"
  out[#out + 1] = ".nf"
  out[#out + 1] = esc((cmd:get_usage():gsub("^Usage: ", "")))
  out[#out + 1] = ".fi"
  for _, a in ipairs(cmd._arguments) do
    item(out, table.concat(a:_get_label_lines(), " "), a:_get_description())
  end
  for _, o in ipairs(cmd._options) do
    if not o._hidden then
      local label = {}
      for _, l in ipairs(o:_get_label_lines()) do label[#label + 1] = (l:gsub("^%s+", "")) end
      item(out, table.concat(label, " "), o:_get_description())
    end
  end
end

--- The manual page, aap(1), in roff.
-- @tparam table parser the full parser
-- @tparam string version the command's version
-- @tparam string epilog the help's epilog: its "Exit codes:" part becomes EXIT STATUS, the
--   rest ENVIRONMENT
-- @treturn string the page
function M.man(parser, version, epilog)
  local env, exits = epilog:match("^(.-)\n\n(Exit codes:.*)$")
  env, exits = env or epilog, exits or ""
  local out = {
    ('.TH AAP 1 "" "aap %s" "User Commands"'):format(esc(version)),
    ".SH NAME",
    "aap \\- " .. esc(parser._description),
    ".SH SYNOPSIS",
    ".B aap",
    "\\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
    ".br",
    ".B aap help",
    "[\\fICOMMAND\\fR ...]",
    ".SH DESCRIPTION",
    esc("aap creates, looks up, refreshes, revokes and rotates the tokens of the Ansible Automation "
      .. "Platform gateway API, and exports them to env files, shell, JSON and Kubernetes Secrets."),
    ".PP",
    esc("The connection flags (--url, --username, --password-stdin, --token-stdin, --ca-file, -k, "
      .. "--allow-plain-http, --timeout, --flavor) and -q may come before or after the command. "
      .. "Passwords and tokens are never accepted on the command line; with none set and a terminal "
      .. "on standard input, aap asks for the password without echoing it."),
    ".SH COMMANDS",
  }
  for _, cmd in ipairs(leaves(parser)) do command_section(out, cmd) end
  out[#out + 1] = ".SH ENVIRONMENT"
  out[#out + 1] = ".nf"
  out[#out + 1] = esc(env)
  out[#out + 1] = ".fi"
  out[#out + 1] = ".SH EXIT STATUS"
  out[#out + 1] = ".nf"
  out[#out + 1] = esc((exits:gsub("^Exit codes:\n", "")))
  out[#out + 1] = ".fi"
  out[#out + 1] = ".SH SEE ALSO"
  out[#out + 1] = esc("aap help COMMAND; the README and docs/design.md of the aap sources.")
  return table.concat(out, "\n") .. "\n"
end

return M
