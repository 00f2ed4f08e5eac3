--- `aap token rotate` and `aap token prune`: the command-line face of `aap.rotate`.
-- aap.rotate (with aap.policy), aap.env, aap.state and the C core are required inside the
-- handlers: no other command loads them (see aap.commands.token).
-- @module aap.commands.rotate
local common = require("aap.commands.common")

local M = {}

local iso, iso_or_nil = common.iso, common.iso_or_nil

-- Errors of the engine, made fit for the CLI's exit codes.
local function cli_error(e)
  if type(e) == "table" and e.code == "busy" then
    return require("aap.errors").new("local", e.message, { plain = true })
  end
  return e
end

--- Exit code of a run that rotated (or, with --dry-run, would rotate), with
-- --detailed-exit-code; 0 then means nothing was due.
M.EXIT_ROTATED = 6

local TOKEN_FIELDS = { "id", "kind", "application", "user", "created", "expires", "last_used" }

-- A token record for a report: never its value.
local function token_view(r)
  if not r then return nil end
  return require("aap.report").object(TOKEN_FIELDS, {
    id = r.id, kind = r.kind, application = r.application, user = r.user,
    created = iso_or_nil(r.created), expires = iso_or_nil(r.expires),
    last_used = iso_or_nil(r.last_used) })
end

local ROTATE_FIELDS = { "env_file", "key", "decision", "code", "reason", "dry_run", "rotated", "strategy",
                        "fallback", "old", "new", "revoked", "waiting", "vetoed", "held", "hook_failed", "notes" }

-- The run as a report: the decision and its reason, the tokens by id, no value.
local function rotate_report(path, res)
  local report = require("aap.report")
  local decision = res.decision
  if decision == "rotate" then decision = res.dry_run and "would_rotate" or "rotated" end
  local waiting = report.list()
  for i, w in ipairs(res.waiting or {}) do waiting[i] = report.object({ "id", "reason" }, w) end
  local revoked = report.list()
  for i, id in ipairs(res.revoked or {}) do revoked[i] = id end
  local notes = report.list()
  for i, n in ipairs(res.notes or {}) do notes[i] = n end
  return report.object(ROTATE_FIELDS, {
    env_file = path, key = res.key, decision = decision, code = res.code, reason = res.reason,
    dry_run = res.dry_run and true or false, rotated = res.rotated and not res.dry_run and true or false,
    strategy = res.strategy, fallback = res.fallback and true or false, old = token_view(res.old),
    new = token_view(res.new), revoked = revoked, waiting = waiting, vetoed = res.vetoed, held = res.held,
    hook_failed = res.hook_failed, notes = notes,
  })
end

local function rotate_cmd(args, ctx)
  local rotate, envfile, state = require("aap.rotate"), require("aap.env"), require("aap.state")
  local config = require("aap.config")
  local path = args.env_file or os.getenv("AAP_ENV_FILE")
  if not path or path == "" then path = ".env" end
  if args.key and not envfile.valid_key(args.key) then ctx:usage("%q is not a valid env key", args.key) end
  common.check_output_flags(ctx, args) -- before anything changes
  if args.format and args.output == "json" then
    ctx:usage("--format prints the token and --output json the report: choose one")
  end
  -- Without credentials, rotate authenticates with the token it rotates.
  local conn = config.has_credentials(args) and ctx:conn() or ctx:conn({ anonymous = true })
  local res, e = rotate.run({
    conn = conn, client = config.client, env_file = path, key = args.key, refresh_key = args.refresh_key,
    policy = args.policy,
    dry_run = args.dry_run, warn = function(m) ctx:warn(m) end,
    log = function(policy, m) ctx:policy_log(policy, m) end,
  })
  if not res then ctx:fail(cli_error(e)) end
  local json = args.output == "json"
  local say = (args.format or json) and function(s) ctx:info(s) end or function(s) ctx:out(s) end
  for _, n in ipairs(res.notes) do ctx:info(n) end
  local id = res.old and res.old.id
  local what = ("%s%s"):format(res.key, id and (" (token id=" .. id .. ")") or "")
  if res.decision == "keep" then
    say(("keep %s: %s"):format(what, res.reason))
  elseif res.decision == "recover" then
    say(("would first resolve an interrupted rotation of %s: %s"):format(res.key, res.reason))
  elseif res.decision == "vetoed" then
    say(("not rotating %s: %s (%s)"):format(what, res.vetoed, res.reason))
    if res.code == "expired" or res.code == "missing" then
      ctx:warn(("the token in %s does not work and was not replaced"):format(path))
    end
  elseif res.dry_run then
    say(("would rotate %s: %s (dry run: nothing changed)"):format(what, res.reason))
  else
    say(("rotated %s: %s -> new token id=%s (%s%s), expires %s"):format(what, res.reason,
      tostring(res.new.id or "?"), res.strategy, res.fallback and ", after the refresh failed" or "",
      iso(res.new.expires)))
  end
  if args.format then
    local doc = ctx:check(envfile.read(path))
    local st = ctx:check(state.load(path))
    local rec = st.keys[res.key] or {}
    local values = { { res.key, doc:get(res.key) } }
    local rkey = rec.refresh_key
    if rkey and doc:get(rkey) then values[2] = { rkey, doc:get(rkey) } end
    common.print_format(ctx, args.format, values, { id = rec.id, kind = rec.kind, scope = rec.scope,
                                                     expires = rec.expires })
  end
  if json then ctx:out(require("aap.report").encode(rotate_report(path, res))) end
  if res.hook_failed then ctx:fail("policy", res.hook_failed) end
  if res.held then
    ctx:fail("policy", res.held .. "; the old token stays valid until a later run's on_rotated " ..
      "succeeds")
  end
  if args.detailed_exit_code and res.decision == "rotate" then return M.EXIT_ROTATED end
  return 0
