--- `aap token create|refresh|list|show|revoke`: the lesson's workflows from the shell.
-- The library modules (and through them the C core) are required inside the handlers:
-- building the parser, for any command or --help, loads none of them.
-- @module aap.commands.token

local common = require("aap.commands.common")

local M = {}

local FORMATS = { "env", "shell", "json", "k8s-secret" }

local iso, iso_or_nil, columns = common.iso, common.iso_or_nil, common.columns

--- One line about a token, without its value.
function M.summary(verb, tok, where)
  local s = ("%s %s token id=%s scope=%s expires=%s"):format(verb, tok.kind or "?", tostring(tok.id or "?"),
    tostring(tok.scope or "?"), iso(tok.expires))
  if where then s = s .. " -> " .. where end
  return s
end

local function output_options(cmd, with_env)
  if with_env ~= false then
    cmd:option("--env-file", "Env file to write (default: AAP_ENV_FILE, else .env; not with --format alone).")
  end
  cmd:option("--format", "Print the token to stdout: env, shell (export lines), json, or k8s-secret.")
    :choices(FORMATS)
  cmd:flag("--show-token", "Also print the token (KEY=value) on stdout.")
  cmd:option("--key", "Env key for the access token (default AAP_PAT for a PAT, AAP_TOKEN otherwise).")
  cmd:option("--refresh-key", "Env key for the refresh token (default REFRESH_TOKEN).")
  cmd:option("--secret-name", "metadata.name for --format k8s-secret."):default("aap-token")
  cmd:option("--namespace", "metadata.namespace for --format k8s-secret.")
end

--- Where the token goes: the env file path (or nil) and the stdout format (or nil).
local function destinations(args)
  local fmt = args.format
  if not fmt and args.show_token then fmt = "env" end
  local path = args.env_file
  if not path and not args.format then
    path = os.getenv("AAP_ENV_FILE")
    if not path or path == "" then path = ".env" end
  end
  return path, fmt
end

local function keys_for(args, kind)
  local workflow = require("aap.workflow")
  local key = args.key or (kind == "personal" and workflow.KEYS.pat or workflow.KEYS.token)
  return key, args.refresh_key or workflow.KEYS.refresh
end

local function values_for(tok, key, rkey)
  local values = { { key, tok.token } }
  if tok.refresh_token then values[2] = { rkey, tok.refresh_token } end
  return values
end

--- One token of a create: kept when the file's key holds a working one aap made (or another
-- run wrote the key while this one waited), else made, verified and saved. Returns the
-- values to print and the token (or record) they belong to; s and conn are opened on first use.
-- --application and --organization as the calls take them: an id when all digits, else a name.
-- The application named or numbered on the command line (aap.apps: one, else not_found or
-- ambiguous with the candidates).
local function find_app(s, app, org)
  return require("aap.apps").find(s, app, { organization = org })
end

local function app_and_org(args)
  local app, org = args.application, args.organization
  if app and app:match("^%d+$") then app = tonumber(app) end
  if org and org:match("^%d+$") then org = tonumber(org) end
  return app, org
end

