--- List views as django-ansible-base serves them: field lookups (`?name__icontains=`,
-- `not__`, `or__`), ordering (`order_by`/`order`), and DRF page-number pagination with
-- relative `next`/`previous` links and `count_disabled`.
local json = require("aap.sim.json")
local codec = require("aap.sim.codec")
local store_mod = require("aap.sim.store")

local obj, null = json.obj, json.null
local format = string.format

local M = {}

--- Query parameters that are never filters.
M.RESERVED = {
  page = true, page_size = true, format = true, order = true, order_by = true, search = true, type = true,
  host_filter = true, count_disabled = true, no_truncate = true, limit = true, validate = true,
}

local LOOKUPS = {
  exact = true, iexact = true, contains = true, icontains = true, startswith = true, istartswith = true,
  endswith = true, iendswith = true, regex = true, iregex = true, gt = true, gte = true, lt = true, lte = true,
  ["in"] = true, isnull = true, search = true,
}

local function f(kind, get, target) return { kind = kind, get = get, target = target } end
local function key(k) return function(r) return r[k] end end

--- Models: field kinds and getters over the store's records.
M.MODELS = {
  token = {
    name = "OAuth2AccessToken", forbidden = { token = true },
    fields = {
      id = f("int", key("id")), user = f("fk", key("user"), "user"), application = f("fk", key("application"), "app"),
      description = f("str", key("description")), scope = f("str", key("scope")),
      created = f("time", key("created")), modified = f("time", key("modified")),
      expires = f("time", key("expires")), last_used = f("time", key("last_used")),
      created_by = f("fk", key("created_by"), "user"), modified_by = f("fk", key("modified_by"), "user"),
      source_refresh_token = f("int", key("source_refresh")),
      -- the reverse one-to-one of the refresh token's access_token
      refresh_token = f("fk", function(r) return r.refresh and r.refresh.id end, "refresh"),
    },
  },
  refresh = {
    name = "OAuth2RefreshToken", forbidden = { token = true },
    fields = {
      id = f("int", key("id")), user = f("fk", key("user"), "user"), application = f("fk", key("application"), "app"),
      created = f("time", key("created")), revoked = f("time", key("revoked")),
      access_token = f("fk", key("access"), "token"),
    },
  },
  app = {
    name = "OAuth2Application", forbidden = { client_secret = true },
    fields = {
      id = f("int", key("id")), name = f("str", key("name")), client_id = f("str", key("client_id")),
      client_type = f("str", key("client_type")), redirect_uris = f("str", key("redirect_uris")),
      post_logout_redirect_uris = f("str", key("post_logout_redirect_uris")), algorithm = f("str", key("algorithm")),
      authorization_grant_type = f("str", key("authorization_grant_type")),
      skip_authorization = f("bool", key("skip_authorization")), user = f("fk", key("user"), "user"),
      organization = f("fk", key("organization"), "org"), description = f("str", key("description")),
      app_url = f("str", key("app_url")), created = f("time", key("created")), modified = f("time", key("modified")),
      created_by = f("fk", key("created_by"), "user"), modified_by = f("fk", key("modified_by"), "user"),
    },
  },
  org = {
    name = "Organization", forbidden = {},
    fields = {
      id = f("int", key("id")), name = f("str", key("name")), description = f("str", key("description")),
      created = f("time", key("created")), modified = f("time", key("modified")),
      created_by = f("fk", key("created_by"), "user"), modified_by = f("fk", key("modified_by"), "user"),
    },
  },
  user = {
    name = "User", forbidden = { password = true },
    fields = {
      id = f("int", key("id")), username = f("str", key("username")), email = f("str", key("email")),
      first_name = f("str", key("first_name")), last_name = f("str", key("last_name")),
      is_superuser = f("bool", key("is_superuser")), is_platform_auditor = f("bool", key("is_platform_auditor")),
      created = f("time", key("created")), modified = f("time", key("modified")),
    },
  },
}

local TABLE_OF = { user = "users", app = "apps", org = "orgs", token = "tokens", refresh = "refresh" }

--- An error answer raised from list processing: `{status=, detail=}`.
local ListError = {}
ListError.__index = ListError
M.ListError = ListError

local function fail(status, detail)
  error(setmetatable({ status = status, detail = detail }, ListError), 0)
end

