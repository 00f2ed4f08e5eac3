--- Machine-readable reports (`--output json`): one contract for every command. Objects have
-- every field of their shape (`null` when unknown), keys in sorted order (stable output that
-- diffs well), and lists are JSON arrays even when empty — which lua-cjson alone cannot tell
-- from an empty object. Strings and numbers are encoded by lua-cjson.
-- @module aap.report
local cjson = require("cjson")

local M = {}

--- JSON null.
M.null = cjson.null

local arrays = setmetatable({}, { __mode = "k" })

--- Marks t (default: a new table) as a list: encoded as a JSON array, `[]` when empty.
-- @treturn table t
function M.list(t)
  t = t or {}
  arrays[t] = true
  return t
end

--- An object with exactly these fields: each from `values` (nil becomes null).
-- @tparam {string,...} fields
-- @tparam table values
function M.object(fields, values)
  local o = {}
  for _, f in ipairs(fields) do
    local v = values[f]
    if v == nil then v = cjson.null end
    o[f] = v
  end
  return o
end

local function encode(v, out)
  if type(v) ~= "table" or v == cjson.null then
    out[#out + 1] = cjson.encode(v)
  elseif arrays[v] or (#v > 0 and next(v, #v) == nil) then
    out[#out + 1] = "["
    for i = 1, #v do
      if i > 1 then out[#out + 1] = "," end
      encode(v[i], out)
    end
    out[#out + 1] = "]"
  else
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" then error("aap.report: object keys must be strings", 0) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      out[#out + 1] = cjson.encode(k)
      out[#out + 1] = ":"
      encode(v[k], out)
    end
    out[#out + 1] = "}"
  end
end

--- The JSON text of a report.
-- @treturn string
function M.encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

return M