end

local function table_of(tokens)
  local rows = {}
  for i, t in ipairs(tokens) do
    rows[i] = { t.id, t.kind or "", t.user or "", t.application or "", iso(t.created), iso(t.last_used),
                t.description or "", t.why }
  end
  return common.columns(rows, { "ID", "KIND", "USER", "APP", "CREATED", "LAST_USED", "DESCRIPTION", "WHY" })
end

local PRUNE_FIELDS = { "id", "kind", "user", "application", "created", "last_used", "description", "why" }

-- The prune as a report: what was scanned, chosen (with why), revoked and failed.
local function prune_report(ctx, res, dry_run, refused)
  local report = require("aap.report")
  local function views(list)
    local out = report.list()
    for i, t in ipairs(list or {}) do
      out[i] = report.object(PRUNE_FIELDS, { id = t.id, kind = t.kind, user = t.user, application = t.application,
        created = iso_or_nil(t.created), last_used = iso_or_nil(t.last_used),
        description = t.description, why = t.why })
    end
    return out
  end
  local revoked, failed = report.list(), report.list()
  for i, id in ipairs(res.revoked or {}) do revoked[i] = type(id) == "table" and id.id or id end
  for i, f in ipairs(res.failed or {}) do
    failed[i] = report.object({ "id", "error" }, { id = f.id, error = ctx:message(f.error) })
  end
  return report.object({ "scanned", "dry_run", "candidates", "revoked", "failed", "refused" }, {
    scanned = res.scanned, dry_run = dry_run and true or false, candidates = views(res.candidates),
    revoked = revoked, failed = failed, refused = refused })
end

