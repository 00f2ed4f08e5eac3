--- Read, edit and atomically rewrite `.env` files without disturbing them.
--
-- A document keeps every line exactly as it was (comments, blank lines, syntax it does not
-- understand, `export KEY=...`, CRLF line endings, a missing final newline); only lines whose
-- key is set or unset change, so unchanged lines stay byte-for-byte identical.
--
-- **Reading values.** The syntax that bash (`set -a; . .env`), python-dotenv, docker compose
-- and kubectl agree on (spec/env_readers_spec.lua compares with bash, python-dotenv, kubectl
-- and systemd's own parser where they are installed; docker compose's rules are taken from its
-- documentation): `KEY=value`, optional `export ` prefix, leading indentation, unquoted values
-- (an inline comment starts at whitespace followed by `#`, trailing blanks are dropped),
-- `'single'` (literal, may span lines) and `"double"` quotes (may span lines; `\"`, `\\`,
-- `\$`, `` \` `` stand for the character, `\n` for a newline as dotenv reads it, a backslash
-- before a line break joins the lines as in bash, any other backslash is kept).
-- Variables are not expanded: `get` returns the text as written. Where the readers disagree
-- (`KEY = value` with blanks around `=`, which dotenv and compose accept and bash does not),
-- the dotenv reading is used. A `KEY=` line whose value cannot be parsed (an unterminated quote,
-- text glued after a closing quote) still names its key: `get` returns nil for it, `set`
-- replaces it, and `doc:problems()` lists it. A key appended to a document with an
-- unterminated quote goes just before that line, where every reader still sees it.
--
-- **Lines it writes** (`set`) are exactly `KEY=value`, which every reader reads alike: an
-- inline comment on the line (`KEY=old   # note`: kubectl and systemd's `EnvironmentFile=`
-- read it as part of the value) is moved to a line of its own just above; indentation and
-- blanks around `=` are dropped. An `export KEY=` line is refused, not rewritten
-- (`check_owned`, and `set` raises): kubectl rejects the whole file and systemd skips the line,
-- but a user who runs `. .env` may rely on the export, so dropping it silently would break
-- that user instead.
--
-- **Writing values** (`quote`): a `portable` value, made only of `A-Z a-z 0-9 _ . / : @ % + , = ~ -`
-- (no `~` first or after a `:`, which bash expands), is written bare, which every reader,
-- kubectl and systemd included, takes literally. aap's own writers (aap.workflow, aap.rotate)
-- write nothing else. For other values, `quote` quotes:
--
-- 1. `'single quotes'` when the value has no `'` and no `\\` (python-dotenv decodes `\\` and
--    `\'` inside single quotes; bash does not);
-- 2. otherwise `"double quotes"` with `\` and `"` escaped, when the value has no `$` and no
--    `` ` `` (bash expands them inside double quotes; dotenv keeps `\$` as two characters);
-- 3. otherwise there is no text that bash and python-dotenv both read as the value, and
--    `quote` returns nil and a reason (`set` and `update` raise). The same holds for a value
--    containing `${NAME}` or `${NAME:-x}` (python-dotenv expands it inside any quotes) and for
--    one ending with a backslash (bash continues a bare line; dotenv takes `\'` and `\"` for an
--    escaped closing quote).
--
-- kubectl (`create secret generic --from-env-file`) never removes quotes: a quoted value
-- reaches the Secret with its quotes. `portable(value)` (also `kubectl_safe`) tells whether a
-- value is written bare. NUL, CR and LF are never accepted in a value: no reader round-trips them.
--
-- **Errors.** Wrong arguments raise at the caller's level. File failures return `nil, err`
-- where `err` is an `aap.Error` (`aap.errors`) with `code`, `message` and `path`, printed
-- `code: message`; messages name the path, never a value. Codes: `io` (cannot read or write
-- the file), `format` (the file is not text: it holds a NUL byte), `unsafe` (the file is not
-- one aap may trust: see `aap.trust`).
-- @module aap.env
local M = {}