local function split_path(k)
  local parts = {}
  for p in (k .. "__"):gmatch("(.-)__") do parts[#parts + 1] = p end
  return parts
end

-- Resolve a dotted (`a__b`) field path on a model: list of fields, the last field.
local function resolve_path(model, parts, for_filter)
  local path, m = {}, model
  for i, name in ipairs(parts) do
    if m.forbidden[name] then
      fail(403, format("Filtering on %s is not allowed.", name))
    end
    local fld = m.fields[name]
    if not fld then
      if i > 1 and for_filter then
        fail(400, format("Unsupported lookup '%s' for %s or join on the field not permitted.", name, m.name))
      end
      fail(400, format("%s has no field named '%s'", m.name, name))
    end
    path[#path + 1] = fld
    if i < #parts then
      if fld.kind ~= "fk" then
        fail(400, format("%s has no field named '%s'", m.name, table.concat(parts, "__", i)))
      end
      m = M.MODELS[fld.target]
    end
  end
  return path
end

local function getter(store, path)
  return function(rec)
    for i, fld in ipairs(path) do
      if rec == nil then return nil end
      local v = fld.get(rec)
      if i == #path then return v end
      rec = v ~= nil and store[TABLE_OF[fld.target]][v] or nil
    end
  end
end

local TRUE = { ["true"] = true, ["1"] = true, t = true, yes = true, y = true, on = true }
local FALSE = { ["false"] = true, ["0"] = true, f = true, no = true, n = true, off = true }

local function to_bool(v)
  local l = v:lower()
  if TRUE[l] then return true end
  if FALSE[l] then return false end
  fail(400, format('Unable to convert "%s" to boolean', v))
end

local function convert(fld, name, v)
  if fld.kind == "int" or fld.kind == "fk" then
    local l = v:lower()
    if l == "null" or l == "none" then return null end
    local n = v:match("^%s*[+-]?%d+%s*$") and math.tointeger(tonumber(v))
    if not n then
      -- DAB's FieldLookupBackend for a relation; Django's IntegerField.to_python otherwise
      if fld.kind == "fk" then fail(400, format("Invalid %s id: %s", name, v)) end
      fail(400, format('["\u{201c}%s\u{201d} value must be an integer."]', v))
    end
    return n
  elseif fld.kind == "bool" then
    local l = v:lower()
    if l == "null" or l == "none" then return null end
    return to_bool(v)
  elseif fld.kind == "time" then
    local us = store_mod.parse_iso(v)
    if not us then
      fail(400, format("\u{201c}%s\u{201d} value has an invalid format. It must be in "
        .. "YYYY-MM-DD HH:MM[:ss[.uuuuuu]][TZ] format.", v))
    end
    return us
  end
  return v
end

local function pattern_escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local function compile_one(store, model, k, v)
  local negate, is_or = false, false
  while true do
    if k:sub(1, 5) == "not__" then negate, k = not negate, k:sub(6)
    elseif k:sub(1, 4) == "or__" then is_or, k = true, k:sub(5)
    elseif k:sub(1, 7) == "chain__" then k = k:sub(8)
    else break end
  end
  local parts = split_path(k)
  local lookup = "exact"
  if #parts > 1 and LOOKUPS[parts[#parts]] then lookup = table.remove(parts) end
  local path = resolve_path(model, parts, true)
  local last = path[#path]
  local get = getter(store, path)
  local name = parts[#parts]
  local pred
  if lookup == "isnull" then
    local want = to_bool(v)
    pred = function(r) return (get(r) == nil) == want end
  elseif lookup == "in" then
    if v == "" then fail(400, "cannot provide empty value for __in") end
    local set = {}
    for item in (v .. ","):gmatch("([^,]*),") do
      local c = convert(last, name, item)
      set[c == null and "\0null" or c] = true
    end
    pred = function(r)
      local x = get(r)
      if x == nil then return set["\0null"] == true end
      return set[x] == true
    end
  elseif lookup == "regex" or lookup == "iregex" or lookup == "search" then
    fail(400, format("the emulator does not support the %s lookup", lookup))
  else
    local textual = { iexact = true, contains = true, icontains = true, startswith = true, istartswith = true,
                      endswith = true, iendswith = true }
    if textual[lookup] then
      local needle = v
      local ci = lookup:sub(1, 1) == "i"
      if ci then needle = needle:lower() end
      local base = ci and lookup:sub(2) or lookup
      local pat = pattern_escape(needle)
      if base == "startswith" then pat = "^" .. pat elseif base == "endswith" then pat = pat .. "$"
      elseif base == "exact" then pat = "^" .. pat .. "$" end
      pred = function(r)
        local x = get(r)
        if x == nil then return false end
        x = tostring(x)
        if ci then x = x:lower() end
        return x:find(pat) ~= nil
      end
    else
      local c = convert(last, name, v)
      if lookup == "exact" then
        if c == null then
          pred = function(r) return get(r) == nil end
        else
          pred = function(r) return get(r) == c end
        end
      else
        if c == null then fail(400, "None is not allowed in a comparison") end
        local cmp = ({
          gt = function(a) return a > c end, gte = function(a) return a >= c end,
          lt = function(a) return a < c end, lte = function(a) return a <= c end,
        })[lookup]
        pred = function(r)
          local x = get(r)
          if x == nil or type(x) ~= type(c) then return false end
          return cmp(x)
        end
      end
    end
  end
  if negate then
    local p = pred
    pred = function(r) return not p(r) end
  end
  return pred, is_or
end

--- Compile the query's filters into one predicate. Raises a ListError (403/400) on refused or
-- unknown fields.
-- @tparam table store
-- @tparam table model one of M.MODELS
-- @tparam table pairs_list query pairs
-- @tparam[opt] function search predicate builder for `?search=` (nil: no-op)
-- @treturn function(rec) -> boolean
function M.compile(store, model, pairs_list, search)
  local ands, ors = {}, {}
  for _, kv in ipairs(pairs_list) do
    local k, v = kv[1], kv[2]
    if k == "search" and search and v ~= "" then
      ands[#ands + 1] = search(v)
    elseif not M.RESERVED[k] then
      local p, is_or = compile_one(store, model, k, v)
      if is_or then ors[#ors + 1] = p else ands[#ands + 1] = p end
    end
  end
  return function(r)
    for i = 1, #ands do
      if not ands[i](r) then return false end
    end
    if #ors == 0 then return true end
    for i = 1, #ors do
      if ors[i](r) then return true end
    end
    return false
  end
end

local function rank(v)
  if v == nil then return nil end
  if v == true then return 1 elseif v == false then return 0 end
  return v
end

--- Sort `items` in place by `order_by`/`order` (or the default list of field names).
-- @tparam table store
-- @tparam table model
-- @tparam table items records
-- @tparam string|nil spec comma-separated fields, `-` for descending
-- @tparam table default default field names (e.g. {"organization", "name"})
function M.order(store, model, items, spec, default)
  local keys = {}
  local names = {}
  if spec and spec ~= "" then
    for part in spec:gmatch("[^,]+") do names[#names + 1] = part end
  else
    names = default
  end
  for _, n in ipairs(names) do
    local desc = n:sub(1, 1) == "-"
    local fname = desc and n:sub(2) or n
    if fname == "?" then fail(400, "random ordering is not supported by the emulator") end
    local path = resolve_path(model, split_path(fname), false)
    keys[#keys + 1] = { get = getter(store, path), desc = desc }
  end
  if #keys == 1 and not keys[1].desc and names[1] == "id" then return end
  local decorated = {}
  for i, r in ipairs(items) do
    local ks = {}
    for j, k in ipairs(keys) do ks[j] = rank(k.get(r)) end
    decorated[i] = { r, ks }
  end
  table.sort(decorated, function(a, b)
    for j, k in ipairs(keys) do
      local x, y = a[2][j], b[2][j]
      if x ~= y then
        -- PostgreSQL: NULLs last ascending, first descending
        if x == nil then return k.desc end
        if y == nil then return not k.desc end
        if k.desc then return x > y end
        return x < y
      end
    end
    return a[1].id < b[1].id
  end)
  for i, d in ipairs(decorated) do items[i] = d[1] end
end

--- Paginate: returns the page body (an ordered object) or raises ListError 404 `Invalid page.`.
-- @tparam table opts `items` (filtered, ordered records), `serialize(rec)`, `path` (raw request
--   path), `pairs` (query pairs), `page_size`, `max_page_size`
-- @treturn table ordered JSON object
function M.page(opts)
  local params = {}
  for _, kv in ipairs(opts.pairs) do params[kv[1]] = kv[2] end
  local size = opts.page_size
  local ps = params.page_size
  if ps and ps:match("^%d+$") and tonumber(ps) > 0 then
    size = math.min(tonumber(ps), opts.max_page_size)
  end
  local items = opts.items
  local count = #items
  local num_pages = math.max(1, (count + size - 1) // size)
  local pstr = params.page
  local page
  if pstr == nil or pstr == "" then
    page = 1
  elseif pstr == "last" then
    page = num_pages
  elseif pstr:match("^%s*%d+%s*$") then
    page = tonumber(pstr)
  end
  if not page or page < 1 or page > num_pages then fail(404, "Invalid page.") end
  local results = json.arr{}
  for i = (page - 1) * size + 1, math.min(page * size, count) do
    results[#results + 1] = opts.serialize(items[i])
  end
  if params.count_disabled then
    return obj{ "results", results }
  end
  local function link(p)
    local q = {}
    for _, kv in ipairs(opts.pairs) do
      if kv[1] ~= "page" then q[#q + 1] = kv end
    end
    if p then q[#q + 1] = { "page", tostring(p) } end
    local s = codec.urlencode_sorted(q)
    return opts.path .. (s ~= "" and ("?" .. s) or "")
  end
  local nxt = page < num_pages and link(page + 1) or null
  local prev = null
  if page > 1 then prev = link(page > 2 and page - 1 or nil) end
  return obj{ "count", count, "next", nxt, "previous", prev, "results", results }
end

return M
