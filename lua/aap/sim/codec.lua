--- Small wire codecs for the emulator: query strings and form bodies as Python parses them,
-- `urlencode` as DRF builds pagination links, base64 as `base64.b64decode` (non-validating)
-- reads it, and multipart/form-data fields.
local M = {}

local char, tonumber, format = string.char, tonumber, string.format

--- Percent-decode, with `+` as a space (`unquote_plus`).
-- @tparam string s
-- @treturn string
function M.unquote_plus(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

--- Parse `a=1&b=&c` into an ordered list of `{key, value}` pairs (blank values kept, as
-- `parse_qsl(keep_blank_values=True)`).
-- @tparam string q query string without `?`
-- @treturn table list of pairs
function M.parse_pairs(q)
  local out = {}
  for part in (q or ""):gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=(.*)$")
    if not k then k, v = part, "" end
    out[#out + 1] = { M.unquote_plus(k), M.unquote_plus(v) }
  end
  return out
end

--- Parse into a table of the last value of each key (Django's `QueryDict.get`).
-- @tparam string q
-- @treturn table key -> value
function M.parse_map(q)
  local map = {}
  for _, kv in ipairs(M.parse_pairs(q)) do map[kv[1]] = kv[2] end
  return map
end

--- `quote_plus` with no safe characters beyond `_.-~`.
-- @tparam string s
-- @treturn string
function M.quote_plus(s)
  s = s:gsub("[^%w_%.%-~ ]", function(c) return format("%%%02X", c:byte()) end)
  return (s:gsub(" ", "+"))
end

--- `urlencode(sorted(pairs), doseq=True)`: keys sorted, values of one key in their order.
-- @tparam table list pairs `{key, value}`
-- @treturn string
function M.urlencode_sorted(list)
  local idx = {}
  for i, kv in ipairs(list) do idx[i] = { kv[1], kv[2], i } end
  table.sort(idx, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    return a[3] < b[3]
  end)
  local parts = {}
  for i, kv in ipairs(idx) do parts[i] = M.quote_plus(kv[1]) .. "=" .. M.quote_plus(kv[2]) end
  return table.concat(parts, "&")
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[B64:byte(i)] = i - 1 end

--- Decode base64 the way Python's non-validating `b64decode` does: characters outside the
-- alphabet are discarded; bad padding is an error.
-- @tparam string s
-- @treturn string|nil decoded bytes, or nil on bad padding
function M.b64decode(s)
  local clean = s:gsub("[^%w%+/=]", "")
  local data, pad = clean:match("^([^=]*)(=*)$")
  if not data then return nil end
  if (#data + #pad) % 4 ~= 0 or #pad > 2 or #data % 4 == 1 then return nil end
  local out, bits, nbits = {}, 0, 0
  for i = 1, #data do
    bits = (bits << 6) | B64_INDEX[data:byte(i)]
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = char((bits >> nbits) & 0xFF)
    end
  end
  return table.concat(out)
end

--- The media type of a Content-Type value, lowercased, and its parameters.
-- @tparam string|nil ct header value
-- @treturn string media type ("" when absent)
-- @treturn table parameters (lowercase names)
function M.media_type(ct)
  if not ct then return "", {} end
  local mt = ct:match("^%s*([^;%s]*)") or ""
  local params = {}
  for k, v in ct:gmatch(";%s*([^=;%s]+)%s*=%s*([^;]*)") do
    params[k:lower()] = v:gsub('^"(.*)"$', "%1"):match("^(.-)%s*$")
  end
  return mt:lower(), params
end

--- Parse a multipart/form-data body into a field map (file parts are skipped).
-- @tparam string body
-- @tparam string boundary
-- @treturn table|nil field -> value, or nil and a message
function M.parse_multipart(body, boundary)
  if not boundary or boundary == "" or #boundary > 200 then return nil, "Invalid boundary in multipart: None" end
  local delim = "--" .. boundary
  local fields = {}
  local pos = body:find(delim, 1, true)
  if not pos then return nil, "Multipart form parse error - Invalid boundary in multipart" end
  pos = pos + #delim
  while true do
    if body:sub(pos, pos + 1) == "--" then return fields end
    local hstart = body:find("\r\n", pos, true)
    if not hstart then return nil, "Multipart form parse error" end
    local hend = body:find("\r\n\r\n", hstart, true)
    if not hend then return nil, "Multipart form parse error" end
    local head = body:sub(hstart + 2, hend - 1)
    local nextd = body:find("\r\n" .. delim, hend + 4, true)
    if not nextd then return nil, "Multipart form parse error" end
    local value = body:sub(hend + 4, nextd - 1)
    local disp = head:match("[Cc]ontent%-[Dd]isposition:%s*([^\r\n]*)")
    local name = disp and (disp:match('[;%s]name="([^"]*)"') or disp:match("[;%s]name=([^;%s]+)"))
    if name and not disp:find("filename", 1, true) then fields[name] = value end
    pos = nextd + 2 + #delim
  end
end

return M