local function prune_cmd(args, ctx)
  local aap, rotate = require("aap"), require("aap.rotate")
  local json = args.output == "json"
  -- With --output json, stdout holds the report alone: the confirmation table goes to stderr.
  local show = json and function(s) ctx:log("info", s) end or function(s) ctx:out(s) end
  local conn = ctx:conn()
  local tty = aap.os.isatty(2)
  local progress, shown
  -- Progress on a terminal only: a line rewritten in place, ended before any other output.
  local function end_line()
    if shown then io.stderr:write("\n") shown = false end
  end
  if tty and not args.quiet then
    progress = function(phase, done, total)
      if phase == "scan" and done % 50 == 0 then
        io.stderr:write(("\rscanned %d tokens"):format(done))
        shown = true
      elseif phase == "revoke" then
        io.stderr:write(("\rrevoked %d/%d"):format(done, total))
        shown = true
        if done == total then end_line() end
      end
    end
  end
  local refused
  local res, e = rotate.prune({
    conn = conn, unused_for = args.unused_for, expired = args.expired, description_like = args.description_like,
    kind = args.kind, user = args.user and tonumber(args.user), all_users = args.all_users or nil,
    dry_run = args.dry_run,
    keep_env_files = args.keep_env_file, progress = progress,
    confirm = function(candidates)
      end_line()
      show(table_of(candidates))
      if args.yes then return true end
      if not aap.os.isatty(0) then
        refused = ("refusing to revoke %d token(s) without --yes (standard input is not a terminal); "
          .. "preview with --dry-run"):format(#candidates)
        return false
      end
      io.stderr:write(("Revoke these %d token(s)? [y/N] "):format(#candidates))
      local answer = io.stdin:read("l") or ""
      if not answer:match("^%s*[yY]") then refused = "nothing revoked" end
      return refused == nil
    end,
  })
  end_line()
  if not res then ctx:fail(e) end
  if json then ctx:out(require("aap.report").encode(prune_report(ctx, res, args.dry_run, refused))) end
  local say = json and function(s) ctx:info(s) end or function(s) ctx:out(s) end
  if args.dry_run then
    if #res.candidates > 0 and not json then ctx:out(table_of(res.candidates)) end
    say(("would revoke %d of %d token(s) (dry run: nothing changed)"):format(#res.candidates, res.scanned))
    return 0
  end
  if #res.candidates == 0 then
    say(("nothing to prune (%d token(s) scanned)"):format(res.scanned))
    return 0
  end
  if refused then
    if refused == "nothing revoked" then ctx:info(refused) return 1 end
    ctx:usage("%s", refused)
  end
  say(("revoked %d of %d candidate(s)"):format(#res.revoked, #res.candidates))
  for _, f in ipairs(res.failed) do
    ctx:warn(("token id=%d not revoked: %s"):format(f.id, ctx:message(f.error)))
  end
  if #res.failed > 0 then return ctx:exit_code(res.failed[1].error) end
  return 0
end

--- Registers `token rotate` and `token prune`.
function M.register(groups, cli)
  local token = groups.token
  cli.command(token, "rotate", "Rotate the token in an env file when its policy says it is due.", function(r)
    r:option("--policy", "Policy file (Lua; see examples/policies/)."):count(1)
    r:option("--env-file", "Env file holding the token (default: AAP_ENV_FILE, else .env).")
    r:option("--key", "Env key of the token (default: the one recorded, else AAP_TOKEN if present, else AAP_PAT).")
    r:option("--refresh-key", "Env key of the refresh token (default: recorded, else REFRESH_TOKEN).")
    r:flag("--dry-run", "Decide and print the decision; change nothing.")
    r:option("--format", "Also print the token in the file (after the run): env, shell, json or k8s-secret.")
      :choices({ "env", "shell", "json", "k8s-secret" })
    r:option("--secret-name", "metadata.name for --format k8s-secret."):default("aap-token")
    r:option("--namespace", "metadata.namespace for --format k8s-secret.")
    r:option("--output", "json: the run as a report on stdout (decision, reason, tokens by id; no token value).")
      :choices({ "text", "json" }):default("text")
    r:flag("--detailed-exit-code", ("Exit %d when a token was rotated (0: nothing was due)."):format(M.EXIT_ROTATED))
    cli.connection_options(r)
    cli.quiet_option(r)
  end, rotate_cmd)

  cli.command(token, "prune", "Revoke tokens nobody used for a while (shows them first).", function(p)
    p:option("--unused-for", "Last used this long ago, or never used and this old (default 90d without --expired).")
    p:flag("--expired", "Also tokens past their expiry.")
    p:option("--description-like", "Only tokens whose description contains TEXT (case-insensitive).")
    p:option("--kind", "personal or application."):choices({ "personal", "application" })
    p:option("--user", "Only this user's tokens (id; default: your own)."):convert(common.id_arg("a user id"))
    p:flag("--all-users", "Every user's tokens (superusers only; default: your own).")
    p:option("--keep-env-file", "Never touch the tokens recorded for this env file (repeatable).")
      :count("*")
    p:flag("--dry-run", "Show what would be revoked; change nothing.")
    p:flag("-y --yes", "Do not ask before revoking (needed when standard input is not a terminal).")
    p:option("--output", "json: the run as a report on stdout (candidates with why, revoked, failed).")
      :choices({ "text", "json" }):default("text")
    cli.connection_options(p)
    cli.quiet_option(p)
  end, prune_cmd)
end

return M
