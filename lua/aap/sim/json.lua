--- Ordered JSON for the emulator.
-- lua-cjson does not keep key order, and the gateway's wire order matters (clients and
-- specs compare it), so responses are built from ordered objects and encoded here.
-- Two styles: DRF's compact `,`/`:` separators with UTF-8 kept, and oauthlib's
-- `json.dumps` defaults (`", "`/`": "`, non-ASCII escaped).
-- Request bodies are decoded with a private lua-cjson instance.
local cjson = require("cjson.safe")

local concat, format, type, pairs, ipairs = table.concat, string.format, type, pairs, ipairs
local getmetatable, setmetatable, tostring = getmetatable, setmetatable, tostring
local math_type = math.type

local M = {}

local decoder = cjson.new()
decoder.decode_max_depth(64)

--- The JSON null (the same light userdata lua-cjson decodes `null` to).
M.null = decoder.null

local OBJ = { __name = "aap.sim.json.object" }
local ARR = { __name = "aap.sim.json.array" }

--- An ordered object from a flat list of alternating keys and values.
-- Values must not be nil: use `json.null`.
-- @tparam table kv `{ "id", 1, "name", "x", ... }`
-- @treturn table the same table, marked as an ordered object
-- @usage json.obj{ "id", 7, "url", "/api/gateway/v1/tokens/7/" }
function M.obj(kv)
  return setmetatable(kv, OBJ)
end

