--- OAuth applications by name. A gateway keeps application names unique per organization
-- only, so a name may match none, one or several applications; `find` says which, or why it
-- cannot. It is a workflow on top of the C core's `s:applications` (every page, filtered by
-- the gateway) and `s:application(id)`; its errors are the core's `aap.Error`s.
-- @module aap.apps
local errors = require("aap.errors")

local M = {}

local mtype, tointeger = math.type, math.tointeger

--- The name of an application's organization, as the gateway sends it beside the id
-- (`summary_fields`), or nil.
-- @tparam table a an application, as the gateway describes it
-- @treturn ?string
function M.organization_name(a)
  local sf = type(a) == "table" and a.summary_fields
  local org = type(sf) == "table" and sf.organization
  return type(org) == "table" and type(org.name) == "string" and org.name or nil
end
local organization_name = M.organization_name

-- Does application `a` belong to `org` (an integer id, a name, or nil: any)?
local function in_org(a, org)
  if org == nil then return true end
  if mtype(org) == "integer" then return mtype(a.organization) == "integer" and a.organization == org end
  return organization_name(a) == org
end

-- opts.organization checked: an integer id (3.0 from a JSON decoder is 3), a name, or nil.
local function organization_opt(opts)
  if opts == nil then return nil end
  for k in pairs(opts) do
    if k ~= "organization" then error(("apps.find: unknown option '%s'"):format(tostring(k)), 3) end
  end
  local org = opts.organization
  if type(org) == "number" then org = tointeger(org) or false end
  if org ~= nil and mtype(org) ~= "integer" and type(org) ~= "string" then
    error("apps.find: option 'organization' must be an integer id or a name", 3)
  end
  return org
end

--- Exactly one application, by name (across every page) or by id.
-- A name is looked up with the gateway's `name` filter (and `organization`, given an id);
-- the answer is filtered again on both, since a gateway may ignore a filter.
-- @tparam Session s a session (`aap.connect`)
-- @tparam string|int name_or_id the application's name, or its id (`s:application(id)`)
-- @tparam[opt] table opts `organization`: an id, or a name, to tell apart applications of the
--   same name in several organizations
-- @treturn[1] table the application (the gateway's object)
-- @return[2] nil
-- @treturn[2] aap.Error `not_found` (no application of that name, in that organization), or
--   `ambiguous` (several: `err.candidates` is `{ {id =, name =, organization =,
--   organization_name =}, ... }`), or whatever the list call failed with
-- @raise on a name that is not a string, an id that is not an integer, or a bad option
-- @usage local app = assert(apps.find(s, "RHDH Integration", { organization = "Default" }))
function M.find(s, name_or_id, opts)
  if opts ~= nil and type(opts) ~= "table" then error("apps.find: options must be a table", 2) end
  if type(name_or_id) == "number" then return s:application(name_or_id) end
  if type(name_or_id) ~= "string" then
    error("apps.find: application name (string) or id (integer) expected", 2)
  end
  local org = organization_opt(opts)
  local name = name_or_id
  local all, err = s:applications({ name = name, organization = mtype(org) == "integer" and org or nil })
  if not all then return nil, err end
  local matches = {}
  for _, a in ipairs(all) do
    if a.name == name and in_org(a, org) then matches[#matches + 1] = a end
  end
  if #matches == 1 then return matches[1] end
  -- the list has answered, so the flavor is known: no request
  local path = (s:flavor() == "controller" and "/api/v2/" or "/api/gateway/v1/") .. "applications/"
  if #matches == 0 then
    local msg = org == nil and ("no application named '%s'"):format(name)
      or ("no application named '%s' in organization %s"):format(name, tostring(org))
    return nil, errors.new("not_found", msg, { method = "GET", path = path })
  end
  err = errors.new("ambiguous", ("%d applications are named '%s': choose one by organization or id")
    :format(#matches, name), { method = "GET", path = path })
  err.candidates = {}
  for i, a in ipairs(matches) do
    err.candidates[i] = { id = a.id, name = a.name, organization = a.organization,
                          organization_name = organization_name(a) }
  end
  return nil, err
end

return M
