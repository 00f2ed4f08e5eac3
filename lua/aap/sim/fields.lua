--- DRF field validation as the gateway's serializers apply it: the same messages, in the
-- same order (field validators first, then the serializer's `validate_<field>`), for JSON
-- and form input alike (`form = true` applies DRF's HTML-input rules for blank values).
local json = require("aap.sim.json")

local null = json.null
local format, math_type = string.format, math.type

local M = {}

M.REQUIRED = "This field is required."
M.NULL = "This field may not be null."
M.BLANK = "This field may not be blank."

--- The Python type name DRF puts in "received X" messages.
-- @param v a decoded value
-- @treturn string
function M.pytype(v)
  local t = type(v)
  if t == "boolean" then return "bool" end
  if t == "string" then return "str" end
  if t == "number" then return (math_type(v) == "integer" or v == math.floor(v)) and "int" or "float" end
  if t == "table" then return #v > 0 and "list" or "dict" end
  return "NoneType"
end

--- Python's `str()` of a decoded value, for messages.
-- @param v
-- @treturn string
function M.pystr(v)
  if v == true then return "True" end
  if v == false then return "False" end
  if v == null then return "None" end
  if type(v) == "number" then
    if math_type(v) == "integer" then return format("%d", v) end
    -- lua-cjson decodes every JSON number as a float: an integral one was most likely an int
    if v == math.floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
    return format("%.15g", v)
  end
  return tostring(v)
end

-- Get a field's raw input: nil when absent. Form input: "" means "use the default" for
-- fields that are not required and may not be blank (DRF `CharField.get_value`).
local function raw(data, name)
  local v = data.values[name]
  return v
end

--- CharField. Returns value (or nil to skip: absent and not required), or nil, {messages}.
-- opts: required, allow_blank, allow_null, max_length, validators (list of fn(v) -> msg|nil)
function M.char(data, name, opts)
  local v = raw(data, name)
  if v == nil then
    if opts.required and not data.partial then return nil, { M.REQUIRED } end
    return nil
  end
  if data.form and v == "" then
    if opts.allow_null then return opts.allow_blank and "" or null end
    if not opts.required then
      if opts.allow_blank then return "" end
      return nil
    end
  end
  if v == null then
    if opts.allow_null then return null end
    return nil, { M.NULL }
  end
  local t = type(v)
  if t == "boolean" or t == "table" then return nil, { "Not a valid string." } end
  if t == "number" then v = M.pystr(v) end
  if v:match("^%s*$") and not opts.allow_blank then return nil, { M.BLANK } end
  v = v:match("^%s*(.-)%s*$")
  local errs = {}
  for _, check in ipairs(opts.validators or {}) do
    local msg = check(v)
    if msg then errs[#errs + 1] = msg end
  end
  if opts.max_length and utf8.len(v) and utf8.len(v) > opts.max_length then
    errs[#errs + 1] = format("Ensure this field has no more than %d characters.", opts.max_length)
  end
  if #errs > 0 then return nil, errs end
  return v
end

--- PrimaryKeyRelatedField. `exists(id)` says whether the object exists.
function M.pk(data, name, opts, exists)
  local v = raw(data, name)
  if v == nil then
    if opts.required and not data.partial then return nil, { M.REQUIRED } end
    return nil
  end
  if v == "" then v = null end
  if v == null then
    if opts.allow_null then return null end
    return nil, { M.NULL }
  end
  local id
  if type(v) == "number" then
    -- Django's int() of the lookup value truncates a float: 1.5 is pk 1
    if v == v and v > -2^53 and v < 2^53 then id = math.tointeger(v >= 0 and math.floor(v) or math.ceil(v)) end
  elseif type(v) == "string" and v:match("^%s*[+-]?%d+%s*$") then
    id = math.tointeger(tonumber(v:match("^%s*(.-)%s*$")))
  end
  if not id then
    return nil, { format("Incorrect type. Expected pk value, received %s.", M.pytype(v)) }
  end
  if not exists(id) then
    return nil, { format('Invalid pk "%s" - object does not exist.', M.pystr(v):match("^%s*(.-)%s*$")) }
  end
  return id
end

--- ChoiceField.
function M.choice(data, name, opts, choices)
  local v = raw(data, name)
  if v == nil then
    if opts.required and not data.partial then return nil, { M.REQUIRED } end
    return nil
  end
  if v == null then
    if opts.allow_null then return null end
    return nil, { M.NULL }
  end
  if data.form and v == "" and not opts.required then return nil end
  local s = type(v) == "string" and v or nil
  if s then
    for _, c in ipairs(choices) do
      if c == s then return s end
    end
  end
  return nil, { format('"%s" is not a valid choice.', M.pystr(v)) }
end

local TRUE = { ["true"] = true, ["True"] = true, ["TRUE"] = true, ["1"] = true, ["yes"] = true, ["Yes"] = true,
               ["YES"] = true, ["on"] = true, ["On"] = true, ["ON"] = true, ["t"] = true, ["T"] = true,
               ["y"] = true, ["Y"] = true }
local FALSE = { ["false"] = true, ["False"] = true, ["FALSE"] = true, ["0"] = true, ["no"] = true, ["No"] = true,
                ["NO"] = true, ["off"] = true, ["Off"] = true, ["OFF"] = true, ["f"] = true, ["F"] = true,
                ["n"] = true, ["N"] = true }

--- BooleanField (form input: absent means false unless partial).
function M.boolean(data, name)
  local v = raw(data, name)
  if v == nil then
    if data.form and not data.partial then return false end
    return nil
  end
  if v == null then return nil, { M.NULL } end
  if v == true or v == 1 or TRUE[v] then return true end
  if v == false or v == 0 or FALSE[v] then return false end
  return nil, { "Must be a valid boolean." }
end

--- URLField (allow_null), max_length.
function M.url(data, name, opts)
  local v, errs = M.char(data, name, { allow_null = true, allow_blank = true, max_length = opts.max_length })
  if v == nil or v == null or v == "" then return v, errs end
  local scheme, host = v:match("^(%a[%w+.-]*)://([^/?#]+)")
  scheme = scheme and scheme:lower()
  if not host or not (scheme == "http" or scheme == "https" or scheme == "ftp" or scheme == "ftps") then
    return nil, { "Enter a valid URL." }
  end
  return v
end

--- Scope words allowed on tokens.
M.SCOPES = { read = true, write = true }

--- The model validator of DAB's access token `scope` (first unknown word).
-- @tparam string v
-- @treturn string|nil message
function M.model_scope_check(v)
  for word in (v .. " "):gmatch("([^ ]*) ") do
    if not M.SCOPES[word] then
      return ("Invalid scope: %s. Must be one of: read, write"):format(word)
    end
  end
  return nil
end

M.SCOPE_MESSAGE = "Must be a simple space-separated string with allowed scopes ['read', 'write']."

--- The serializer's `validate_scope`: empty, duplicate or unknown words.
-- @tparam string v
-- @treturn string|nil message
function M.serializer_scope_check(v)
  if type(v) ~= "string" or v == "" then return M.SCOPE_MESSAGE end
  local seen, n = {}, 0
  for word in v:gmatch("%S+") do
    if seen[word] or not M.SCOPES[word] then return M.SCOPE_MESSAGE end
    seen[word] = true
    n = n + 1
  end
  if n == 0 then return M.SCOPE_MESSAGE end
  return nil
end

return M