local type, error, pairs, ipairs, setmetatable, tostring = type, error, pairs, ipairs, setmetatable, tostring
local concat, sort = table.concat, table.sort
local find, sub, match, gsub = string.find, string.sub, string.match, string.gsub

local trust = require("aap.trust")

local KEY_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$"
local BOM = "\239\187\191"
local DEFAULT_MODE = trust.MODE_PRIVATE

--- The mode of every file aap writes a secret to: 0600 (`aap.trust.MODE_PRIVATE`).
M.MODE_PRIVATE = DEFAULT_MODE

-- Argument checks (shared with aap.export) ------------------------------------------------------

-- Raise "bad <what> (<tname> expected, got <type>)" at the caller of the function that is
-- `level` frames above this one's caller (as for `error`).
local function expect(v, tname, what, level)
  if type(v) ~= tname then
    error(("bad %s (%s expected, got %s)"):format(what, tname, type(v)), level + 1)
  end
  return v
end
M._expect = expect

-- An options table (nil is an empty one) with only the `allowed` keys.
local function options(opts, allowed, level)
  if opts == nil then return {} end
  expect(opts, "table", "opts", level + 1)
  for k in pairs(opts) do
    if not allowed[k] then error(("bad opts: unknown option %q"):format(tostring(k)), level + 1) end
  end
  return opts
end
M._options = options

-- Errors ---------------------------------------------------------------------------------------

-- aap.errors is loaded when a file fails, not before (spec/startup_spec.lua).
local function new_error(code, message, path)
  return require("aap.errors").new(code, message, { path = path })
end

-- Values ---------------------------------------------------------------------------------------

--- Whether a string is a valid key: `^[A-Za-z_][A-Za-z0-9_]*$`.
-- @tparam string key
-- @treturn boolean
function M.valid_key(key)
  return type(key) == "string" and find(key, KEY_PATTERN) ~= nil
end

local function check_key(key, level)
  expect(key, "string", "key", level + 1)
  if not find(key, KEY_PATTERN) then
    -- The key is not a secret: it helps to see which one was refused.
    error(("bad key %q (must match [A-Za-z_][A-Za-z0-9_]*)"):format(key), level + 1)
  end
end

-- Whether every reader takes the value literally when it is written bare (see `portable`).
local function portable(value)
  return not find(value, "[^%w_./:@%%+,=~-]") and sub(value, 1, 1) ~= "~" and not find(value, ":~", 1, true)
end

--- Whether a value is written bare, and so read as written by every reader: bash, python-dotenv,
-- docker compose, kubectl `--from-env-file` and systemd's `EnvironmentFile=`. That is a value
-- made only of `A-Z a-z 0-9 _ . / : @ % + , = ~ -`, with no `~` first or after a `:` (bash
-- expands those to a home directory in an assignment). The values aap itself writes (tokens,
-- refresh tokens, client ids and secrets) must be portable: anything else is refused, never
-- quoted, since kubectl would keep the quotes.
-- @tparam string value
-- @treturn boolean
function M.portable(value)
  expect(value, "string", "value", 2)
  return portable(value)
end

--- Whether a value must be quoted in an env file: whether it is not `portable`.
-- @tparam string value
-- @treturn boolean
function M.needs_quotes(value)
  expect(value, "string", "value", 2)
  return not portable(value)
end

--- Whether kubectl `--from-env-file` reads the same value as bash and dotenv (the same as
-- `portable`): kubectl takes everything after `=` literally, so only a value written bare is safe.
-- @tparam string value
-- @treturn boolean
function M.kubectl_safe(value)
  expect(value, "string", "value", 2)
  return portable(value)
end

-- Whether python-dotenv (interpolation on, its default) would expand part of the value: it
-- replaces ${NAME} and ${NAME:-default} whatever the quoting, and offers no escape.
local function dotenv_expands(value)
  local i = find(value, "${", 1, true)
  while i do
    if find(value, "^%${[^}:]*}", i) or find(value, "^%${[^}:]*:%-[^}]*}", i) then return true end
    i = find(value, "${", i + 1, true)
  end
  return false
end

