--- `aap ping` and `aap whoami`.
-- @module aap.commands.misc
local common = require("aap.commands.common")

local M = {}

local function ping(args, ctx)
  local s, conn = ctx:connect({ anonymous = not (os.getenv("AAP_PASSWORD") or os.getenv("AAP_TOKEN")
    or os.getenv("AAP_PASSWORD_FILE") or args.password_stdin or args.token_stdin) })
  local body = ctx:check(s:ping())
  local flavor = ctx:check(s:flavor())
  if common.json_output(args) then
    ctx:out(require("cjson").encode({ flavor = flavor, ping = body }))
  else
    ctx:out(("%s %s: %s (version %s)"):format(flavor, conn.url, tostring(body.status or body.ha ~= nil and "ok"),
      tostring(body.version)))
  end
  return 0
end

local function whoami(args, ctx)
  local s = ctx:connect()
  local me = ctx:check(s:me())
  if common.json_output(args) then
    ctx:out(require("cjson").encode({ id = me.id, username = me.username, is_superuser = me.is_superuser }))
  else
    ctx:out(("%s (id %d%s)"):format(me.username, me.id, me.is_superuser and ", superuser" or ""))
  end
  return 0
end

function M.register(groups, cli)
  local root = groups.root
  cli.command(root, "ping", "Check that the gateway answers, and which kind it is.", function(p)
    common.output_option(p)
    cli.connection_options(p)
  end, ping)
  cli.command(root, "whoami", "Show the user the credentials belong to.", function(w)
    common.output_option(w)
    cli.connection_options(w)
  end, whoami)
end

return M
