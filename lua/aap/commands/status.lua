--- `aap token status`: for every token an env file holds, whether the gateway accepts it,
-- when it expires and when it was last used, with an exit code for alerting.
--
-- A token aap recorded (its id with the value's fingerprint, beside the env file) is looked
-- up by id with the session's credentials: its use is not touched. Any other token, or every
-- token when no credentials are given (a CronJob with only the env file), is checked by
-- using it once (`GET me/` with it), which moves its `last_used`; the report says which.
-- @module aap.commands.status
local common = require("aap.commands.common")

local M = {}

--- Exit code when a token expires within --warn (and none is refused): outside the error
-- codes 1-4, so that a monitor tells "act soon" from "broken" and from "could not check".
M.EXIT_EXPIRING = 5

local DEFAULT_KEYS = { "AAP_PAT", "AAP_TOKEN" }

local FIELDS = { "key", "id", "kind", "application", "accepted", "checked_by", "expires", "expires_in",
                 "last_used", "refresh_key", "status", "reason" }

local iso = common.iso_or_nil -- nil (null in the report) for nil

--- The keys to report: those given, else every key the state file records that the env file
-- holds, and the lesson's keys the file holds, in file order.
local function keys_of(args, doc, st)
  if args.key and #args.key > 0 then return args.key end
  local want = {}
  for k in pairs(st.keys) do want[k] = true end
  for _, k in ipairs(DEFAULT_KEYS) do want[k] = true end
  local out, seen = {}, {}
  for _, k in ipairs(doc:keys()) do
    if want[k] and not seen[k] then seen[k] = true; out[#out + 1] = k end
  end
  return out
end

-- The record proves which token id the value is: its fingerprint matches.
local function proven(state, rec, value)
  return rec and math.type(rec.id) == "integer" and rec.fp ~= nil and rec.fp == state.fingerprint(value)
end

--- One entry of the report. Every field is present (null when unknown), so that a
-- consumer reads a stable shape.
local function entry(key)
  return { key = key, id = nil, kind = nil, application = nil, accepted = nil, checked_by = nil,
           expires = nil, expires_in = nil, last_used = nil, refresh_key = nil, status = "unknown",
           reason = nil }
end

local function judge(e, tok_expires, now, warn)
  if e.accepted == false then
    e.status = e.status ~= "unknown" and e.status or "refused"
    return
  end
  if tok_expires then
    e.expires = iso(tok_expires)
    e.expires_in = math.floor(tok_expires - now)
    if tok_expires <= now then
      e.accepted, e.status, e.reason = false, "expired", "expired " .. e.expires
      return
    elseif tok_expires - now <= warn then
      e.status, e.reason = "expiring", ("expires within %s"):format(require("aap.duration").format(warn))
      return
    end
  end
  e.status = "ok"
end

local function status(args, ctx)
  local workflow, state, duration = require("aap.workflow"), require("aap.state"), require("aap.duration")
  local warn, werr = duration.parse(args.warn or "7d")
  if not warn then ctx:usage("--warn: %s", werr) end
  for _, k in ipairs(args.key or {}) do
    if not k:match("^[A-Za-z_][A-Za-z0-9_]*$") then ctx:usage("%q is not a valid env key", k) end
  end
  local path = args.env_file or os.getenv("AAP_ENV_FILE")
  if not path or path == "" then path = ".env" end
  local doc = ctx:check(workflow.read_env(path))
  local st = ctx:check(state.load(path))
  -- A refresh token or a client credential is never sent as a Bearer token (a gateway's or a
  -- proxy's log of refused requests could keep it).
  local not_tokens = { AAP_CLIENT_ID = true, AAP_CLIENT_SECRET = true, REFRESH_TOKEN = true }
  for _, rec in pairs(st.keys) do
    if rec.refresh_key then not_tokens[rec.refresh_key] = true end
  end
  for _, k in ipairs(args.key or {}) do
    if not_tokens[k] and not st.keys[k] then
      ctx:usage("%s holds a refresh token or an OAuth client credential, not an access token: it is never sent "
        .. "as one", k)
    end
  end
  -- With credentials, recorded tokens are looked up by id; without, each token is used once.
  local s, conn
  if require("aap.config").has_credentials(args) then
    s, conn = ctx:connect()
  else
    conn = ctx:conn({ anonymous = true })
  end
  -- Expiry is the gateway's: judged by its clock (ping's pong, else its Date header).
  local now = workflow.server_now(s or ctx:connect({ anonymous = true }))
  local report = {}
  for _, key in ipairs(keys_of(args, doc, st)) do
    local e = entry(key)
    report[#report + 1] = e
    local value = doc:get(key)
    local rec = st.keys[key]
    if rec then
      e.kind, e.application, e.refresh_key = rec.kind, rec.application, rec.refresh_key
    end
    if not value or value == "" then
      e.status, e.accepted, e.reason = "missing", false, ("%s holds no %s"):format(path, key)
    else
      local tok
      local known = proven(state, rec, value)   -- the record is this value's: its id is the token's
      if s and known then
        local t, terr = s:token(rec.id)
        if t and (rec.created == nil or t.created == nil or math.abs(t.created - rec.created) < 1) then
          tok = t
          e.id, e.checked_by, e.accepted = rec.id, "id", true
          e.kind, e.application = t.kind, t.application
          e.last_used = iso(t.last_used)
        elseif t or (terr and terr.code == "not_found") then
          -- Gone (revoked, deleted), or the id now names another token: the value is not it.
          e.id, e.checked_by, e.accepted, e.status = rec.id, "id", false, "revoked"
          e.reason = ("token id=%d is no longer on the gateway"):format(rec.id)
        else
          ctx:check(nil, terr, ("looking up %s (token id=%d)"):format(key, rec.id))
        end
      end
      if e.checked_by == nil then
        local me, verr = workflow.verify(conn, value)
        e.checked_by = "use"
        if me then
          e.accepted = true
          e.id = known and rec.id or nil
        elseif verr and (verr.code == "auth" or verr.code == "forbidden") then
          e.accepted, e.status, e.reason = false, "refused", ctx:message(verr)
        else
          ctx:check(nil, verr, ("checking %s"):format(key))
        end
        -- Without a lookup the expiry is what was recorded when aap made the token.
        if e.accepted and known and rec.expires then
          tok = { expires = rec.expires }
        end
      end
      judge(e, tok and tok.expires, now, warn)
    end
  end
  local worst = 0
  for _, e in ipairs(report) do
    if e.status == "expiring" and worst == 0 then worst = M.EXIT_EXPIRING end
    if e.accepted == false then worst = 3 end
  end
  if common.json_output(args) then
    local rep = require("aap.report")
    local arr = rep.list()
    for i, e in ipairs(report) do arr[i] = rep.object(FIELDS, e) end
    ctx:out(rep.encode(arr))
  else
    local rows = {}
    for _, e in ipairs(report) do
      rows[#rows + 1] = { e.key, e.id or "", e.kind or "", e.status, e.expires or "", e.last_used or "",
                          e.checked_by == "use" and "used it" or (e.checked_by == "id" and "by id" or ""),
                          e.reason or "" }
    end
    if #rows == 0 then
      ctx:info(("%s holds no token aap knows of (%s, or keys recorded beside it)"):format(path,
        table.concat(DEFAULT_KEYS, ", ")))
    else
      ctx:out(common.columns(rows, { "KEY", "ID", "KIND", "STATUS", "EXPIRES", "LAST_USED", "CHECKED", "WHY" }))
    end
  end
  return worst
end

--- Registers `token status`.
function M.register(groups, cli)
  cli.command(groups.token, "status", "For each token in an env file: accepted?, expiry, last use; exit code "
    .. "for alerting.", function(c)
      c:option("--env-file", "Env file (default: AAP_ENV_FILE, else .env).")
      c:option("--key", "Only this key (repeatable; default: every token key the file holds).")
        :count("*")
      c:option("--warn", "Exit 5 when a token expires within this long (default 7d).")
      common.output_option(c)
      cli.connection_options(c)
      cli.quiet_option(c)
    end, status)
end

return M
