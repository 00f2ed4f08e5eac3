-- `aap token rotate` against the emulator: decisions, both strategies, hooks and vetoes,
-- dry runs, grace and wait-for-use, locking, and the Lua API.
local helper = require("helper")
local envfile = require("aap.env")

local DAY = 86400

describe("aap token rotate", function()
  -- 1-year tokens, as below
  local fx = require("rotate_fixture").new({ "--access-lifetime", "31536000" })
  setup(fx.start) teardown(fx.stop) before_each(fx.fresh) after_each(helper.cleanup)
  local admin_env, get, policy, rotate, read_state = fx.admin_env, fx.get, fx.policy, fx.rotate, fx.state
  local server_tokens, works, token_id = fx.server_tokens, fx.works, fx.token_id

  local function create_pat(extra)
    local argv = { "token", "create", "--env-file", fx.env_path, "--description", "ci deploy" }
    for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
    local r = fx.aap(argv)
    assert.equal(0, r.code, r.stderr)
    return get("AAP_PAT")
  end

  local function writes(entries)
    local n = {}
    for _, e in ipairs(entries) do
      if e.method ~= "GET" and e.method ~= "HEAD" then n[#n + 1] = e.method .. " " .. e.path end
    end
    return n
  end

  describe("decisions", function()
    local pol
    before_each(function()
      pol = policy('return { max_age = "90d", renew_before = "30d", min_age = "1d" }')
    end)

    it("keeps a token that is not due, and changes nothing", function()
      local value = create_pat()
      fx.sim:advance(2 * DAY)
      local before = helper.readfile(fx.env_path)
      local r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("keep AAP_PAT (token id=", 1, true), r.stdout)
      assert.truthy(r.stdout:find("not due: age 2d < max_age 90d; expires in 363d > renew_before 30d", 1, true),
        r.stdout)
      assert.equal(before, helper.readfile(fx.env_path))
      assert.equal(value, get("AAP_PAT"))
    end)

    it("keeps a token younger than min_age even inside the renew window", function()
      fx.sim:configure({ access_token_lifetime = 10 * DAY })
      create_pat()
      local r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("keep AAP_PAT %(token id=%d+%): too young: age %d+s < min_age 1d"), r.stdout)
      fx.sim:advance(2 * DAY)
      r = rotate({ "--policy", pol, "--dry-run" })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("would rotate AAP_PAT %(token id=%d+%): inside the renew window: expires in 8d <="),
        r.stdout)
    end)

    it("rotates at max age", function()
      create_pat()
      fx.sim:advance(91 * DAY)
      local r = rotate({ "--policy", pol, "--dry-run" })
      assert.truthy(r.stdout:find("max age reached: age 91d >= max_age 90d", 1, true), r.stdout)
    end)

    it("rotates an expired token", function()
      fx.sim:configure({ access_token_lifetime = 2 * DAY })
      local old = create_pat()
      fx.sim:advance(3 * DAY)
      assert.is_false(works(old))
      local r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find(
        "rotated AAP_PAT %(token id=%d+%): expired 1d ago %-> new token id=%d+ %(recreate%)"), r.stdout)
      assert.is_true(works(get("AAP_PAT")))
    end)

    it("rotates a token that was deleted behind its back", function()
      local old = create_pat()
      local id = token_id(old)
      assert.equal(204, (fx.sim:json("DELETE", "/api/gateway/v1/tokens/" .. id .. "/",
        { basic = { "admin", helper.ADMIN_PASSWORD } })))
      local r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("recorded for AAP_PAT is gone from the gateway", 1, true), r.stdout)
      local value = get("AAP_PAT")
      assert.is_true(works(value))
      assert.same({ token_id(value) }, server_tokens())
    end)
  end)

  describe("recreate", function()
    it("replaces the token, proves it, and revokes the old one", function()
      local old = create_pat()
      local old_id = token_id(old)
      fx.sim:advance(100 * DAY)
      local r = rotate({ "--policy", policy('return { max_age = "90d" }') })
      assert.equal(0, r.code, r.stderr)
      local new = get("AAP_PAT")
      assert.are_not.equal(old, new)
      assert.is_true(works(new))
      assert.is_false(works(old))
      local ids, list = server_tokens()
      assert.equal(1, #ids)
      assert.are_not.equal(old_id, ids[1])
      assert.truthy(list[1].description:find("^ci deploy aap%-rotate:%x+$"), list[1].description)
      assert.truthy(r.stderr:find("revoked the old token id=" .. old_id, 1, true), r.stderr)
      local st, text = read_state()
      assert.equal(ids[1], st.keys.AAP_PAT.id)
      assert.same({}, st.pending)
      assert.falsy(text:find(new, 1, true))
      assert.falsy(text:find(old, 1, true))
      assert.equal("600", helper.mode(fx.env_path))
    end)

    it("keeps the old token through the grace period, then revokes it", function()
      local old = create_pat()
      fx.sim:advance(100 * DAY)
      local pol = policy('return { max_age = "90d", grace = "1h" }')
      local r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.is_true(works(old))
      assert.equal(2, #server_tokens())
      local st = read_state()
      assert.equal(1, #st.pending)
      assert.equal(token_id(old), st.pending[1].id)
      r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stderr:find("stays valid: grace period until", 1, true), r.stderr)
      assert.truthy(r.stdout:find("keep AAP_PAT", 1, true), r.stdout)
      assert.is_true(works(old))
      fx.sim:advance(2 * 3600)
      r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.is_false(works(old))
      assert.same({ token_id(get("AAP_PAT")) }, server_tokens())
      assert.same({}, read_state().pending)
    end)

    it("waits for the consumer's use of the new token before revoking the old one", function()
      local old = create_pat()
      fx.sim:advance(100 * DAY)
      local pol = policy('return { max_age = "90d", wait_for_use = true }')
      assert.equal(0, rotate({ "--policy", pol }).code)
      local new = get("AAP_PAT")
      assert.is_true(works(old))
      local r = rotate({ "--policy", pol })
      assert.truthy(r.stderr:find("waiting for the consumer to use the new token", 1, true), r.stderr)
      assert.is_true(works(old))
      fx.sim:advance(60)
      assert.is_true(works(new)) -- the consumer switches
      r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.is_false(works(old))
      assert.same({ token_id(new) }, server_tokens())
    end)

    it("keeps the old token when the new one was deleted outside aap, and waits for its replacement", function()
      local old = create_pat()
      fx.sim:advance(100 * DAY)
      local pol = policy('return { max_age = "90d", wait_for_use = true }')
      assert.equal(0, rotate({ "--policy", pol }).code)
      local new = get("AAP_PAT")
      assert.equal(204, (fx.sim:control("DELETE", ("/api/gateway/v1/tokens/%d/"):format(token_id(new)))))
      local r = rotate({ "--policy", pol })
      assert.truthy(r.stderr:find("no longer exists", 1, true), r.stderr)
      assert.is_true(works(old))
      -- the next rotation replaces the dead token; the old one waits for the replacement's use
      r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      local newer = get("AAP_PAT")
      assert.is_true(works(newer))
      assert.is_true(works(old))
      fx.sim:advance(60)
      assert.is_true(works(newer)) -- the consumer switches
      r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.is_false(works(old))
    end)

    it("revokes the old token after max_wait even if the consumer never switched", function()
      local old = create_pat()
      fx.sim:advance(100 * DAY)
      local pol = policy('return { max_age = "90d", wait_for_use = true, max_wait = "2d" }')
      assert.equal(0, rotate({ "--policy", pol }).code)
      assert.equal(0, rotate({ "--policy", pol }).code)
      assert.is_true(works(old))
      fx.sim:advance(3 * DAY)
      local r = rotate({ "--policy", pol })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stderr:find("never used token id=", 1, true), r.stderr)
      assert.is_false(works(old))
    end)

    it("refuses wait_for_use when it authenticates with the token it rotates", function()
      create_pat()
      local r = rotate({ "--policy", policy('return { max_age = "0s", wait_for_use = true }') },
        { AAP_HOSTNAME = fx.sim.url })
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find("wait_for_use cannot work", 1, true), r.stderr)
    end)

    it("lets a PAT rotate itself when no admin credentials are given", function()
      local old = create_pat()
      fx.sim:advance(100 * DAY)
      local r = rotate({ "--policy", policy('return { max_age = "90d" }') }, { AAP_HOSTNAME = fx.sim.url })
      assert.equal(0, r.code, r.stderr)
      local new = get("AAP_PAT")
      assert.is_true(works(new))
      assert.is_false(works(old))
      assert.same({ token_id(new) }, server_tokens())
    end)

    it("says what is missing when a PAT that rotates itself no longer works", function()
      fx.sim:configure({ access_token_lifetime = DAY })
      create_pat()
      fx.sim:advance(2 * DAY)
      local r = rotate({ "--policy", policy('return { max_age = "90d" }') }, { AAP_HOSTNAME = fx.sim.url })
      assert.equal(3, r.code)
      assert.truthy(r.stderr:find("no longer works, and without admin credentials", 1, true), r.stderr)
    end)

    it("uses the policy's scope and description for the new token", function()
      create_pat()
      local r = rotate({ "--policy", policy('return { max_age = "0s", scope = "read", description = "reader" }') })
      assert.equal(0, r.code, r.stderr)
      local _, list = server_tokens()
      assert.equal("read", list[1].scope)
      assert.truthy(list[1].description:find("^reader aap%-rotate:%x+$"), list[1].description)
    end)

    it("prints the token as a Kubernetes secret with --format k8s-secret", function()
      create_pat()
      local r = rotate({ "--policy", policy('return { max_age = "0s" }'), "--format", "k8s-secret",
                         "--secret-name", "ci-token" })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("kind: Secret", 1, true), r.stdout)
      assert.truthy(r.stdout:find("ci-token", 1, true), r.stdout)
      assert.truthy(r.stderr:find("rotated AAP_PAT", 1, true), r.stderr)
      assert.falsy(r.stdout:find("rotated", 1, true))
    end)
  end)

  describe("refresh", function()
    local client_env

    local function create_app_token()
      local app = fx.sim.seed.application
      client_env = admin_env({ AAP_CLIENT_ID = app.client_id, AAP_CLIENT_SECRET = app.client_secret })
      local r = fx.aap({ "token", "create", "--env-file", fx.env_path, "--application", app.name })
      assert.equal(0, r.code, r.stderr)
      return get("AAP_TOKEN"), get("REFRESH_TOKEN")
    end

    local function app_tokens()
      local ids = {}
      local _, list = server_tokens()
      for _, t in ipairs(list) do if type(t.application) == "number" then ids[#ids + 1] = t.id end end
      return ids
    end

    it("refreshes an application token and writes the new pair", function()
      local old, old_rt = create_app_token()
      fx.sim:advance(26 * DAY)
      local pol = policy('return { max_age = "25d", strategy = "refresh" }')
      local r = rotate({ "--policy", pol }, { AAP_HOSTNAME = fx.sim.url, AAP_CLIENT_ID = client_env.AAP_CLIENT_ID,
                                             AAP_CLIENT_SECRET = client_env.AAP_CLIENT_SECRET })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("rotated AAP_TOKEN %(token id=%d+%): max age reached.-%(refresh%)"), r.stdout)
      local new, new_rt = get("AAP_TOKEN"), get("REFRESH_TOKEN")
      assert.are_not.equal(old, new)
      assert.are_not.equal(old_rt, new_rt)
      assert.is_true(works(new))
      assert.is_false(works(old))
      assert.same({ token_id(new) }, app_tokens())
      assert.equal(token_id(new), read_state().keys.AAP_TOKEN.id)
    end)

    it("falls back to creating a new token when the refresh token has expired", function()
      local old = create_app_token()
      fx.sim:advance(31 * DAY) -- past the 30.4-day refresh lifetime
      local pol = policy('return { max_age = "25d", strategy = "refresh" }')
      local r = rotate({ "--policy", pol }, client_env)
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stderr:find("refresh failed", 1, true), r.stderr)
      assert.truthy(r.stdout:find("(recreate, after the refresh failed)", 1, true), r.stdout)
      local new = get("AAP_TOKEN")
      assert.is_true(works(new))
      assert.is_false(works(old))
      assert.same({ token_id(new) }, app_tokens())
      assert.truthy(get("REFRESH_TOKEN"))
    end)

    it("falls back to creating a new token on invalid_grant", function()
      local old = create_app_token()
      local doc = assert(envfile.read(fx.env_path))
      doc:set("REFRESH_TOKEN", "spentspentspentspentspentspent")
      helper.writefile(fx.env_path, doc:serialize())
      local r = rotate({ "--policy", policy('return { max_age = "0s", strategy = "refresh" }') }, client_env)
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stderr:find("refresh failed (invalid", 1, true), r.stderr)
      local new = get("AAP_TOKEN")
      assert.is_true(works(new))
      assert.is_false(works(old))
      assert.same({ token_id(new) }, app_tokens())
    end)

    it("fails clearly without admin credentials when the refresh token has expired", function()
      local old = create_app_token()
      local before = helper.readfile(fx.env_path)
      fx.sim:advance(31 * DAY)
      local pol = policy('return { max_age = "25d", strategy = "refresh" }')
      local r = rotate({ "--policy", pol }, { AAP_HOSTNAME = fx.sim.url, AAP_CLIENT_ID = client_env.AAP_CLIENT_ID,
                                             AAP_CLIENT_SECRET = client_env.AAP_CLIENT_SECRET })
      assert.equal(3, r.code, r.stderr)
      assert.truthy(r.stderr:find("without admin credentials", 1, true), r.stderr)
      assert.equal(before, helper.readfile(fx.env_path))
      assert.is_true(works(old))
    end)

    it("reports an on_rotated veto after a refresh, which cannot be undone", function()
      local old = create_app_token()
      local pol = policy('return { max_age = "0s", strategy = "refresh", on_rotated = function() ' ..
        'return false, "no reload" end }')
      local r = rotate({ "--policy", pol }, client_env)
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find("on_rotated vetoed: no reload (the refresh has already replaced the token; " ..
        "nothing was undone)", 1, true), r.stderr)
      assert.is_false(works(old))
      assert.is_true(works(get("AAP_TOKEN")))
    end)

    it("does not fall back to recreate when the refresh is refused for another reason", function()
      local old = create_app_token()
      local env = {}
      for k, v in pairs(client_env) do env[k] = v end
      env.AAP_CLIENT_SECRET = "wrong"
      local r = rotate({ "--policy", policy('return { max_age = "0s", strategy = "refresh" }') }, env)
      assert.equal(3, r.code)
      assert.truthy(r.stderr:find("invalid_client", 1, true), r.stderr)
      assert.falsy(r.stderr:find("creating a new token instead", 1, true))
      assert.is_true(works(old))
      assert.equal(1, #server_tokens())
      assert.is_nil(next(read_state().rotations))
    end)

    it("refuses strategy refresh for a personal access token", function()
      create_pat()
      local r = rotate({ "--policy", policy('return { max_age = "0s", strategy = "refresh" }') })
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find('strategy "refresh" needs an application token', 1, true), r.stderr)
    end)
  end)

  describe("hooks", function()
    it("before_rotate may veto: nothing changes", function()
      create_pat()
      local before = helper.readfile(fx.env_path)
      fx.sim:clear_log()
      local r = rotate({ "--policy", policy([[
        return { max_age = "0s", before_rotate = function(ctx)
          return false, "change freeze for " .. ctx.key
        end }]]) })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("not rotating AAP_PAT %(token id=%d+%): before_rotate vetoed: change freeze for " ..
        "AAP_PAT"), r.stdout)
      assert.equal(before, helper.readfile(fx.env_path))
      assert.same({}, writes(fx.sim:log()))
    end)

    it("on_rotated sees both tokens, reads secrets only through :secret(), and may hold the old token", function()
      local old = create_pat()
      local out = fx.dir .. "/seen"
      local pol = policy(([[
        return { max_age = "0s", on_rotated = function(ctx)
          for k, v in pairs(ctx.new) do
            if v == ctx.new:secret() then error("secret in field " .. k) end
          end
          assert(not tostring(ctx.new):find(ctx.new:secret(), 1, true))
          ctx:run({ "sh", "-c", "cat > %s" }, { stdin = ctx.new:secret() .. " " .. ctx.old:secret() .. " " ..
            ctx.old.id .. " " .. ctx.new.id })
          return false, "the consumer did not reload"
        end }]]):format(out))
      local r = rotate({ "--policy", pol })
      assert.equal(1, r.code, r.stderr)
      assert.truthy(r.stderr:find("on_rotated vetoed: the consumer did not reload; the old token stays valid", 1, true),
        r.stderr)
      local new = get("AAP_PAT")
      assert.equal(("%s %s %d %d"):format(new, old, token_id(old), token_id(new)), helper.readfile(out))
      assert.is_true(works(old))
      assert.is_true(works(new))
      local st = read_state()
      assert.is_false(st.pending[1].hooks_done)
      -- a later run retries the hook; when it succeeds the old token goes
      r = rotate({ "--policy", policy('return { max_age = "90d", on_rotated = function() end }', "p2.lua") })
      assert.equal(0, r.code, r.stderr)
      assert.is_false(works(old))
      assert.same({ token_id(new) }, server_tokens())
    end)

    it("runs on_rotated once per switch and run, also when a run holding an old token rotates again", function()
      create_pat()
      local out = fx.dir .. "/calls"
      local pol = policy(([[
        return { max_age = "0s", on_rotated = function(ctx)
          ctx:run({ "sh", "-c", "cat >> %s" }, { stdin = ctx.old.id .. " " .. ctx.decision.code .. "\n" })
          return false, "not yet"
        end }]]):format(out))
      local r = rotate({ "--policy", pol })
      assert.equal(1, r.code, r.stderr)
      local first = token_id(get("AAP_PAT"))
      local calls = helper.readfile(out)
      assert.equal(1, select(2, calls:gsub("\n", "")), calls)
      -- the second run finishes the first switch (held again), then makes and announces its own
      r = rotate({ "--policy", pol })
      assert.equal(1, r.code, r.stderr)
      calls = helper.readfile(out)
      assert.equal(3, select(2, calls:gsub("\n", "")), calls)
      assert.truthy(calls:find("\n%d+ pending\n" .. first .. " max_age\n$"), calls)
      local st = read_state()
      assert.equal(2, #st.pending)
      -- each held token is reported once
      for _, e in ipairs(st.pending) do
        local _, n = r.stderr:gsub("old token id=" .. math.tointeger(e.id) .. " stays valid", "")
        assert.equal(1, n, r.stderr)
      end
    end)

    it("fails when before_rotate raises an error (not a veto): exit 1, naming the file and line", function()
      create_pat()
      local before = helper.readfile(fx.env_path)
      local out = fx.dir .. "/err"
      local pol = policy(([[return { max_age = "0s",
  before_rotate = function() error("boom") end,
  on_error = function(ctx) ctx:run({ "sh", "-c", "cat > %s" }, { stdin = ctx.error.message }) end }]]):format(out))
      local r = rotate({ "--policy", pol })
      assert.equal(1, r.code, r.stdout)
      assert.truthy(r.stderr:find("before_rotate failed: " .. pol .. ":2: boom", 1, true), r.stderr)
      assert.truthy(helper.readfile(out):find("before_rotate failed", 1, true))
      assert.equal(before, helper.readfile(fx.env_path))
      assert.equal(1, #server_tokens())
    end)

    it("stops a hook that loops forever, even inside pcall, and fails", function()
      create_pat()
      local r = rotate({ "--policy", policy([[return { max_age = "0s", before_rotate = function()
        while true do pcall(function() while true do end end) end
      end }]]) })
      assert.equal(1, r.code, r.stdout)
      assert.truthy(r.stderr:find("before_rotate failed: the policy ran too long", 1, true), r.stderr)
      assert.equal(1, #server_tokens())
    end)

    it("kills a hook's program at the policy's hook_timeout, and fails", function()
      create_pat()
      local r = rotate({ "--policy", policy([[return { max_age = "0s", hook_timeout = "1s",
        before_rotate = function(ctx) ctx:run{ "sleep", "30" } end }]]) })
      assert.equal(1, r.code, r.stdout)
      assert.truthy(r.stderr:find("before_rotate failed: .*ctx:run: sleep ran longer than the hook's hook_timeout "
        .. "of 1s and was killed"), r.stderr)
      assert.equal(1, #server_tokens())
    end)

    it("fails when a hook's program exits non-zero, unless the hook checks the status itself", function()
      create_pat()
      local r = rotate({ "--policy", policy([[return { max_age = "0s",
        before_rotate = function(ctx) ctx:run{ "false" } end }]]) })
      assert.equal(1, r.code, r.stdout)
      assert.truthy(r.stderr:find("ctx:run: false exited with status 1", 1, true), r.stderr)
      r = rotate({ "--policy", policy([[return { max_age = "0s", before_rotate = function(ctx)
        local ok, status = ctx:run{ "sh", "-c", "exit 7", check = false }
        return ok, "the freeze check said " .. status
      end }]], "p2.lua") })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("before_rotate vetoed: the freeze check said 7", 1, true), r.stdout)
    end)

    it("runs programs without a shell, with a clean environment", function()
      create_pat()
      local env = admin_env({ AAP_CLIENT_SECRET = "client-s3cret", AAP_TOKEN_EXTRA = "x" })
      local r = rotate({ "--policy", policy([[return { max_age = "0s", before_rotate = function(ctx)
        ctx:run{ "env" }
        ctx:run{ "echo", "$HOME;", "`id`" }
        assert(not pcall(ctx.run, ctx, { "exit" }), "exit is a shell builtin, not a program")
        return false, "password in the policy: " .. tostring(os.getenv("AAP_PASSWORD"))
      end }]]) }, env)
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find("password in the policy: nil", 1, true), r.stdout)
      assert.falsy(r.stderr:find(helper.ADMIN_PASSWORD, 1, true), r.stderr)
      assert.falsy(r.stderr:find("client-s3cret", 1, true), r.stderr)
      assert.falsy(r.stderr:find("AAP_", 1, true), r.stderr)
      assert.truthy(r.stderr:find("\nPATH=", 1, true) or r.stderr:find("^PATH="), r.stderr)
      assert.truthy(r.stderr:find("$HOME; `id`\n", 1, true), r.stderr)
      -- a hook hands over what it names
      r = rotate({ "--policy", policy([[return { max_age = "0s", before_rotate = function(ctx)
        ctx:run{ "env", env = { "AAP_HOSTNAME", WHO = "the hook" } }
        return false, "done"
      end }]], "p2.lua") }, env)
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stderr:find("AAP_HOSTNAME=" .. fx.sim.url, 1, true), r.stderr)
      assert.truthy(r.stderr:find("WHO=the hook", 1, true), r.stderr)
      assert.falsy(r.stderr:find("AAP_PASSWORD", 1, true), r.stderr)
    end)

    it("calls on_error with the failure", function()
      create_pat()
      local out = fx.dir .. "/err"
      local r = rotate({ "--policy", policy(([[
        return { max_age = "0s", strategy = "refresh", on_error = function(ctx)
          ctx:run({ "sh", "-c", "cat > %s" }, { stdin = ctx.error.code .. ": " .. ctx.error.message })
        end }]]):format(out)) })
      assert.equal(1, r.code)
      assert.truthy(helper.readfile(out):find("^policy: .*needs an application token"), helper.readfile(out))
    end)
  end)

  describe("dry run", function()
    it("changes nothing: no write request, same file bytes, no state file", function()
      create_pat()
      fx.sim:advance(400 * DAY)
      os.remove(fx.env_path .. ".aap-state.json")
      os.remove(fx.env_path .. ".aap-lock")
      local before = helper.readfile(fx.env_path)
      fx.sim:clear_log()
      local r = rotate({ "--policy", policy('return { max_age = "90d" }'), "--dry-run" })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stdout:find(
        "would rotate AAP_PAT: the token in .* does not work: .*%(dry run: nothing changed%)"), r.stdout)
      local log = fx.sim:log()
      assert.is_true(#log > 0)
      assert.same({}, writes(log))
      assert.equal(before, helper.readfile(fx.env_path))
      assert.is_nil(helper.readfile(fx.env_path .. ".aap-state.json"))
      assert.is_nil(helper.readfile(fx.env_path .. ".aap-lock"))
    end)

    it("reports pending revocations without doing them", function()
      create_pat()
      local pol = policy('return { max_age = "0s", grace = "1h" }')
      assert.equal(0, rotate({ "--policy", pol }).code)
      fx.sim:advance(7200)
      local state_before = helper.readfile(fx.env_path .. ".aap-state.json")
      fx.sim:clear_log()
      local r = rotate({ "--policy", pol, "--dry-run" })
      assert.equal(0, r.code, r.stderr)
      assert.truthy(r.stderr:find("would revoke the old token id=", 1, true), r.stderr)
      assert.same({}, writes(fx.sim:log()))
      assert.equal(state_before, helper.readfile(fx.env_path .. ".aap-state.json"))
      assert.equal(2, #server_tokens())
    end)
  end)

  describe("failures", function()
    it("refuses a bad policy with the file and line", function()
      create_pat()
      local pol = policy('return {\n  max_age = "90d",\n  strategy = "rotate",\n}')
      local r = rotate({ "--policy", pol })
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find(pol .. ':3: strategy: must be "recreate" or "refresh", not "rotate"', 1, true),
        r.stderr)
    end)

    it("does not run while another run holds the lock", function()
      create_pat()
      local lock = assert(require("aap").os.lock(fx.env_path .. ".aap-lock"))
      local r = rotate({ "--policy", policy('return { max_age = "0s" }') })
      lock:unlock()
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find("another aap run holds the lock", 1, true), r.stderr)
      assert.equal(1, #server_tokens())
    end)

    it("fails on a missing env file or key", function()
      local r = rotate({ "--policy", policy('return { max_age = "0s" }') })
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find("does not exist", 1, true), r.stderr)
      helper.writefile(fx.env_path, "OTHER=1\n")
      r = rotate({ "--policy", policy('return { max_age = "0s" }'), "--key", "AAP_PAT" })
      assert.equal(1, r.code)
      assert.truthy(r.stderr:find("holds no AAP_PAT", 1, true), r.stderr)
    end)

    it("deletes the new token again when it does not pass the check", function()
      local old = create_pat()
      local before = helper.readfile(fx.env_path)
      fx.sim:fault({ kind = "500", count = 20, path = "/api/gateway/v1/me/" })
      local r = rotate({ "--policy", policy('return { max_age = "0s" }') })
      fx.sim:control("DELETE", "/__sim/faults")
      assert.equal(2, r.code, r.stderr)
      assert.truthy(r.stderr:find("the new token did not work", 1, true), r.stderr)
      assert.equal(before, helper.readfile(fx.env_path))
      assert.same({ token_id(old) }, server_tokens())
      assert.is_nil(next(read_state().rotations))
    end)

    it("finds and deletes a token whose creation answer was lost", function()
      local old = create_pat()
      local before = helper.readfile(fx.env_path)
      fx.sim:fault({ kind = "close", count = 1, path = "/api/gateway/v1/tokens/", method = "POST" })
      local r = rotate({ "--policy", policy('return { max_age = "0s" }') })
      assert.are_not.equal(0, r.code)
      assert.equal(before, helper.readfile(fx.env_path))
      assert.same({ token_id(old) }, server_tokens())
      assert.is_nil(next(read_state().rotations))
    end)
  end)

  describe("Lua API", function()
    local rotate_api = require("aap.rotate")

    it("rotates many env files in one run, with a policy table and an explicit clock", function()
      local paths = {}
      for i = 1, 3 do
        paths[i] = fx.dir .. "/svc" .. i .. ".env"
        local r = fx.aap({ "token", "create", "--env-file", paths[i] })
        assert.equal(0, r.code, r.stderr)
      end
      local conn = { url = fx.sim.url, username = "admin", password = helper.ADMIN_PASSWORD }
      local now = os.time() + 100 * DAY
      for i, path in ipairs(paths) do
        local old = get("AAP_PAT", path)
        local res = assert(rotate_api.run({ conn = conn, env_file = path, key = "AAP_PAT", now = now,
                                            policy = { max_age = "90d" } }))
        assert.equal("rotate", res.decision)
        assert.equal("max_age", res.code)
        assert.is_true(res.rotated)
        assert.equal("recreate", res.strategy)
        assert.equal(get("AAP_PAT", path), res.new:secret())
        assert.equal(old, res.old:secret())
        assert.equal(1, #res.revoked, "file " .. i)
      end
      assert.equal(3, #server_tokens())
      local res = assert(rotate_api.run({ conn = conn, env_file = paths[1], policy = { max_age = "90d" } }))
      assert.equal("keep", res.decision)
    end)

    it("takes the refresh's OAuth client from the caller, as a table or a function of the env file", function()
      local app = fx.sim.seed.application
      assert.equal(0, fx.aap({ "token", "create", "--env-file", fx.env_path, "--application", app.name }).code)
      local conn = { url = fx.sim.url, username = "admin", password = helper.ADMIN_PASSWORD }
      local seen
      local function client(doc)
        seen = doc:get("AAP_CLIENT_ID")
        return { client_id = app.client_id, client_secret = app.client_secret }
      end
      local before = get("AAP_TOKEN")
      local refresh = { max_age = "0s", strategy = "refresh" }
      local res = assert(rotate_api.run({ conn = conn, env_file = fx.env_path, client = client, policy = refresh }))
      assert.equal("refresh", res.strategy)
      assert.equal(app.client_id, seen)
      assert.are_not.equal(before, get("AAP_TOKEN"))
      res = assert(rotate_api.run({ conn = conn, env_file = fx.env_path, policy = refresh,
                                    client = { client_id = app.client_id, client_secret = app.client_secret } }))
      assert.equal("refresh", res.strategy)
      assert.is_true(works(get("AAP_TOKEN")))
      -- a bad client is refused, and nothing changes
      local value = get("AAP_TOKEN")
      local _, err = rotate_api.run({ conn = conn, env_file = fx.env_path, policy = refresh,
        client = function() return nil, { code = "usage", message = "no client here" } end })
      assert.equal("no client here", err.message)
      assert.equal(value, get("AAP_TOKEN"))
      assert.has_error(function()
        rotate_api.run({ conn = conn, env_file = fx.env_path, policy = {}, client = "id" })
      end)
    end)

    it("returns nil and an error, and raises on programmer errors", function()
      local conn = { url = fx.sim.url, username = "admin", password = helper.ADMIN_PASSWORD }
      local res, err = rotate_api.run({ conn = conn, env_file = fx.dir .. "/none.env", policy = { max_age = "1d" } })
      assert.is_nil(res)
      assert.equal("usage", err.code)
      res, err = rotate_api.run({ conn = conn, env_file = fx.dir .. "/none.env", policy = { max_age = "1x" } })
      assert.is_nil(res)
      assert.equal("policy", err.code)
      assert.has_error(function() rotate_api.run({ conn = conn, env_file = "x", policy = {}, bogus = 1 }) end)
      assert.has_error(function() rotate_api.run({ env_file = "x", policy = {} }) end)
    end)
  end)
end)
