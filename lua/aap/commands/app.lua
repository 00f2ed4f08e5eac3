--- `aap app list|show|create`: the OAuth applications application tokens belong to.
-- The library modules are required inside the handlers (see aap.commands.token).
-- @module aap.commands.app
local common = require("aap.commands.common")

local M = {}

local HEADERS = { "ID", "NAME", "ORGANIZATION", "CLIENT_ID", "CLIENT_TYPE", "GRANT_TYPE" }

local organization_name, org_id, columns = common.organization_name, common.org_id, common.columns

local function row(a)
  return { a.id, a.name or "", organization_name(a) or a.organization or "", a.client_id or "",
           a.client_type or "", a.authorization_grant_type or "" }
end

local APP_FIELDS = { "id", "name", "organization", "organization_name", "client_id", "client_type",
                     "authorization_grant_type", "description", "redirect_uris" }

-- An application in a report: every field (null when unknown), never its client secret.
local function public(a)
  local o = {}
  for k, v in pairs(a) do o[k] = v end
  o.organization_name = organization_name(a)
  return require("aap.report").object(APP_FIELDS, o)
end

local function list(args, ctx)
  local s = ctx:connect()
  local filters = { organization = org_id(ctx, s, args.organization), name__icontains = args.name_contains }
  local apps = ctx:check(s:applications(filters))
  if common.json_output(args) then
    local report = require("aap.report")
    local items = report.list()
    for i, a in ipairs(apps) do items[i] = public(a) end
    ctx:out(report.encode(items))
  else
    local rows = {}
    for i, a in ipairs(apps) do rows[i] = row(a) end
    ctx:out(columns(rows, HEADERS))
  end
  return 0
end

local function show(args, ctx)
  local s = ctx:connect()
  local key = args.application:match("^%d+$") and tonumber(args.application) or args.application
  local app = ctx:check(require("aap.apps").find(s, key, { organization = org_id(ctx, s, args.organization) }))
  if common.json_output(args) then
    ctx:out(require("aap.report").encode(public(app)))
  else
    ctx:out(columns({ row(app) }, HEADERS))
  end
  return 0
end

local function create(args, ctx)
  local workflow = require("aap.workflow")
  local path = args.env_file
  if path then
    local doc = ctx:check(workflow.read_env(path, { "AAP_CLIENT_ID", "AAP_CLIENT_SECRET" }))
    -- The file's client pairs with its refresh token: overwritten, the secret (shown once) is
    -- lost and the next refresh fails. Refused before the application exists.
    if (doc:get("AAP_CLIENT_ID") or "") ~= "" then
      ctx:usage("%s already holds AAP_CLIENT_ID (another application's client, which its refresh token needs); "
        .. "write the new application's client to another --env-file, or remove AAP_CLIENT_ID and "
        .. "AAP_CLIENT_SECRET from %s first", path, path)
    end
  end
  local s = ctx:connect()
  local app = ctx:check(s:create_application({
    name = args.name, organization = org_id(ctx, s, args.organization),
    client_type = args.client_type, authorization_grant_type = args.grant_type,
    redirect_uris = args.redirect_uris or "", description = args.description or "",
  }))
  local values = { { "AAP_CLIENT_ID", app.client_id } }
  if app.client_secret and app.client_secret ~= "$encrypted$" then
    values[2] = { "AAP_CLIENT_SECRET", app.client_secret }
  end
  if path then
    local ok, err = workflow.save(path, values)
    if not ok then
      ctx:warn("application id=" .. app.id .. " was created, but its client secret could not be saved; " ..
        "delete and re-create it")
      ctx:fail(err)
    end
  end
  if args.format == "json" then
    local out = public(app)
    out.client_secret = values[2] and values[2][2] or nil
    ctx:out(require("cjson").encode(out))
  elseif args.format == "env" then
    io.stdout:write(require("aap.export").format("env", values, {}))
  end
  ctx:info(("created application id=%d %q%s"):format(app.id, app.name,
    path and (" -> " .. path .. " (AAP_CLIENT_ID" .. (values[2] and ", AAP_CLIENT_SECRET" or "") .. ")") or ""))
  if not path and not args.format then
    ctx:warn("the client secret is shown only once and was not saved: pass --env-file or --format")
  end
  return 0
end

function M.register(groups, cli)
  local app = groups.app
  cli.command(app, "list", "List applications (all pages).", function(l)
    l:option("--organization", "Organization name or id.")
    l:option("--name-contains", "Case-insensitive part of the name.")
    common.output_option(l)
    cli.connection_options(l)
  end, list)

  cli.command(app, "show", "Show one application, by name (unique) or id.", function(sh)
    sh:argument("application", "Name or id.")
    sh:option("--organization", "Organization name or id, when the name is not unique.")
    common.output_option(sh)
    cli.connection_options(sh)
  end, show)

  cli.command(app, "create", "Create an OAuth application (its client secret is shown once).", function(c)
    c:option("--name", "Application name."):args(1):count(1)
    c:option("--organization", "Organization name or id."):default("Default")
    c:option("--client-type", "confidential or public."):choices({ "confidential", "public" })
      :default("confidential")
    c:option("--grant-type", "password or authorization-code."):choices({ "password", "authorization-code" })
      :default("password")
    c:option("--redirect-uris", "Space-separated redirect URIs.")
    c:option("--description", "Description.")
    c:option("--env-file", "Write AAP_CLIENT_ID and AAP_CLIENT_SECRET to this env file.")
    c:option("--format", "Print the client to stdout: env or json."):choices({ "env", "json" })
    cli.connection_options(c)
    cli.quiet_option(c)
  end, create)
end

return M
