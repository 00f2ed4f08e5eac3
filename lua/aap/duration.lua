--- Durations as operators write them in policies and flags: `"90d"`, `"1h"`, `"1d12h"`,
-- `"30m"`, `"45s"`, or a plain number of seconds.
-- Units: `s` (seconds), `m` (minutes), `h` (hours), `d` (days of 86400 s). No months or
-- years: their length varies, and a token's lifetime is counted in seconds by the gateway.
-- @module aap.duration
local M = {}

local UNITS = { s = 1, m = 60, h = 3600, d = 86400 }
local ORDER = { "d", "h", "m", "s" }

-- The largest duration accepted: 10000 days, far beyond any token lifetime an operator
-- would write, and small enough that sums with epoch times stay exact in a float.
M.MAX = 10000 * 86400

local function bad(value, why)
  return nil, ("%s is not a duration (%s; write e.g. 90d, 12h, 1d12h, 30m or 45s)"):format(
    type(value) == "string" and ("%q"):format(value) or tostring(value), why)
end

--- Parses a duration.
-- @tparam string|number value `"90d"`, `"1d12h"`, `"15m"`, `"0s"`, or a number of seconds
-- @treturn integer seconds (0 or more), or nil and a message naming the value
-- @usage duration.parse("1d12h") --> 129600
function M.parse(value)
  if value ~= value then return bad("NaN", "it must be a number of seconds, 0 or more") end
  if math.type(value) == "integer" or (type(value) == "number" and value == math.floor(value)) then
    if value < 0 then return bad(value, "it must be 0 or more") end
    if value > M.MAX then return bad(value, "it is longer than 10000d") end
    return math.tointeger(value)
  end
  if type(value) == "number" then return bad(value, "seconds must be a whole number") end
  if type(value) ~= "string" then return bad(value, "a " .. type(value)) end
  local s = value:match("^%s*(.-)%s*$")
  if s == "" then return bad(value, "it is empty") end
  if s:match("^%d+$") then return M.parse(tonumber(s)) end
  local total, pos, seen = 0, 1, {}
  while pos <= #s do
    local num, unit, nxt = s:match("^(%d+)(%a)()", pos)
    if not num then
      if s:sub(pos):match("^%-") then return bad(value, "it must be 0 or more") end
      if s:sub(pos):match("^%d+$") then return bad(value, "the last number has no unit") end
      return bad(value, "unexpected " .. ("%q"):format(s:sub(pos, pos)))
    end
    local mult = UNITS[unit]
    if not mult then return bad(value, ("unknown unit %q; use s, m, h or d"):format(unit)) end
    if seen[unit] then return bad(value, ("unit %q given twice"):format(unit)) end
    seen[unit] = true
    if #num > 9 then return bad(value, "it is longer than 10000d") end
    total = total + tonumber(num) * mult
    pos = nxt
  end
  if total > M.MAX then return bad(value, "it is longer than 10000d") end
  return math.tointeger(total)
end

--- Formats seconds the way `parse` reads them, largest units first: 129600 → `"1d12h"`.
-- Rounded to the nearest second; negative values get a leading `-`.
-- @tparam number seconds
-- @treturn string
function M.format(seconds)
  local n = math.floor(math.abs(seconds) + 0.5)
  local parts = {}
  for _, u in ipairs(ORDER) do
    local k = n // UNITS[u]
    if k > 0 then
      parts[#parts + 1] = ("%d%s"):format(k, u)
      n = n - k * UNITS[u]
    end
  end
  local s = #parts > 0 and table.concat(parts) or "0s"
  return seconds < 0 and ("-" .. s) or s
end

return M