--- Append a key and value to an ordered object.
-- @tparam table o an object from `json.obj`
-- @tparam string k key
-- @param v value (not nil)
function M.put(o, k, v)
  o[#o + 1] = k
  o[#o + 1] = v
end

--- Look up a key of an ordered object (linear; objects are small).
-- @tparam table o ordered object
-- @tparam string k key
-- @return the value or nil
function M.get(o, k)
  for i = 1, #o, 2 do
    if o[i] == k then return o[i + 1] end
  end
  return nil
end

--- The keys of an ordered object, in order.
-- @tparam table o ordered object
-- @treturn table list of keys
function M.keys(o)
  local ks = {}
  for i = 1, #o, 2 do ks[#ks + 1] = o[i] end
  return ks
end

--- Mark a sequence as a JSON array (so that `{}` encodes as `[]`).
-- @tparam table t sequence
-- @treturn table t
function M.arr(t)
  return setmetatable(t or {}, ARR)
end

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
  ["\b"] = "\\b", ["\f"] = "\\f",
}
for b = 0, 31 do
  local c = string.char(b)
  if not ESC[c] then ESC[c] = format("\\u%04x", b) end
end

local function ascii_escape(s)
  -- Python's ensure_ascii: every non-ASCII code point as \uXXXX (surrogate pairs above U+FFFF).
  local out = {}
  for _, cp in utf8.codes(s, true) do
    if cp < 0x80 then
      out[#out + 1] = string.char(cp)
    elseif cp < 0x10000 then
      out[#out + 1] = format("\\u%04x", cp)
    else
      local v = cp - 0x10000
      out[#out + 1] = format("\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
    end
  end
  return concat(out)
end

local function quote(s, ascii)
  s = s:gsub('[%z\1-\31"\\]', ESC)
  if s:find("[\128-\255]") then
    if ascii then
      s = ascii_escape(s)
    else
      -- DRF's renderer escapes the two JavaScript line terminators
      s = s:gsub("\u{2028}", "\\u2028"):gsub("\u{2029}", "\\u2029")
    end
  end
  return '"' .. s .. '"'
end

local encode_into

local function encode_number(n)
  if math_type(n) == "integer" then return format("%d", n) end
  if n ~= n or n == math.huge or n == -math.huge then return "null" end
  if n == math.floor(n) and n > -2^53 and n < 2^53 then return format("%d.0", n) end
  return format("%.17g", n)
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return ks
end

encode_into = function(buf, v, sep, colon, ascii, depth)
  if depth > 64 then error("json: nesting too deep", 0) end
  local tv = type(v)
  if tv == "string" then
    buf[#buf + 1] = quote(v, ascii)
  elseif tv == "number" then
    buf[#buf + 1] = encode_number(v)
  elseif tv == "boolean" then
    buf[#buf + 1] = v and "true" or "false"
  elseif v == nil or v == M.null then
    buf[#buf + 1] = "null"
  elseif tv == "table" then
    local mt = getmetatable(v)
    if mt == OBJ then
      buf[#buf + 1] = "{"
      for i = 1, #v, 2 do
        if i > 1 then buf[#buf + 1] = sep end
        buf[#buf + 1] = quote(v[i], ascii)
        buf[#buf + 1] = colon
        encode_into(buf, v[i + 1], sep, colon, ascii, depth + 1)
      end
      buf[#buf + 1] = "}"
    elseif mt == ARR or #v > 0 then
      buf[#buf + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then buf[#buf + 1] = sep end
        encode_into(buf, x, sep, colon, ascii, depth + 1)
      end
      buf[#buf + 1] = "]"
    else
      -- A plain table: an object with sorted keys (control answers, decoded input).
      buf[#buf + 1] = "{"
      for i, k in ipairs(sorted_keys(v)) do
        if i > 1 then buf[#buf + 1] = sep end
        buf[#buf + 1] = quote(k, ascii)
        buf[#buf + 1] = colon
        encode_into(buf, v[k], sep, colon, ascii, depth + 1)
      end
      buf[#buf + 1] = "}"
    end
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

--- Encode compactly, as DRF's JSON renderer does (`,` and `:`, UTF-8 kept).
-- @param v value (ordered objects, arrays, plain tables, strings, numbers, booleans, null)
-- @treturn string JSON text
function M.encode(v)
  local buf = {}
  encode_into(buf, v, ",", ":", false, 0)
  return concat(buf)
end

--- Encode as Python's `json.dumps` defaults do (oauthlib's bodies): `", "`, `": "`, ASCII only.
-- @param v value
-- @treturn string JSON text
function M.encode_oauth(v)
  local buf = {}
  encode_into(buf, v, ", ", ": ", true, 0)
  return concat(buf)
end

-- lua-cjson decodes every number as a float: make integral ones integers again, so that ids
-- stay ids (an `application: 3` must not come back as `3.0`).
local function integers(v)
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(x) == "number" then
        local i = math.tointeger(x)
        if i then v[k] = i end
      elseif type(x) == "table" then
        integers(x)
      end
    end
  end
  return v
end

-- lua-cjson's parse errors and the words of Python's json module for them (DRF's messages)
local PY_ERRORS = {
  { "Expected value", "Expecting value" },
  { "Expected object key string", "Expecting property name enclosed in double quotes" },
  { "Expected colon", "Expecting ':' delimiter" },
  { "Expected comma", "Expecting ',' delimiter" },
  { "Expected the end", "Extra data" },
}

--- Decode request JSON (integral numbers as integers).
-- @tparam string s text
-- @return the value, or nil and a Python-style message (`Expecting value: line 1 column 1 (char 0)`)
function M.decode(s)
  if not utf8.len(s) then
    return nil, "'utf-8' codec can't decode the request body"
  end
  local v, err = decoder.decode(s)
  if v == nil and err then
    local pos = tonumber(tostring(err):match("at character (%d+)")) or 1
    local char = pos - 1
    local before = s:sub(1, char)
    local line, lastnl = 1, 0
    for nl in before:gmatch("()\n") do line, lastnl = line + 1, nl end
    local col = char - lastnl + 1
    local what = "Invalid JSON"
    for _, m in ipairs(PY_ERRORS) do
      if tostring(err):find(m[1], 1, true) then what = m[2] break end
    end
    return nil, format("%s: line %d column %d (char %d)", what, line, col, char)
  end
  if type(v) == "number" then return math.tointeger(v) or v end
  return integers(v)
end

return M
