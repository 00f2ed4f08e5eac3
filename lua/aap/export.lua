--- Output formats for tokens: env, shell, json, k8s-secret; and redaction for display.
--
-- Every format takes the same input: an ordered list of `{key, value}` pairs (the variables to
-- hand over, e.g. `{{"AAP_TOKEN", tok.token}, {"AAP_REFRESH_TOKEN", tok.refresh_token}}`) and
-- options (`meta`: token metadata; `name`, `namespace`, `labels`, `annotations`: the Secret's).
--
-- * `env`: `KEY=value` lines, quoted by `aap.env.quote` (bash, python-dotenv and docker compose
--   read the same value; kubectl only when `aap.env.kubectl_safe(value)`).
-- * `shell`: `export KEY='value'` lines, always single-quoted (`'` written as `'\''`), for
--   `eval "$(aap token create ... --format shell)"`.
-- * `json`: one object: the pairs in their given order (`jq -r .AAP_TOKEN`), then the
--   metadata present, in a fixed order (`id`, `kind`, `scope`, `application`, `user`,
--   `description`, `created`, `expires`, `last_used`; times as `YYYY-MM-DDTHH:MM:SSZ`).
--   Variables are upper-case by convention and metadata fields lower-case; a variable named
--   like a metadata field that is present is refused rather than silently shadowed.
-- * `k8s-secret`: a Secret manifest (YAML). `metadata.name` must be a DNS-1123 subdomain,
--   `namespace` a DNS-1123 label; labels always include `rhdh.redhat.com/ext-config-sync: "true"`
--   (Red Hat Developer Hub picks such Secrets up as external configuration) plus `labels`.
--   The values go under `stringData`, not `data`: the API server base64-encodes `stringData`
--   into `data` itself, so the manifest needs no encoding step, is readable when reviewed
--   before `kubectl apply`, and cannot carry a wrongly encoded value. `stringData` is
--   write-only: `kubectl get secret -o yaml` shows the values under `data`. Every key and
--   string is written as a JSON-style double-quoted string, which is valid YAML and never
--   re-typed (no `yes`/`no`/`0x1` surprises).
--
-- `render` raises on bad arguments: an unknown format, a bad key, a value a format cannot
-- carry, an invalid Secret name or label. `format` is the same for input from a user or a
-- server: it returns `nil, err` for those instead (and takes the metadata fields directly in
-- its options). The validators are public: `aap.env.valid_key`, `aap.env.quote`,
-- `check_name`, `check_namespace` and `check_label`.
-- Error messages never contain a value.
-- @module aap.export
local env = require("aap.env")

local M = {}
local expect = env._expect

local type, error, ipairs, pairs, tostring = type, error, ipairs, pairs, tostring
local concat, sort = table.concat, table.sort
local find, format, gsub = string.find, string.format, string.gsub
local utf8_len, utf8_codes, utf8_char = utf8.len, utf8.codes, utf8.char

M.formats = { "env", "shell", "json", "k8s-secret" }

M.SYNC_LABEL = "rhdh.redhat.com/ext-config-sync"

local META_FIELDS = { "id", "kind", "scope", "application", "user", "description", "created",
                      "expires", "last_used" }
local TIME_FIELDS = { created = true, expires = true, last_used = true }

-- Strings --------------------------------------------------------------------------------------

local SHORT_ESCAPES = { [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r",
                        [34] = '\\"', [92] = "\\\\" }

-- Code points written as \uXXXX: not printable in YAML (C0, DEL, C1, the BOM, non-characters)
-- or line separators some JSON readers stumble on.
local function must_escape(cp)
  return cp < 32 or (cp >= 127 and cp <= 159) or cp == 0x2028 or cp == 0x2029 or cp == 0xFEFF
    or cp == 0xFFFE or cp == 0xFFFF
end

--- A string as a JSON string literal, which is also a valid YAML double-quoted scalar.
-- Raises when `s` is not valid UTF-8 (neither format can carry it).
-- @tparam string s
-- @treturn string
function M.json_string(s)
  expect(s, "string", "string", 2)
  if not utf8_len(s) then error("bad string: not valid UTF-8", 2) end
  if not find(s, '[%c"\\\127-\255]') then return '"' .. s .. '"' end
  local out = {}
  for _, cp in utf8_codes(s) do
    local short = SHORT_ESCAPES[cp]
    if short then
      out[#out + 1] = short
    elseif must_escape(cp) then
      out[#out + 1] = format("\\u%04X", cp)
    else
      out[#out + 1] = utf8_char(cp)
    end
  end
  return '"' .. concat(out) .. '"'
end

--- A value in single quotes for a POSIX shell.
-- @tparam string s
-- @treturn string
function M.shell_quote(s)
  expect(s, "string", "string", 2)
  return "'" .. gsub(s, "'", "'\\''") .. "'"
end

-- Kubernetes names -----------------------------------------------------------------------------

local function dns_label(s)
  return #s <= 63 and (find(s, "^[a-z0-9]$") or find(s, "^[a-z0-9][-a-z0-9]*[a-z0-9]$")) ~= nil
end

--- Whether `name` is a valid Secret name (a DNS-1123 subdomain: at most 253 characters,
-- dot-separated lowercase labels of `a-z 0-9 -` that start and end alphanumeric).
-- @tparam string name
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] string why not
function M.check_name(name)
  if type(name) ~= "string" or name == "" then return nil, "the Secret name is empty" end
  if #name > 253 then return nil, "the Secret name is longer than 253 characters" end
  for part in (name .. "."):gmatch("([^.]*)%.") do
    if not dns_label(part) then
      return nil, ("invalid Secret name %q: must be lowercase letters, digits, '-' and '.', "
        .. "starting and ending with a letter or digit (DNS-1123 subdomain)"):format(name)
    end
  end
  return true
end

--- Whether `ns` is a valid namespace (a DNS-1123 label, at most 63 characters).
-- @tparam string ns
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] string why not
function M.check_namespace(ns)
  if type(ns) ~= "string" or not dns_label(ns) then
    return nil, ("invalid namespace %q: must be at most 63 lowercase letters, digits and '-', "
      .. "starting and ending with a letter or digit (DNS-1123 label)"):format(tostring(ns))
  end
  return true
end

local function qualified_name(key)
  local prefix, name = key:match("^(.*)/([^/]*)$")
  if prefix then
    if not M.check_name(prefix) then return false end
  else
    name = key
  end
  return #name >= 1 and #name <= 63
    and (find(name, "^[A-Za-z0-9]$") ~= nil or find(name, "^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$") ~= nil)
end

--- Whether a label key and value are valid (key: optional DNS subdomain prefix and `/`, then a
-- name of at most 63 `A-Z a-z 0-9 - _ .`; value: empty or such a name).
-- @tparam string key
-- @tparam string value
-- @treturn[1] true
-- @treturn[2] nil
-- @treturn[2] string why not
function M.check_label(key, value)
  if type(key) ~= "string" or not qualified_name(key) then
    return nil, ("invalid label key %q"):format(tostring(key))
  end
  if type(value) ~= "string" or #value > 63
    or not (value == "" or find(value, "^[A-Za-z0-9]$") or find(value, "^[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]$")) then
    return nil, ("invalid value for label %q: at most 63 letters, digits, '-', '_', '.', "
      .. "starting and ending with a letter or digit"):format(key)
  end
  return true
end

-- Input ----------------------------------------------------------------------------------------

-- Normalise the pairs: {{key, value}, ...} or {{key = , value = }, ...}.
local function check_pairs(entries, level)
  expect(entries, "table", "entries", level + 1)
  local list, seen = {}, {}
  for i, e in ipairs(entries) do
    if type(e) ~= "table" then
      error(("bad entries[%d] ({key, value} expected, got %s)"):format(i, type(e)), level + 1)
    end
    local k, v = e[1] or e.key, e[2] or e.value
    if not env.valid_key(k) then
      error(("bad entries[%d]: key %s must match [A-Za-z_][A-Za-z0-9_]*"):format(i,
        type(k) == "string" and ("%q"):format(k) or type(k)), level + 1)
    end
    if type(v) ~= "string" then
      error(("bad entries[%d]: value of %s (string expected, got %s)"):format(i, k, type(v)), level + 1)
    end
    if find(v, "%z") then error(("bad entries[%d]: value of %s contains a NUL byte"):format(i, k), level + 1) end
    if seen[k] then error(("bad entries: duplicate key %s"):format(k), level + 1) end
    seen[k] = true
    list[i] = { k, v }
  end
  return list
end

local function iso(t)
  if math.type(t) then return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end
  return t
end

-- The metadata fields present, in order, as {name, JSON text}.
local function meta_fields(meta, level)
  local out = {}
  if meta == nil then return out end
  expect(meta, "table", "opts.meta", level + 1)
  for _, f in ipairs(META_FIELDS) do
    local v = meta[f]
    if TIME_FIELDS[f] then v = iso(v) end
    local t = type(v)
    if t == "string" then
      out[#out + 1] = { f, M.json_string(v) }
    elseif math.type(v) == "integer" then
      out[#out + 1] = { f, tostring(v) }
    elseif t == "number" or t == "boolean" then
      out[#out + 1] = { f, tostring(v) }
    elseif v ~= nil then
      error(("bad opts.meta.%s (string or number expected, got %s)"):format(f, t), level + 1)
    end
  end
  return out
end

-- Formats --------------------------------------------------------------------------------------

local render = {}

function render.env(list)
  local out = {}
  for i, p in ipairs(list) do
    local q, why = env.quote(p[2])
    if not q then error(("cannot write %s in env format: %s"):format(p[1], why), 3) end
    out[i] = p[1] .. "=" .. q .. "\n"
  end
  return concat(out)
end

function render.shell(list)
  local out = {}
  for i, p in ipairs(list) do out[i] = "export " .. p[1] .. "=" .. M.shell_quote(p[2]) .. "\n" end
  return concat(out)
end

function render.json(list, opts)
  local lines, taken = {}, {}
  for i, p in ipairs(list) do
    lines[i] = ("  %s: %s"):format(M.json_string(p[1]), M.json_string(p[2]))
    taken[p[1]] = true
  end
  for _, f in ipairs(meta_fields(opts.meta, 3)) do
    if taken[f[1]] then
      error(("bad entries: key %s collides with the metadata field of that name"):format(f[1]), 3)
    end
    lines[#lines + 1] = ("  %s: %s"):format(M.json_string(f[1]), f[2])
  end
  if #lines == 0 then return "{}\n" end
  return "{\n" .. concat(lines, ",\n") .. "\n}\n"
end

local function yaml_map(out, indent, map, order)
  for _, k in ipairs(order) do
    out[#out + 1] = ("%s%s: %s"):format(indent, M.json_string(k), M.json_string(map[k]))
  end
end

render["k8s-secret"] = function(list, opts)
  local ok, why = M.check_name(opts.name)
  if not ok then error("bad opts.name: " .. why, 3) end
  if opts.namespace ~= nil then
    ok, why = M.check_namespace(opts.namespace)
    if not ok then error("bad opts.namespace: " .. why, 3) end
  end
  local labels, order = { [M.SYNC_LABEL] = "true" }, {}
  if opts.labels ~= nil and type(opts.labels) ~= "table" then error("bad opts.labels (table expected)", 3) end
  for k, v in pairs(opts.labels or {}) do
    ok, why = M.check_label(k, v)
    if not ok then error("bad opts.labels: " .. why, 3) end
    labels[k] = v
    if k ~= M.SYNC_LABEL then order[#order + 1] = k end
  end
  sort(order)
  table.insert(order, 1, M.SYNC_LABEL)
  local annotations, aorder = {}, {}
  if opts.annotations ~= nil and type(opts.annotations) ~= "table" then
    error("bad opts.annotations (table expected)", 3)
  end
  for k, v in pairs(opts.annotations or {}) do
    if type(k) ~= "string" or not qualified_name(k) then
      error(("bad opts.annotations: invalid key %q"):format(tostring(k)), 3)
    end
    if type(v) ~= "string" then error(("bad opts.annotations[%q] (string expected)"):format(k), 3) end
    annotations[k] = v
    aorder[#aorder + 1] = k
  end
  sort(aorder)

  local out = { "apiVersion: v1", "kind: Secret", "metadata:", "  name: " .. M.json_string(opts.name) }
  if opts.namespace then out[#out + 1] = "  namespace: " .. M.json_string(opts.namespace) end
  out[#out + 1] = "  labels:"
  yaml_map(out, "    ", labels, order)
  if #aorder > 0 then
    out[#out + 1] = "  annotations:"
    yaml_map(out, "    ", annotations, aorder)
  end
  out[#out + 1] = "type: Opaque"
  if #list == 0 then
    out[#out + 1] = "stringData: {}"
  else
    out[#out + 1] = "stringData:"
    local map, keys = {}, {}
    for i, p in ipairs(list) do map[p[1]], keys[i] = p[2], p[1] end
    yaml_map(out, "  ", map, keys)
  end
  return concat(out, "\n") .. "\n"
end

local OPTION_KEYS = { meta = true, name = true, namespace = true, labels = true, annotations = true }

--- Render pairs in one of the formats.
-- @tparam string fmt `"env"`, `"shell"`, `"json"` or `"k8s-secret"`
-- @tparam {{string,string},...} entries the variables, in order
-- @tparam[opt] table opts `meta` (token metadata: a `Token` or a table with `id`, `kind`,
--   `scope`, `expires`, ...; secrets in it are never used), `name` (required for
--   `k8s-secret`), `namespace`, `labels`, `annotations`
-- @treturn string the text, ending with a newline
-- @usage io.write(export.render("shell", {{"AAP_TOKEN", tok.token}}))
function M.render(fmt, entries, opts)
  local f = type(fmt) == "string" and render[fmt]
  if not f then
    error(("bad format %s (expected one of: %s)"):format(type(fmt) == "string" and ("%q"):format(fmt) or type(fmt),
      concat(M.formats, ", ")), 2)
  end
  opts = env._options(opts, OPTION_KEYS, 2)
  local text = f(check_pairs(entries, 2), opts) -- not a tail call: the level-3 errors below rely on it
  return text
end

local FORMAT_OPTION_KEYS = {}
for k in pairs(OPTION_KEYS) do FORMAT_OPTION_KEYS[k] = true end
for _, f in ipairs(META_FIELDS) do FORMAT_OPTION_KEYS[f] = true end

local function user_error(code, message)
  return require("aap.errors").new(code, message)
end

--- `render` for input that comes from a user or a server: what they can get wrong is returned
-- as `nil, err` instead of raised. The metadata fields (`id`, `kind`, `scope`, `expires`, ...)
-- may sit directly in `opts` (or in `opts.meta`); `name`, `namespace`, `labels`, `annotations`
-- as for `render`. Programmer errors (wrong types, unknown option keys) still raise.
-- @tparam string fmt
-- @tparam {{string,string},...} entries
-- @tparam[opt] table opts
-- @treturn[1] string
-- @treturn[2] nil
-- @treturn[2] aap.Error an `aap.errors` error of code `usage` (unknown format, missing or
--   invalid Secret name, namespace or label) or `local` (a value the format cannot carry)
-- @usage local text, err = export.format(args.format, {{"AAP_TOKEN", tok.token}},
--   {id = tok.id, kind = tok.kind, scope = tok.scope, expires = tok.expires, name = args.secret_name})
function M.format(fmt, entries, opts)
  opts = env._options(opts, FORMAT_OPTION_KEYS, 2)
  local inner = opts.meta ~= nil and expect(opts.meta, "table", "opts.meta", 2) or {}
  local ropts, meta = {}, {}
  for _, f in ipairs(META_FIELDS) do
    if opts[f] ~= nil then meta[f] = opts[f] else meta[f] = inner[f] end
  end
  for k in pairs(OPTION_KEYS) do
    if k ~= "meta" then ropts[k] = opts[k] end
  end
  ropts.meta = meta
  if type(fmt) ~= "string" or not render[fmt] then
    return nil, user_error("usage", ("unknown format %s (expected one of: %s)"):format(
      type(fmt) == "string" and ("%q"):format(fmt) or type(fmt), concat(M.formats, ", ")))
  end
  if fmt == "k8s-secret" then
    if ropts.name == nil then return nil, user_error("usage", "the k8s-secret format needs a Secret name") end
    local ok, why = M.check_name(ropts.name)
    if ok and ropts.namespace ~= nil then ok, why = M.check_namespace(ropts.namespace) end
    if ok and type(ropts.labels) == "table" then
      for k, v in pairs(ropts.labels) do
        ok, why = M.check_label(k, v)
        if not ok then break end
      end
    end
    if not ok then return nil, user_error("usage", why) end
  end
  expect(entries, "table", "entries", 2)
  for _, e in ipairs(entries) do
    local k, v = type(e) == "table" and (e[1] or e.key), type(e) == "table" and (e[2] or e.value)
    if fmt == "json" and meta[k] ~= nil then
      return nil, user_error("usage", ("the key %s collides with the JSON metadata field %s"):format(k, k))
    end
    if type(k) == "string" and type(v) == "string" then
      if fmt == "env" then
        local q, why = env.quote(v)
        if not q then return nil, user_error("local", ("cannot write %s in env format: %s"):format(k, why)) end
      elseif (fmt == "json" or fmt == "k8s-secret") and not utf8_len(v) then
        return nil, user_error("local", ("cannot write %s in %s format: the value is not UTF-8"):format(k, fmt))
      end
    end
  end
  return M.render(fmt, entries, ropts)
end

-- Redaction ------------------------------------------------------------------------------------

local function length(s)
  return utf8_len(s) or #s
end

--- A stand-in for a secret that shows nothing of it but its length: `<redacted 40 chars>`.
-- @tparam string value
-- @treturn string
function M.redact(value)
  expect(value, "string", "value", 2)
  local n = length(value)
  return ("<redacted %d char%s>"):format(n, n == 1 and "" or "s")
end

--- An env file's text for display: every value replaced by `<redacted N chars>`, comments,
-- blank lines, `export` prefixes, inline comments and line endings kept. A line that is neither
-- an assignment nor a comment could hold anything, so it is replaced too.
-- @tparam string text
-- @treturn string
function M.redacted_env(text)
  expect(text, "string", "text", 2)
  local doc = env.parse(text)
  local out = { doc.prefix }
  for _, it in ipairs(doc.items) do
    local line
    if it.key and it.value then
      line = it.lead .. it.key .. "=" .. M.redact(it.value) .. it.trail
    elseif it.key then
      line = it.lead .. it.key .. "=<redacted, unparsed>"
    else
      local body = it.raw:sub(1, #it.raw - #it.eol)
      if find(body, "^[ \t]*$") or find(body, "^[ \t]*#") then
        line = body
      else
        line = "# <redacted line>"
      end
    end
    out[#out + 1] = line .. it.eol
  end
  return concat(out)
end

return M