--- The text to put after `KEY=` so that bash, python-dotenv and docker compose read `value`.
-- @tparam string value
-- @treturn[1] string the value, bare or quoted
-- @treturn[2] nil
-- @treturn[2] string why it cannot be written (never contains the value)
-- @usage env.quote("abc") --> "abc"; env.quote("a b") --> "'a b'"
function M.quote(value)
  expect(value, "string", "value", 2)
  if find(value, "[%z\r\n]") then
    return nil, "value contains a NUL, CR or LF character"
  end
  if portable(value) then return value end
  if sub(value, -1) == "\\" then
    -- bash joins the next line to a bare one; dotenv reads \' or \" as an escaped closing quote.
    return nil, "value ends with a backslash, which no quoting carries to both bash and python-dotenv"
  end
  if dotenv_expands(value) then
    return nil, "value contains ${...}, which python-dotenv expands even inside quotes"
  end
  if not find(value, "'", 1, true) and not find(value, "\\\\", 1, true) then
    return "'" .. value .. "'"
  end
  if not find(value, "[$`]") then
    return '"' .. gsub(value, '[\\"]', "\\%0") .. '"'
  end
  return nil, "value mixes ' or \\ with $ or `: no quoting reads the same in bash and python-dotenv"
end

local function check_value(value, level)
  expect(value, "string", "value", level + 1)
  local q, why = M.quote(value)
  if not q then error("bad value: " .. why, level + 1) end
  return q
end

-- Parsing --------------------------------------------------------------------------------------