local function create_one(args, ctx, job, sess)
  local workflow, state = require("aap.workflow"), require("aap.state")
  local path, key, rkey, doc = job.path, job.key, job.rkey, job.doc
  if job.changed then return M.kept_concurrent(ctx, path, key, rkey, doc) end
  if not sess.s then sess.s, sess.conn = ctx:connect() end
  local s, conn = sess.s, sess.conn
  local app, org = app_and_org(args)
  if job.kind ~= "application" then app = nil end
  local held = path and M.held_token(ctx, s, conn, path, doc, key, job.kind, app, org) or nil
  if held and not args.replace then
    -- Creating again would leave the file's token live and unused: one token per key.
    return M.kept(ctx, path, key, rkey, doc, held, "already holds a working token aap made")
  end
  local client_id
  if path and job.kind == "application" then
    -- The application's client_id goes into the file with its token, so that `aap token
    -- refresh` finds it; looked up now (workflow.create then uses it, no second request) to
    -- refuse, before anything is made, a file that holds another application's.
    local a = sess.app or ctx:check(find_app(s, app, org))
    app, client_id = a, M.client_id_for(ctx, path, doc, a)
  end
  local description = args.description or ("aap " .. os.date("!%Y-%m-%d"))
  local marker
  if path then
    -- Write-ahead: should the answer be lost, the token is found again by this marker.
    marker = workflow.new_marker()
    description = description:sub(1, 200) .. " " .. marker
    ctx:check(workflow.begin_create(s, path, key, marker, job.kind, doc and doc:get(key)))
  end
  local tok, err, warning = workflow.create(s, conn, {
    application = app, organization = org, scope = args.scope, verify = not args.no_verify,
    description = description, marker = marker,
  })
  if not tok and path and not err.uncertain then workflow.end_create(path, key) end
  ctx:check(tok, err)
  if warning then ctx:warn(warning) end
  local values = values_for(tok, key, rkey)
  local saved = values
  if client_id then
    saved = { table.unpack(values) }
    saved[#saved + 1] = { M.CLIENT_ID, client_id }
  end
  local replaced
  if path then
    local st = state.load(path)
    replaced = st and st.keys[key] or nil
    -- The id comes from the create answer; with the value's fingerprint it proves later which
    -- token the file holds (revoke, rotate, prune --keep-env-file).
    local records = { [key] = state.record(tok, { refresh_key = tok.refresh_token and rkey or nil,
                                                  fp = state.fingerprint(tok.token) }) }
    local ok, werr = workflow.save(path, saved, records)
    if not ok then
      -- Nobody has the new token: delete it rather than leave it behind on the server.
      local dok = s:delete_token(tok.id)
      if dok then workflow.end_create(path, key) end
      ctx:fail(werr.code or "io", ctx:message(werr) ..
        (dok and " (the new token was deleted again)" or (" (the new token id=" .. tok.id ..
        " could not be deleted; revoke it with `aap token revoke " .. tok.id .. "`)")))
    end
  end
  if held and held.id ~= tok.id then
    -- --replace: the file no longer holds the old token, which aap made: revoke it.
    local ok, derr = s:delete_token(held.id)
    if ok or (derr and derr.code == "not_found") then
      ctx:info(("revoked the token %s held before, id=%d"):format(key, held.id))
    else
      ctx:warn(("the token %s held before, id=%d, could not be revoked (%s): revoke it with `aap token revoke %d`")
        :format(key, held.id, ctx:message(derr), held.id))
    end
  elseif replaced and replaced.id and replaced.id ~= tok.id then
    ctx:info(("%s held token id=%d, which may still work: revoke it with `aap token revoke %d` once nothing "
      .. "uses it (or let `aap token rotate` do such swaps)"):format(key, replaced.id, replaced.id))
  end
  local summary = M.summary("created", tok, path and (path .. " (" .. key ..
    (tok.refresh_token and (", " .. rkey) or "") .. (client_id and (", " .. M.CLIENT_ID) or "") .. ")"))
  if job.fmt then ctx:info(summary) elseif not args.quiet then ctx:out(summary) end
  return values, tok
end

--- The env key of the OAuth client id, recorded with an application token for `token refresh`.
M.CLIENT_ID = "AAP_CLIENT_ID"

--- The client id to record in an env file with a token of application `a`: its client_id when
-- the file holds none, nil when it holds that one already. A file holding another
-- application's is refused (exit 1, before anything is made): `token refresh` uses one
-- client per file, and the client secret beside it, if any, is that other application's and
-- cannot be had again, so aap neither overwrites it nor leaves the file's refresh token
-- paired with the wrong client.
function M.client_id_for(ctx, path, doc, a)
  local have = doc:get(M.CLIENT_ID)
  if type(a.client_id) ~= "string" or a.client_id == "" then
    ctx:warn(("the gateway gave no client_id for application id=%s: %s was not recorded; `aap token refresh` "
      .. "needs it in the environment"):format(tostring(a.id), M.CLIENT_ID))
    return nil
  end
  if have == nil or have == "" then return a.client_id end
  if have == a.client_id then return nil end
  ctx:fail("usage", ("%s holds the %s of another application, not of %q (id=%s): `aap token "
    .. "refresh` uses the one OAuth client of its env file; remove %s (and AAP_CLIENT_SECRET, if it goes with "
    .. "it) from %s, or use another --env-file; nothing was created"):format(path, M.CLIENT_ID, tostring(a.name),
    tostring(a.id), M.CLIENT_ID, path))
end

-- The keys a create writes: lines of them that not every reader could read are refused first.
local function create_keys(args, kinds)
  local keys = {}
  for _, kind in ipairs(kinds) do
    local key, rkey = keys_for(args, kind)
    keys[#keys + 1] = key
    if kind == "application" then keys[#keys + 1] = rkey end
  end
  return keys
end

local function create(args, ctx)
  local workflow = require("aap.workflow")
  local path, fmt = destinations(args)
  local kinds = {}
  if args.pat or not args.application then kinds[#kinds + 1] = "personal" end
  if args.application then kinds[#kinds + 1] = "application" end
  if #kinds == 2 then
    if args.key or args.refresh_key then
      ctx:usage("--key and --refresh-key name one token's keys: not with --pat and --application together")
    end
    if fmt == "json" then
      ctx:usage("--format json describes one token: not with --pat and --application together")
    end
  end
  common.check_output_flags(ctx, args)
  local first = path and ctx:check(workflow.read_env(path, create_keys(args, kinds))) -- before anything is made
  local lock, doc
  if path then
    lock, doc = workflow.hold(path, first)
    ctx:check(lock, doc)
  end
  local sess, all, last = {}, {}, nil
  if args.application and (#kinds == 2 or (path and (doc:get(M.CLIENT_ID) or "") ~= "")) then
    -- The application is found before anything is made: an unknown or ambiguous name, or a
    -- file holding another application's client id, costs no PAT.
    sess.s, sess.conn = ctx:connect()
    local app, org = app_and_org(args)
    sess.app = ctx:check(find_app(sess.s, app, org))
    if path then M.client_id_for(ctx, path, doc, sess.app) end
  end
  -- The PAT first, then the application token (the lesson's order), on one connection.
  local made = {}
  for _, kind in ipairs(kinds) do
    local key, rkey = keys_for(args, kind)
    local job = { kind = kind, key = key, rkey = rkey, path = path, doc = doc, fmt = fmt,
                  changed = path ~= nil and (first:get(key) or "") ~= (doc:get(key) or "") }
    local ok, values, tok = pcall(create_one, args, ctx, job, sess)
    if not ok then
      -- Printed only at the end: a token made before this failure went nowhere. Deleted,
      -- rather than left live with its value never shown.
      for _, t in ipairs(path and {} or made) do
        if sess.s and sess.s:delete_token(t.id) then
          ctx:info(("deleted the %s token id=%d made before the failure (it was printed nowhere)"):format(t.kind,
            t.id))
        else
          ctx:warn(("the %s token id=%d made before the failure was printed nowhere and could not be deleted: "
            .. "revoke it with `aap token revoke %d`"):format(t.kind, t.id, t.id))
        end
      end
      error(values, 0)
    end
    if tok and tok.token and math.type(tok.id) == "integer" then made[#made + 1] = tok end
    for _, kv in ipairs(values) do all[#all + 1] = kv end
    last = tok
    if path and #kinds == 2 then doc = ctx:check(workflow.read_env(path)) end
  end
  if fmt then common.print_format(ctx, fmt, all, last) end
  if lock then lock:unlock() end
  return 0
end

--- The token an env file's key holds when aap made it (its id recorded with the value's
-- fingerprint), it is of the kind asked for (and the application, when given by id), and it
-- still works; else nil.
function M.held_token(ctx, s, conn, path, doc, key, kind, app, org)
  local workflow, state = require("aap.workflow"), require("aap.state")
  local value = doc:get(key)
  if not value or value == "" then return nil end
  local rec = (ctx:check(state.load(path)).keys[key]) or {}
  if rec.fp == nil or rec.fp ~= state.fingerprint(value) or rec.kind ~= kind then return nil end
  if kind == "application" then
    local want = app
    if type(app) ~= "number" then
      local a = ctx:check(find_app(s, app, org))
      want = a.id
    end
    if rec.application ~= want then return nil end
  end
  if not workflow.verify(conn, value) then return nil end
  return rec
end

--- No token is made: the file's key keeps the one it holds (made by aap and working, or
-- written by another aap run while this one waited for the file). Returns its values (to
-- print when asked) and its record.
function M.kept(ctx, path, key, rkey, doc, rec, why)
  rec = rec or (ctx:check(require("aap.state").load(path)).keys[key]) or {}
  local values = { { key, doc:get(key) } }
  if doc:get(rkey) and rec.kind == "application" then values[2] = { rkey, doc:get(rkey) } end
  local line = ("kept %s token id=%s in %s (%s): %s %s; created none (--replace makes a new one and "
    .. "revokes it)"):format(tostring(rec.kind or "?"), tostring(rec.id or "?"), path, key, key, why)
  if ctx.args.format or ctx.args.show_token or ctx.args.quiet then ctx:info(line) else ctx:out(line) end
  return values, rec
end

--- A create that waited for the env file while another aap run wrote the same key.
function M.kept_concurrent(ctx, path, key, rkey, doc)
  return M.kept(ctx, path, key, rkey, doc, nil, "was written by another aap run while this one waited")
end

local function refresh(args, ctx)
  local workflow, state = require("aap.workflow"), require("aap.state")
  local path = args.env_file or os.getenv("AAP_ENV_FILE") or ".env"
  local key, rkey = keys_for(args, "application")
  common.check_output_flags(ctx, args)
  local doc = ctx:check(workflow.read_env(path, { key, rkey }))
  -- Held to the end: a refresh spends the pair, so nothing else may write the file meanwhile
  -- (a rotation's new token would be overwritten unrecorded).
  local lock
  lock, doc = workflow.hold(path, doc)
  ctx:check(lock, doc)
  local rt = doc:get(rkey)
  if not rt or rt == "" then ctx:usage("%s holds no %s to refresh with", path, rkey) end
  local client = ctx:check(require("aap.config").client(doc))
  local conn = ctx:conn({ anonymous = true })
  -- The gateway deletes the old token the moment it answers: make sure the file can be replaced first.
  ctx:check(workflow.preflight(path, doc))
  local tok, err = workflow.refresh(conn, { refresh_token = rt, client_id = client.client_id,
                                           client_secret = client.client_secret, scope = args.scope })
  if not tok and err and err.code == "expired" then
    ctx:fail("expired", "the refresh token in " .. path ..
      " has expired; create a new token with `aap token create --application NAME`")
  end
  if not tok and err and workflow.refresh_spent(conn, err, doc:get(key)) then
    -- The real gateway answers 500 when the access token was deleted (API doc §17): final.
    ctx:fail("expired", ("the gateway refused the refresh (%s) and %s in %s no longer works, "
      .. "so its refresh token is spent; create a new token with `aap token create --application NAME "
      .. "--env-file %s`"):format(ctx:message(err), key, path, path))
  end
  if not tok and err and err.oauth_error == "invalid_client" then
    -- Nothing was spent: the gateway refused the client before looking at the refresh token.
    ctx:fail("auth", ("the gateway refused the OAuth client (invalid_client, HTTP %s): %s; "
      .. "the client secret is shown once, when the application is created (`aap app create --env-file` "
      .. "saves it), else regenerate it in the AAP UI (Access Management > OAuth Applications > the "
      .. "application); nothing was refreshed"):format(tostring(err.status or "?"), client.client_secret
      and "check AAP_CLIENT_ID and AAP_CLIENT_SECRET (environment, else " .. path .. ") are that application's"
      or "no client secret was given: set AAP_CLIENT_SECRET in the environment or in " .. path))
  end
  ctx:check(tok, err)
  local values = values_for(tok, key, rkey)
  -- Using the new token proves it works and, through its last_used, which token id it is.
  local found, verr = workflow.identify(conn, tok.token)
  if found then
    tok.id, tok.application, tok.user, tok.created = found.id, found.application, found.user, found.created
  end
  local old = (ctx:check(state.load(path)).keys[key]) or {}
  local record = state.record(tok, { refresh_key = rkey, application = tok.application or old.application,
                                     fp = state.fingerprint(tok.token) })
  -- A file written before aap recorded AAP_CLIENT_ID gets the client id the gateway has just
  -- accepted, so that the next refresh needs only the secret (a value no reader would take
  -- literally is not added: the refreshed pair must be saved whatever).
  local saved = values
  local have_id = doc:get("AAP_CLIENT_ID")
  if (not have_id or have_id == "") and require("aap.env").portable(client.client_id) then
    saved = { table.unpack(values) }
    saved[#saved + 1] = { "AAP_CLIENT_ID", client.client_id }
  end
  local ok, werr = workflow.save(path, saved, { [key] = record })
  if not ok then
    ctx:fail("io", "refreshed, but could not write " .. path .. ": " .. ctx:message(werr) ..
      "; the old token no longer works")
  end
  local fmt = args.format or (args.show_token and "env") or nil
  if fmt then common.print_format(ctx, fmt, values, tok) end
  local code = 0
  if not found and verr.code ~= "auth" then
    -- It works but cannot be told apart from the user's other tokens in use: saved, no id.
    ctx:warn("the refreshed token was saved and works, but its id is unknown (" .. ctx:message(verr) .. ")")
  elseif not found then
    ctx:warn("the refreshed token was saved but did not pass the check: " .. ctx:message(verr))
    code = ctx:exit_code(verr)
  end
  ctx:info(M.summary("refreshed", tok, path))
  lock:unlock()
  return code
end

-- apps: application id -> { name =, organization =, organization_name = } (see app_names).
local function token_row(t, apps)
  local a = t.application and apps and apps[t.application] or {}
  return { t.id, t.kind, t.user or "", a.name or t.application or "", a.organization_name or a.organization or "",
           t.scope or "", iso(t.created), iso(t.expires), iso(t.last_used), t.description or "" }
end

local TOKEN_HEADERS = { "ID", "KIND", "USER", "APP", "ORGANIZATION", "SCOPE", "CREATED", "EXPIRES", "LAST_USED",
                        "DESCRIPTION" }

local TOKEN_FIELDS = { "id", "kind", "user", "application", "application_name", "organization",
                       "organization_name", "scope", "description", "created", "expires", "last_used" }

-- A token in a report: every field (null when unknown); the gateway never shows its value.
local function public_token(t, apps)
  local a = t.application and apps and apps[t.application] or {}
  return require("aap.report").object(TOKEN_FIELDS, {
    id = t.id, kind = t.kind, user = t.user, application = t.application, application_name = a.name,
    organization = a.organization, organization_name = a.organization_name, scope = t.scope,
    description = t.description, created = iso_or_nil(t.created),
    expires = iso_or_nil(t.expires), last_used = iso_or_nil(t.last_used) })
end

-- The names of the applications these tokens belong to, and of their organizations: one
-- listing of the applications, when a token has one. A user who may not list applications
-- (the gateway answers 403) sees the ids alone.
local function app_names(s, tokens, filters)
  local any
  for _, t in ipairs(tokens) do any = any or t.application end
  if not any then return {} end
  local list = s:applications(filters or {})
  local apps = {}
  for _, a in ipairs(list or {}) do
    apps[a.id] = { name = a.name, organization = a.organization,
                   organization_name = common.organization_name(a) }
  end
  return apps
end

local function list(args, ctx)
  local s = ctx:connect()
  local filters = {}
  local org = args.organization
  if org and org:match("^%d+$") then org = tonumber(org) end
  local in_org   -- with --organization alone: the ids of its applications
  if args.application then
    local app = args.application
    if not app:match("^%d+$") then
      app = ctx:check(find_app(s, app, org)).id
    end
    filters.application = tonumber(app)
  elseif org then
    if args.kind == "personal" then ctx:usage("--organization lists application tokens: not with --kind personal") end
    in_org = {}
    local id = common.org_id(ctx, s, args.organization)
    for _, a in ipairs(ctx:check(s:applications({ organization = id }))) do in_org[a.id] = true end
    filters.application__isnull = "false"
  end
  if args.user then
    if not args.user:match("^%d+$") then ctx:usage("--user takes a user id (a number), not %q", args.user) end
    if args.all_users then ctx:usage("give --user or --all-users, not both") end
    filters.user = args.user
  else
    -- A gateway lists every user's tokens to anyone (API doc §17): by default, the caller's
    -- own; every user's only for a superuser, who can act on them.
    local me = ctx:check(s:me())
    if not args.all_users then
      filters.user = tostring(me.id)
    elseif not me.is_superuser then
      ctx:fail("forbidden", ("--all-users is for superusers (%s is not one)"):format(me.username))
    end
  end
  if args.kind == "personal" then filters.application__isnull = "true" end
  if args.kind == "application" then filters.application__isnull = "false" end
  local tokens = {}
  local only = tonumber(filters.user)
  for tok, err in s:each_token(filters) do
    ctx:check(tok, err)
    if only and tok.user and tok.user ~= only then goto continue end
    if in_org and not in_org[tok.application] then goto continue end
    tokens[#tokens + 1] = tok
    ::continue::
  end
  local apps = app_names(s, tokens)
  local rows, items = {}, {}
  for i, tok in ipairs(tokens) do
    rows[i] = token_row(tok, apps)
    items[i] = public_token(tok, apps)
  end
  if common.json_output(args) then
    ctx:out(require("aap.report").encode(require("aap.report").list(items)))
  else
    ctx:out(columns(rows, TOKEN_HEADERS))
  end
  return 0
end

local function show(args, ctx)
  local s = ctx:connect()
  local id = tonumber(args.id)
  local tok = ctx:check(s:token(id))
  local apps = app_names(s, { tok })
  if common.json_output(args) then
    ctx:out(require("aap.report").encode(public_token(tok, apps)))
  else
    ctx:out(columns({ token_row(tok, apps) }, TOKEN_HEADERS))
  end
  return 0
end

local function revoke(args, ctx)
  local workflow, state = require("aap.workflow"), require("aap.state")
  if args.id and args.env_file then ctx:usage("give a token id or --env-file, not both") end
  if not args.id and not args.env_file then ctx:usage("give a token id or --env-file PATH") end
  local s, conn = ctx:connect()
  if args.id then
    local id = tonumber(args.id)
    ctx:check(s:delete_token(id))
    ctx:info(("revoked token id=%d"):format(id))
    return 0
  end
  local path = args.env_file
  local doc = ctx:check(workflow.read_env(path))
  local lock
  lock, doc = workflow.hold(path, doc)
  ctx:check(lock, doc)
  local key = args.key
  if not key then
    key = doc:get(workflow.KEYS.token) and workflow.KEYS.token or workflow.KEYS.pat
  end
  local value = doc:get(key)
  if not value or value == "" then ctx:usage("%s holds no %s", path, key) end
  local st = ctx:check(state.load(path))
  local rec = st.keys[key] or {}
  local rkey = args.refresh_key or rec.refresh_key or workflow.KEYS.refresh
  -- Only a token proven to be the file's value is deleted: by the id recorded with the value's
  -- fingerprint, else by using the value (its last_used moves).
  local id, ierr = workflow.prove_id(conn, value, rec)
  if not id and ierr and ierr.code == "auth" then
    ctx:info(("%s in %s no longer works; removing it from the file"):format(key, path))
  elseif not id then
    ctx:fail(ierr and ierr.code or "not_found", ("cannot prove which token %s in %s is (%s); "
      .. "nothing was revoked. Find its id with `aap token list` and run `aap token revoke ID`")
      :format(key, path, ctx:message(ierr)))
  end
  if id then
    local ok, derr = s:delete_token(id)
    if not ok and not (derr and derr.code == "not_found") then ctx:fail(derr) end
  end
  local remove = { key }
  local refresh_value = doc:get(rkey)
  if refresh_value and (rec.kind == "application" or key == workflow.KEYS.token) then
    remove[2] = rkey
    -- DELETE leaves the refresh token alive (API doc 5.6): revoke it too, when the client is known.
    local client = require("aap.config").client(doc)
    if client then
      local ok, rerr = s:revoke({ token = refresh_value, client_id = client.client_id,
                                  client_secret = client.client_secret, token_type_hint = "refresh_token" })
      if not ok then ctx:warn("could not revoke the refresh token: " .. ctx:message(rerr)) end
    else
      ctx:info("the refresh token was not revoked (no AAP_CLIENT_ID); it stops working after its lifetime")
    end
  end
  ctx:check(workflow.save(path, {}, {}, remove))
  lock:unlock()
  ctx:info(("revoked token id=%s; removed %s from %s"):format(tostring(id or rec.id or "?"),
    table.concat(remove, ", "), path))
  return 0
end

--- Registers the token sub-commands.
function M.register(groups, cli)
  local token = groups.token
  cli.command(token, "create", "Create a PAT, or an application token with --application; verify it; save it.",
    function(c)
      c:option("--application", "Application name or id: create an application token (superuser only).")
      c:flag("--pat", "A PAT (the default without --application); with --application, both: the lesson's "
        .. "whole job in one run, on one connection.")
      c:option("--organization", "Organization name or id, when the application's name is not unique.")
      c:option("--description", "Token description.")
      c:option("--scope", "read or write (default write)."):choices({ "read", "write" })
      c:flag("--no-verify", "Skip the check that the new token works (GET me/ with it).")
      c:flag("--replace", "Make a new token even when the env file's key holds a working one aap made; "
        .. "revoke that one.")
      output_options(c)
      cli.connection_options(c)
      cli.quiet_option(c)
    end, create)

  cli.command(token, "refresh", "Refresh an application token with its refresh token; write the new pair.",
    function(r)
      r:option("--env-file", "Env file holding the refresh token (default: AAP_ENV_FILE, else .env).")
      r:option("--scope", "Ask for a narrower scope."):choices({ "read", "write" })
      output_options(r, false)
      cli.connection_options(r)
      cli.quiet_option(r)
    end, refresh)

  cli.command(token, "list", "List tokens (values are never shown by the gateway).", function(l)
    l:option("--application", "Only this application's tokens (name or id).")
    l:option("--organization", "Only tokens of this organization's applications (name or id); with "
      .. "--application, the organization whose application of that name is meant.")
    l:option("--user", "Only this user's tokens (id; default: your own).")
    l:flag("--all-users", "Every user's tokens (superusers only; default: your own).")
    l:option("--kind", "personal or application."):choices({ "personal", "application" })
    common.output_option(l)
    cli.connection_options(l)
  end, list)

  cli.command(token, "show", "Show one token.", function(sh)
    sh:argument("id", "Token id."):convert(common.id_arg("a token id"))
    common.output_option(sh)
    cli.connection_options(sh)
  end, show)

  cli.command(token, "revoke", "Revoke (DELETE) a token by id, or the one in an env file.", function(rv)
    rv:argument("id", "Token id."):args("?"):convert(common.id_arg("a token id",
      " (the token in an env file is revoked with --env-file PATH)"))
    rv:option("--env-file", "Revoke the token in this env file and remove it from the file.")
    rv:option("--key", "Env key of the token (default AAP_TOKEN if present, else AAP_PAT).")
    rv:option("--refresh-key", "Env key of the refresh token (default REFRESH_TOKEN).")
    cli.connection_options(rv)
    cli.quiet_option(rv)
  end, revoke)
end

return M