-- Split text into physical lines {text, eol}; eol is "\r\n", "\n" or "" (last line only).
local function split_lines(text)
  local lines, pos, n = {}, 1, #text
  while pos <= n do
    local nl = find(text, "\n", pos, true)
    local line, eol
    if nl then
      line, eol, pos = sub(text, pos, nl - 1), "\n", nl + 1
      if sub(line, -1) == "\r" then line, eol = sub(line, 1, -2), "\r\n" end
    else
      line, eol, pos = sub(text, pos), "", n + 1
    end
    lines[#lines + 1] = { text = line, eol = eol }
  end
  return lines
end

-- What may follow a closing quote: blanks, or blanks then a comment.
local function valid_trail(s)
  return find(s, "^[ \t]*$") ~= nil or find(s, "^[ \t]+#") ~= nil
end

-- Parse a single-quoted value starting at lines[i], column c (just after the quote).
-- Returns value, trail, last line index, or nil, reason.
local function parse_single(lines, i, c)
  local parts = {}
  local text = lines[i].text
  while true do
    local close = find(text, "'", c, true)
    if close then
      parts[#parts + 1] = sub(text, c, close - 1)
      return concat(parts, "\n"), sub(text, close + 1), i
    end
    parts[#parts + 1] = sub(text, c)
    i, c = i + 1, 1
    if not lines[i] then return nil, "unterminated single quote" end
    text = lines[i].text
  end
end

local DQ_ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["$"] = "$", ["`"] = "`", n = "\n" }

local function parse_double(lines, i, c)
  local out = {}
  local text = lines[i].text
  while true do
    local s, e, ch = find(text, '([\\"])', c)
    if not s then
      out[#out + 1] = sub(text, c)
      i, c = i + 1, 1
      if not lines[i] then return nil, "unterminated double quote" end
      out[#out + 1] = "\n"
      text = lines[i].text
    else
      out[#out + 1] = sub(text, c, s - 1)
      if ch == '"' then
        return concat(out), sub(text, e + 1), i
      end
      if e == #text then
        -- A backslash at the end of a line joins it with the next one (bash).
        i, c = i + 1, 1
        if not lines[i] then return nil, "unterminated double quote" end
        text = lines[i].text
      else
        local nxt = sub(text, e + 1, e + 1)
        out[#out + 1] = DQ_ESCAPES[nxt] or ("\\" .. nxt)
        c = e + 2
      end
    end
  end
end

-- Parse the entry starting at lines[i]. Returns an entry table and the index of its last
-- line, or nil when the line does not assign a key.
local function parse_entry(lines, i)
  local text = lines[i].text
  local lead, key, rest = match(text, "^([ \t]*export[ \t]+)([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(.*)$")
  local exported = lead ~= nil
  if not lead then
    lead, key, rest = match(text, "^([ \t]*)([A-Za-z_][A-Za-z0-9_]*)[ \t]*=(.*)$")
  end
  if not lead then return nil end
  local entry = { key = key, lead = lead, first = i, exported = exported or nil }
  local blanks = match(rest, "^[ \t]*")
  local body = sub(rest, #blanks + 1)
  local q = sub(body, 1, 1)
  local value, trail, last
  if q == "'" or q == '"' then
    local col = #text - #body + 2
    if q == "'" then
      value, trail, last = parse_single(lines, i, col)
    else
      value, trail, last = parse_double(lines, i, col)
    end
    if not value then
      entry.problem, entry.unterminated, entry.last = trail, true, i
      return entry, i
    end
    if not valid_trail(trail) then
      entry.problem, entry.last = "unexpected text after the closing quote", last
      return entry, last
    end
  elseif blanks ~= "" and sub(body, 1, 1) == "#" then
    -- `KEY= # note`: bash reads an empty value and a comment.
    value, trail, last = "", rest, i
  else
    local cut = find(body, "[ \t]#")
    value = cut and sub(body, 1, cut - 1) or body
    local stripped = match(value, "^(.-)[ \t]*$")
    trail = sub(body, #stripped + 1)
    value, last = stripped, i
  end
  entry.value, entry.trail, entry.last = value, trail, last
  return entry, last
end

local Doc = {}
Doc.__index = Doc
Doc.__name = "aap.env.Document"

--- Parse the text of an env file. Never fails: lines it does not understand are kept.
-- @tparam string text
-- @treturn Document
-- @usage local doc = env.parse(text); print(doc:get("AAP_TOKEN"))
function M.parse(text)
  expect(text, "string", "text", 2)
  local items = {}
  local prefix = ""
  if sub(text, 1, 3) == BOM then prefix, text = BOM, sub(text, 4) end
  local lines = split_lines(text)
  local nl = "\n"
  for _, l in ipairs(lines) do
    if l.eol ~= "" then nl = l.eol; break end
  end
  local i = 1
  while i <= #lines do
    local entry, last = parse_entry(lines, i)
    if not entry then last = i end
    local raw = {}
    for j = i, last do raw[#raw + 1] = lines[j].text .. lines[j].eol end
    local item = entry or {}
    item.raw, item.eol, item.line = concat(raw), lines[last].eol, i
    items[#items + 1] = item
    i = last + 1
  end
  return setmetatable({ items = items, nl = nl, prefix = prefix }, Doc)
end

--- The value of a key: the last assignment wins, as in bash and dotenv.
-- @tparam string key
-- @treturn[1] string the value (unexpanded)
-- @treturn[2] nil when the key is absent or its last assignment cannot be parsed
function Doc:get(key)
  check_key(key, 2)
  for i = #self.items, 1, -1 do
    local it = self.items[i]
    if it.key == key then return it.value end
  end
  return nil
end

--- The keys, in the order of their first appearance.
-- @treturn {string,...}
function Doc:keys()
  local out, seen = {}, {}
  for _, it in ipairs(self.items) do
    if it.key and not seen[it.key] then
      seen[it.key] = true
      out[#out + 1] = it.key
    end
  end
  return out
end

--- The lines that assign a key but could not be parsed.
-- @treturn {{line=integer,key=string,message=string},...}
function Doc:problems()
  local out = {}
  for _, it in ipairs(self.items) do
    if it.problem then out[#out + 1] = { line = it.line, key = it.key, message = it.problem } end
  end
  return out
end

local function remove_from(items, key, start)
  local removed = false
  for i = #items, start, -1 do
    if items[i].key == key then
      table.remove(items, i)
      removed = true
    end
  end
  return removed
end

-- Why a line that assigns `key` cannot be rewritten so that every reader agrees, or nil.
local function owned_problem(it, path)
  if it.exported then
    return ("%s line %d: `export %s=...`: kubectl --from-env-file rejects a file with an export line and "
      .. "systemd's EnvironmentFile= skips it, and aap writes %s there; delete `export ` from the line "
      .. "(`set -a; . %s; set +a` exports every key of the file) and run again")
      :format(path or "the env file", it.line, it.key, it.key, path or "FILE")
  end
  return nil
end

--- Checks that the lines assigning `keys` (the keys a command is about to write) can be
-- rewritten so that every reader agrees: none of them carries an `export ` prefix, which
-- kubectl refuses (the whole file) and systemd skips. aap refuses such a line rather than
-- drop the prefix, since a `. .env` user may rely on it: a command checks this before it does
-- anything on the gateway.
-- @tparam {string,...} keys
-- @tparam[opt] string path the file's path, for the message
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] aap.Error `code` "format", with `message` and `path` naming the line, never a value
function Doc:check_owned(keys, path)
  expect(keys, "table", "keys", 2)
  local want = {}
  for _, k in ipairs(keys) do check_key(k, 2) want[k] = true end
  for _, it in ipairs(self.items) do
    local why = it.key and want[it.key] and owned_problem(it, path)
    if why then return nil, new_error("format", why, path) end
  end
  return true
end

--- Set a key. Its first assignment is replaced in place by exactly `KEY=value`, a form every
-- reader agrees on: indentation and blanks around `=` are dropped, and an inline comment
-- (`KEY=old   # note`, which kubectl and systemd would read as part of the value) is moved to
-- a line of its own just above. Later assignments of the key are removed; a new key is
-- appended at the end. Raises on a bad key, a value that cannot be written (see `quote`), or
-- an `export ` line of the key (see `check_owned`).
-- @tparam string key
-- @tparam string value
-- @treturn Document self
function Doc:set(key, value)
  check_key(key, 2)
  local quoted = check_value(value, 2)
  local items = self.items
  for i, it in ipairs(items) do
    if it.key == key then
      local why = owned_problem(it)
      if why then error(why, 2) end
      local comment = not it.problem and match(it.trail, "^[ \t]*(#.*)$")
      local eol = it.eol ~= "" and it.eol or self.nl
      items[i] = { key = key, value = value, lead = "", trail = "", eol = it.eol, line = it.line,
                   raw = key .. "=" .. quoted .. it.eol }
      if comment then
        table.insert(items, i, { raw = comment .. eol, eol = eol, line = it.line })
        i = i + 1
      end
      remove_from(items, key, i + 1)
      return self
    end
  end
  local item = { key = key, value = value, lead = "", trail = "", eol = self.nl,
                 raw = key .. "=" .. quoted .. self.nl }
  -- After an unterminated quote, bash would read the new line as part of that value: put the
  -- new line before it instead.
  for i, it in ipairs(items) do
    if it.unterminated then
      table.insert(items, i, item)
      return self
    end
  end
  local last = items[#items]
  if last and last.eol == "" then
    last.raw, last.eol = last.raw .. self.nl, self.nl
  end
  items[#items + 1] = item
  return self
end

--- Remove every assignment of a key.
-- @tparam string key
-- @treturn boolean whether the key was present
function Doc:unset(key)
  check_key(key, 2)
  return remove_from(self.items, key, 1)
end

--- The text of the document.
-- @treturn string
function Doc:serialize()
  local out = { self.prefix }
  for i, it in ipairs(self.items) do out[i + 1] = it.raw end
  return concat(out)
end

-- Files ----------------------------------------------------------------------------------------

--- Read and parse an env file. A missing file is an empty document. The file must pass
-- `check_file` (the current user's own regular file, not writable by others).
-- @tparam string path
-- @treturn[1] Document (`doc.exists` is false for a missing file)
-- @treturn[2] nil
-- @treturn[2] aap.Error `code` "io" | "format" | "unsafe", with `message` and `path`
function M.read(path)
  expect(path, "string", "path", 2)
  local text, err = trust.read_trusted(path, "env file")
  if text == false then
    local doc = M.parse("")
    doc.exists = false
    return doc
  end
  if not text then return nil, err end
  if find(text, "%z") then
    return nil, new_error("format", ("cannot read %s: not a text file (it holds a NUL byte)"):format(path), path)
  end
  local doc = M.parse(text)
  doc.exists = true
  return doc
end

--- Replaces an env file with a document, atomically (`aap.os.write_atomic`: a temporary file
-- in the same directory, then a rename), with mode 0600 (`MODE_PRIVATE`, or the file's own
-- mode when that is stricter). The one writer of env files: `update`, aap.workflow and
-- aap.rotate all write through it. It writes the document as it is: the checks of what goes
-- into it (`Doc:check_owned`, aap.workflow's `check_values`) are the caller's, before `set`.
-- On failure the file is left byte-for-byte as it was.
-- @tparam string path
-- @tparam Doc doc
-- @tparam[opt] integer mode default `MODE_PRIVATE`
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] aap.Error `code` "io", with `message` and `path` (the message names the path)
-- @usage assert(env.write(".env", doc))
function M.write(path, doc, mode)
  expect(path, "string", "path", 2)
  if getmetatable(doc) ~= Doc then error(("bad doc (Doc expected, got %s)"):format(type(doc)), 2) end
  mode = mode or DEFAULT_MODE
  if math.type(mode) ~= "integer" then error("bad mode (integer expected)", 2) end
  local ok, werr = require("aap").os.write_atomic(path, doc:serialize(), mode)
  if not ok then return nil, new_error("io", werr, path) end
  return true
end

local UPDATE_OPTIONS = { remove = true, mode = true }

-- Normalise update's values into an ordered list of {key, value}.
local function ordered_values(values)
  local list = {}
  if values[1] ~= nil then
    for i, pair in ipairs(values) do
      if type(pair) ~= "table" then
        error(("bad values[%d] ({key, value} expected, got %s)"):format(i, type(pair)), 3)
      end
      list[i] = { pair[1] or pair.key, pair[2] or pair.value }
    end
  else
    for k, v in pairs(values) do list[#list + 1] = { k, v } end
    sort(list, function(a, b) return tostring(a[1]) < tostring(b[1]) end)
  end
  for _, pair in ipairs(list) do
    check_key(pair[1], 3)
    check_value(pair[2], 3)
  end
  return list
end

--- Set (and remove) keys in an env file, then replace it atomically with mode 0600 (or the
-- file's own mode when that is stricter). On failure the file is left byte-for-byte as it was.
-- The file is not locked: callers that may race take `aap.os.lock` themselves.
-- @tparam string path
-- @tparam table values `{KEY = value, ...}` (new keys appended in sorted order) or an ordered
--   list `{{KEY, value}, ...}`
-- @tparam[opt] table opts `remove` (a list of keys to remove), `mode` (default 0600)
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] aap.Error (see `read`)
-- @usage assert(env.update(".env", {AAP_TOKEN = tok.token}, {remove = {"OLD_TOKEN"}}))
function M.update(path, values, opts)
  expect(path, "string", "path", 2)
  expect(values, "table", "values", 2)
  opts = options(opts, UPDATE_OPTIONS, 2)
  local list = ordered_values(values)
  local remove = opts.remove or {}
  expect(remove, "table", "opts.remove", 2)
  for _, k in ipairs(remove) do check_key(k, 2) end
  local mode = opts.mode or DEFAULT_MODE
  if math.type(mode) ~= "integer" then error("bad opts.mode (integer expected)", 2) end

  local doc, err = M.read(path)
  if not doc then return nil, err end
  local keys = {}
  for i, pair in ipairs(list) do keys[i] = pair[1] end
  local ok_owned, oerr = doc:check_owned(keys, path)
  if not ok_owned then return nil, oerr end
  for _, k in ipairs(remove) do doc:unset(k) end
  for _, pair in ipairs(list) do doc:set(pair[1], pair[2]) end
  return M.write(path, doc, mode)
end
return M
