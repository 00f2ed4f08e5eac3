-- The same requests to `aap sim` (its default behaviour) and to the reference gateway
-- (../shared/reference-gateway: django-ansible-base's oauth2_provider, the code behind the
-- gateway's token API), compared: status, content type, Location / WWW-Authenticate / Allow,
-- JSON bodies (every key and the type of every value, and the values themselves once what
-- must differ is normalised: times, token values, client ids and secrets), error messages and
-- pagination links. Where they differ the reference is right (API doc §17).
--
-- The emulator is seeded like the reference (users _system, admin, normal; organization
-- Default; applications "my-client-app" and "RHDH Integration", confidential, password grant,
-- owned by admin), and both are reset before every test, so ids line up and are compared as they
-- are.
local helper = require("helper")
local reference = require("reference")

local json, null = helper.json, helper.json.null
local B = "/api/gateway/v1/"
local APPS = { "my-client-app", "RHDH Integration" }

local ref, why = reference.get()

-- Test data ------------------------------------------------------------------------------

local function random_alnum(n)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(n * 2)
  f:close()
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
  local out = {}
  for i = 1, n do
    local k = bytes:byte(i) % 62 + 1
    out[i] = abc:sub(k, k)
  end
  return table.concat(out)
end

-- The emulator's --state: the reference's seed, with the emulator's own passwords and secrets.
local function sim_state(normal_password, apps)
  local state = {
    users = {
      { id = 1, username = "_system", login = false, managed = true },
      { id = 2, username = "admin", is_superuser = true, email = "admin@example.com" },
      { id = 3, username = "normal", password = normal_password, email = "normal@example.com" },
    },
    organizations = { { id = 1, name = "Default", description = "Default organization" } },
    applications = {},
  }
  for i, name in ipairs(APPS) do
    -- seeded outside a request, the reference's applications were created by _system
    state.applications[i] = { id = i, name = name, organization = 1, user = 2, created_by = 1,
                              client_type = "confidential",
                              authorization_grant_type = "password", redirect_uris = "",
                              client_id = apps[name].client_id, client_secret = apps[name].client_secret }
  end
  return state
end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function form(pairs_list)
  local out = {}
  for i = 1, #pairs_list, 2 do out[#out + 1] = urlencode(pairs_list[i]) .. "=" .. urlencode(pairs_list[i + 1]) end
  return table.concat(out, "&")
end

-- Requests ---------------------------------------------------------------------------------

-- One server: `name`, `server` (a helper.Sim or a reference.Ref), `cred` (Basic credentials by
-- user name), `apps` (id, client_id, client_secret by name), `v` (per-test values: tokens...).
local function request(t, method, path, o)
  o = o or {}
  local opts = { headers = {}, json = o.json, body = o.body }
  for k, v in pairs(o.headers or {}) do opts.headers[k] = v end
  local as = o.as or "admin"
  if as == "admin" then
    opts.bearer = t.v.admin_pat            -- Bearer: Basic costs the reference a PBKDF2 run
  elseif type(as) == "string" and as:match("^basic:") then
    opts.basic = t.cred[as:sub(7)]
  elseif as == "normal" then
    opts.basic = t.cred.normal
  elseif type(as) == "table" and as.bearer then
    opts.bearer = as.bearer(t)
  elseif type(as) == "table" and as.client then
    local app = t.apps[as.client]
    opts.basic = { app.client_id, as.secret or app.client_secret }
  elseif type(as) == "table" and as.basic then
    opts.basic = as.basic
  end
  if o.form then
    opts.body = form(type(o.form) == "function" and o.form(t) or o.form)
    opts.headers["content-type"] = "application/x-www-form-urlencoded"
  end
  local st, text, h = t.server:raw(method, type(path) == "function" and path(t) or path, opts)
  assert(st, "no answer from " .. t.name .. ": " .. tostring(text))
  local r = { status = st, text = text, ctype = h["content-type"], location = h["location"],
              www = h["www-authenticate"], allow = h["allow"] }
  if r.ctype and r.ctype:match("^application/json") and text ~= "" then r.body = json.decode(text) end
  return r
end

-- Normalising and comparing -------------------------------------------------------------

local function normal_value(v)
  if type(v) ~= "string" then return v end
  if v:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d") then return "<time>" end
  if v:match("^%x+%-%x+%-%x+%-%x+%-%x+$") then return "<uuid>" end
  if v:match("^%w+$") then
    if #v == 30 then return "<token>" end
    if #v == 40 then return "<client_id>" end
    if #v == 128 then return "<client_secret>" end
  end
  return v
end

local function ignored(path, ignore)
  for _, pat in ipairs(ignore or {}) do
    if type(pat) == "function" then
      if pat(path) then return true end
    elseif path:match(pat) then
      return true
    end
  end
  return false
end

local function kind(v)
  if v == null then return "null" end
  return type(v)
end

-- Differences between two decoded bodies, as "path: ..." lines.
local function diff(a, b, path, ignore, out)
  if ignored(path, ignore) then return out end
  if kind(a) ~= kind(b) then
    out[#out + 1] = ("%s: reference %s %s, sim %s %s"):format(path, kind(a), json.encode(a), kind(b), json.encode(b))
  elseif type(a) == "table" then
    local keys = {}
    for k in pairs(a) do keys[k] = true end
    for k in pairs(b) do keys[k] = true end
    local sorted = {}
    for k in pairs(keys) do sorted[#sorted + 1] = k end
    table.sort(sorted, function(x, y) return tostring(x) < tostring(y) end)
    for _, k in ipairs(sorted) do
      local p = path .. "." .. tostring(k)
      if a[k] == nil and not ignored(p, ignore) then
        out[#out + 1] = p .. ": only the sim has it (" .. json.encode(b[k]) .. ")"
      elseif b[k] == nil and not ignored(p, ignore) then
        out[#out + 1] = p .. ": only the reference has it (" .. json.encode(a[k]) .. ")"
      else
        diff(a[k], b[k], p, ignore, out)
      end
    end
  elseif normal_value(a) ~= normal_value(b) then
    out[#out + 1] = ("%s: reference %s, sim %s"):format(path, json.encode(a), json.encode(b))
  end
  return out
end

-- The differences between two answers (status, content type, headers, body).
local function differences(a, b, o)
  o = o or {}
  local out = {}
  local function cmp(what, x, y)
    if x ~= y then out[#out + 1] = ("%s: reference %s, sim %s"):format(what, tostring(x), tostring(y)) end
  end
  cmp("status", a.status, b.status)
  cmp("content-type", a.ctype and a.ctype:lower():gsub("%s", ""), b.ctype and b.ctype:lower():gsub("%s", ""))
  cmp("Location", a.location, b.location)
  cmp("WWW-Authenticate", a.www, b.www)
  if o.allow then cmp("Allow", a.allow, b.allow) end
  if a.body ~= nil or b.body ~= nil then
    if o.body ~= false then diff(a.body, b.body, "body", o.ignore, out) end
  elseif o.body ~= false then
    cmp("body", a.text, b.text)
  end
  return out
end

local R, S -- the reference and the emulator, as request targets

--- Run step(t) on both servers and assert that the answers agree. Returns both answers.
local function same(label, step, o)
  local a, b = step(R), step(S)
  local d = differences(a, b, o)
  if #d > 12 then d = { table.concat(d, "\n  ", 1, 12), ("... and %d more"):format(#d - 12) } end
  assert(#d == 0, label .. ":\n  " .. table.concat(d, "\n  "))
  return a, b
end

--- The same request to both (see request), compared.
local function both(method, path, o, cmp)
  return same(method .. " " .. (type(path) == "string" and path or "<path>"),
    function(t) return request(t, method, path, o) end, cmp)
end

-- Run fn(t) on both servers: setting up, with no comparison.
local function each(fn)
  fn(R)
  fn(S)
end

local function created(t, r, what)
  assert(r.status == 201, ("%s on %s: %d %s"):format(what, t.name, r.status, r.text))
  return r.body
end

-- A PAT or an app token, made by admin (Bearer) unless o.as says otherwise; returns its body.
local function make_token(t, fields, o)
  return created(t, request(t, "POST", B .. "tokens/", { json = fields, as = o and o.as }), "POST tokens/")
end

-- The reference's me/ item has only id, username and is_superuser (a view of its own).
local function minimal_me(path)
  local k = path:match("^body%.results%.1%.([%w_]+)$")
  return k ~= nil and k ~= "id" and k ~= "username" and k ~= "is_superuser"
end

local function days(iso)
  local y, m, d = iso:match("^(%d+)-(%d+)-(%d+)")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy
end

-- The specs --------------------------------------------------------------------------------

local describe_ref = ref and describe or function(name)
  describe(name, function() pending("no reference gateway: " .. tostring(why)) end)
end

describe_ref("differential: aap sim against the reference gateway", function()
  local sim

  setup(function()
    local normal_pw = random_alnum(20)
    local apps = {}
    for _, name in ipairs(APPS) do
      apps[name] = { client_id = random_alnum(40), client_secret = random_alnum(128) }
    end
    local dir = helper.tmpdir()
    helper.writefile(dir .. "/state.json", json.encode(sim_state(normal_pw, apps)), 384)
    sim = helper.start_sim{ args = { "--state", dir .. "/state.json" } }
    for i, name in ipairs(APPS) do apps[name].id = i end
    S = { name = "sim", server = sim, apps = apps, v = {},
          cred = { admin = { "admin", sim.admin_password }, normal = { "normal", normal_pw } } }
    local seed = ref.seed
    R = { name = "reference", server = ref, apps = seed.applications, v = {},
          cred = { admin = { "admin", seed.admin.password }, normal = { "normal", seed.normal.password } } }
  end)

  teardown(function()
    if sim then sim:stop() end
    ref:release()
    helper.cleanup()
  end)

  before_each(function()
    ref:reset()
    sim:reset()
    -- token 1 on both: admin's PAT, the Bearer of every "admin" request below
    each(function(t)
      t.v = {}
      t.v.admin_pat = make_token(t, { description = "admin PAT" }, { as = "basic:admin" }).token
    end)
  end)

  it("is seeded alike", function()
    assert.equal(2, ref.seed.admin.id)
    assert.equal(3, ref.seed.normal.id)
    for i, name in ipairs(APPS) do assert.equal(i, ref.seed.applications[name].id) end
    both("GET", B .. "applications/?order_by=id")
    both("GET", B .. "me/", nil, { ignore = { minimal_me } })
    both("GET", B .. "me/", { as = "normal" }, { ignore = { minimal_me } })
  end)

  describe("§17 differences", function()
    local function seed_tokens()
      each(function(t)
        make_token(t, { description = "a", scope = "read" })              -- 2
        make_token(t, { description = "b", application = 1 })            -- 3: admin's (application.user)
        make_token(t, { description = "c" }, { as = "normal" })          -- 4: normal's PAT
        make_token(t, { description = "d", application = 2, scope = "read" }) -- 5
      end)
    end

    it("users/{id}/tokens/, personal_tokens/, authorized_tokens/ ignore filters and order_by, and paginate",
      function()
        seed_tokens()
        local queries = { "", "?description=a", "?order_by=-id", "?order=-id", "?order_by=bogus", "?token=x",
                          "?refresh_token=x", "?client_secret=x", "?application=1", "?application__isnull=true",
                          "?last_used__isnull=false&order_by=-last_used", "?id__in=", "?description__regex=(",
                          "?user=3", "?page_size=1", "?page_size=1&page=2&order_by=-id", "?page_size=2&page=2",
                          "?page=999", "?page=0", "?count_disabled=1", "?page_size=0", "?page_size=-1",
                          "?search=a" }
        for _, list in ipairs{ "tokens", "personal_tokens", "authorized_tokens" } do
          for _, uid in ipairs{ 2, 3, 999 } do
            for _, q in ipairs(queries) do
              both("GET", ("%susers/%d/%s/%s"):format(B, uid, list, q))
            end
          end
        end
        both("GET", B .. "users/2/tokens/", { as = "normal" })          -- another user's list: allowed
        both("GET", B .. "users/abc/tokens/")                           -- a pk the ORM cannot take
        both("POST", B .. "users/2/tokens/", { json = {} }, { allow = true })
      end)

    it("top-level tokens/ does honour filters and order_by", function()
      seed_tokens()
      for _, q in ipairs{ "?user=3", "?application=1", "?application=2&scope=read", "?application__isnull=true",
                          "?description=b", "?description__icontains=B", "?order_by=-id", "?order=-id",
                          "?order_by=description", "?order_by=bogus", "?token=x", "?refresh_token=x",
                          "?user=abc", "?id__in=", "?id__in=2,4", "?not__user=2", "?search=a" } do
        both("GET", B .. "tokens/" .. q)
      end
      both("GET", B .. "applications/1/tokens/")
      both("GET", B .. "applications/1/tokens/?order_by=-id")
    end)

    it("a refresh grant after the access token was DELETEd is a 500 HTML page, every time", function()
      each(function(t)
        local tok = make_token(t, { application = 1, scope = "read" })
        t.v.id, t.v.refresh = math.tointeger(tok.id), tok.refresh_token
      end)
      both("DELETE", function(t) return B .. "tokens/" .. t.v.id .. "/" end)
      local refresh = { as = { client = "my-client-app" },
                        form = function(t) return { "grant_type", "refresh_token", "refresh_token", t.v.refresh } end }
      local a = both("POST", "/o/token/", refresh)
      assert.equal(500, a.status)
      both("POST", "/o/token/", refresh)
      both("GET", B .. "tokens/")
    end)

    it("tokens/ as a non-superuser lists every user's tokens, masked; another's token is 403", function()
      seed_tokens()
      local a = both("GET", B .. "tokens/", { as = "normal" })
      assert.equal(5, a.body.count)
      both("GET", B .. "tokens/?user=2", { as = "normal" })
      both("GET", B .. "tokens/2/", { as = "normal" })
      both("PATCH", B .. "tokens/2/", { as = "normal", json = { description = "mine now" } })
      both("DELETE", B .. "tokens/2/", { as = "normal" })
      both("GET", B .. "tokens/4/", { as = "normal" })
      both("POST", B .. "tokens/", { as = "normal", json = { application = 1 } })
      both("GET", B .. "applications/", { as = "normal" })
      both("GET", B .. "applications/1/", { as = "normal" })
    end)

    it("a read-scope Bearer may POST and PATCH tokens/, not POST organizations/", function()
      each(function(t) t.v.read = make_token(t, { description = "r", scope = "read" }) end)
      local read = { bearer = function(t) return t.v.read.token end }
      local a = both("POST", B .. "tokens/", { as = read, json = { description = "by read", scope = "write" } })
      assert.equal(201, a.status)
      a = both("PATCH", B .. "tokens/2/", { as = read, json = { description = "patched by read" } })
      assert.equal(200, a.status)
      both("PUT", B .. "tokens/2/", { as = read, json = { description = "put by read", scope = "read" } })
      both("POST", B .. "organizations/", { as = read, json = { name = "nope" } })
      both("PATCH", B .. "applications/1/", { as = read, json = { description = "nope" } })
      both("DELETE", B .. "tokens/3/", { as = read })
      both("DELETE", B .. "tokens/2/", { as = read })
    end)

    it("POST applications/ without organization: 201, organization null, Location", function()
      local a = both("POST", B .. "applications/", { json = { name = "no org", client_type = "confidential",
        authorization_grant_type = "password" } })
      assert.equal(201, a.status)
      assert.equal(null, a.body.organization)
      assert.equal(B .. "applications/3/", a.location)
      both("POST", B .. "applications/", { json = { name = "no org", client_type = "public",
        authorization_grant_type = "password" } })
      both("GET", B .. "applications/3/")
      both("GET", B .. "applications/4/")
      both("POST", B .. "applications/", { json = { name = "null org", organization = null, client_type = "public",
        authorization_grant_type = "password" } })
      both("POST", B .. "applications/", { json = { name = "my-client-app", organization = 1,
        client_type = "public", authorization_grant_type = "password" } })
      both("POST", B .. "applications/", { json = { name = "bad", organization = 999, client_type = "secret",
        authorization_grant_type = "implicit" } })
      both("POST", B .. "applications/", { json = {} })
      both("PATCH", B .. "applications/3/", { json = { organization = 1, description = "now in Default" } })
      both("PATCH", B .. "applications/3/", { json = { organization = null } })
    end)

    it("201 answers carry Location", function()
      local a = both("POST", B .. "tokens/", { json = { description = "pat" } })
      assert.equal(B .. "tokens/2/", a.location)
      a = both("POST", B .. "tokens/", { json = { description = "app", application = 2 } })
      assert.equal(B .. "tokens/3/", a.location)
      a = both("POST", B .. "applications/", { json = { name = "x", organization = 1, client_type = "public",
        authorization_grant_type = "authorization-code", redirect_uris = "https://example.com/cb" } })
      assert.equal(B .. "applications/3/", a.location)
      -- the organization model is the test project's own: its body is not the gateway's
      a = both("POST", B .. "organizations/", { json = { name = "Other" } }, { body = false })
      assert.equal(B .. "organizations/2/", a.location)
    end)

    it("the default lifetime is DAB's 1000 years: expires_in 31536000000", function()
      local a = both("POST", "/o/token/", { as = { client = "RHDH Integration" },
        form = function(t)
          return { "grant_type", "password", "username", "normal", "password", t.cred.normal[2] }
        end })
      assert.equal(31536000000, a.body.expires_in)
      local spans = {}
      each(function(t)
        local tok = make_token(t, { description = "long" })
        spans[t.name] = days(tok.expires) - days(tok.created)
      end)
      assert.equal(spans.reference, spans.sim)
      assert.is_true(spans.sim >= 365000 - 1 and spans.sim <= 365000 + 1)
    end)

    it("POST without a Content-Type is 415 text/plain; without a body it is an empty form", function()
      local a = both("POST", B .. "tokens/", { body = '{"description": "x"}' })
      assert.equal(415, a.status)
      both("POST", B .. "applications/", { body = "name=x" })
      both("POST", B .. "tokens/", { body = "" })
    end)
  end)

  it("tells them apart when the emulator behaves as a later gateway (behaviour 2025)", function()
    sim:configure({ behaviour = "2025" })
    local function answers(method, path, o)
      return request(R, method, path, o), request(S, method, path, o)
    end
    local a, b = answers("GET", B .. "users/2/tokens/?order_by=-id&description=nothing")
    assert.is_true(#differences(a, b) > 0)
    a, b = answers("POST", "/o/token/", { as = { client = "RHDH Integration" },
      form = function(t) return { "grant_type", "password", "username", "admin", "password", t.cred.admin[2] } end })
    assert.same({ "body.expires_in: reference 31536000000, sim 31536000" }, differences(a, b))
    a, b = answers("POST", B .. "applications/", { json = { name = "no org", client_type = "public",
      authorization_grant_type = "password" } })
    assert.same({ "status: reference 201, sim 400" }, { differences(a, b)[1] })
  end)

  describe("identical on both", function()
    it("scope validation messages", function()
      for _, scope in ipairs{ "admin", "read  write", "read read", "", " ", "read write admin foo", "write read",
                              "read,write", ("r"):rep(33), 123, null, true, { "read" } } do
        both("POST", B .. "tokens/", { json = { description = "s", scope = scope } })
      end
      both("POST", B .. "tokens/", { form = { "description", "form", "scope", "" } })
      both("POST", B .. "tokens/", { form = { "description", "form", "scope", "admin" } })
      both("PATCH", B .. "tokens/1/", { json = { scope = "admin" } })
    end)

    it("invalid pk, JSON parse errors, description null, unknown fields, form bodies", function()
      for _, app in ipairs{ 999, "abc", true, 1.5, "1" } do
        both("POST", B .. "tokens/", { json = { application = app } })
      end
      for _, body in ipairs{ '{"description": ', "[]", "null", '"x"', "{bad json}", '{"a" 1}', '{"a":1} x',
                             '{"a":1 "b":2}' } do
        both("POST", B .. "tokens/", { body = body, headers = { ["content-type"] = "application/json" } })
      end
      both("POST", B .. "tokens/", { json = { description = null } })
      both("POST", B .. "tokens/", { json = { description = "x", bogus = 1, user = 3, token = "mine", id = 77,
        expires = "2030-01-01T00:00:00Z" } })
      both("POST", B .. "tokens/", { form = { "description", "by form", "scope", "read" } })
      both("POST", B .. "tokens/", { form = { "description", "app by form", "application", "1" } })
      both("POST", B .. "tokens/", { body = "description=x", headers = { ["content-type"] = "text/csv" } })
      both("POST", B .. "tokens/?validate=true", { json = { description = "dry" } })
      both("GET", B .. "tokens/")
    end)

    it("POST without the trailing slash is a 301", function()
      both("POST", "/api/gateway/v1/tokens", { json = { description = "x" } })
      both("GET", "/api/gateway/v1/tokens?page=2")
      both("GET", B .. "nowhere/", nil, { body = false })
    end)

    it("pagination: next/previous, page sizes, bad pages, ordering, refused filters", function()
      each(function(t)
        for i = 1, 51 do make_token(t, { description = ("bulk %02d"):format(i) }) end
      end)
      for _, q in ipairs{ "", "?page=2", "?page=last", "?page=999", "?page=0", "?page=x", "?page_size=0",
                          "?page_size=-1", "?page_size=abc", "?page_size=1000", "?page_size=20&page=2",
                          "?page_size=20&page=3&description__startswith=bulk", "?order_by=-id&page_size=25&page=2",
                          "?order_by=bogus", "?order_by=-bogus", "?token=x", "?token__startswith=x",
                          "?count_disabled=1&page=2" } do
        both("GET", B .. "tokens/" .. q)
      end
      for _, q in ipairs{ "?client_secret=x", "?name=my-client-app", "?name=RHDH%20Integration&organization=1",
                          "?name__icontains=rhdh", "?organization=1", "?order_by=-name", "?order_by=bogus" } do
        both("GET", B .. "applications/" .. q)
      end
    end)

    it("token detail, PATCH and PUT, DELETE 204 then 404", function()
      each(function(t) make_token(t, { description = "app", application = 1, scope = "read" }) end)
      both("GET", B .. "tokens/2/")
      both("PATCH", B .. "tokens/2/", { json = { description = "patched" } })
      both("PUT", B .. "tokens/2/", { json = { description = "put" } })
      both("PUT", B .. "tokens/2/", { json = { scope = "write", application = 2 } })
      both("PATCH", B .. "tokens/2/", { json = { application = null } })
      both("GET", B .. "tokens/2/")
      both("GET", B .. "applications/1/")
      both("GET", B .. "applications/2/")
      both("DELETE", B .. "tokens/2/")
      both("DELETE", B .. "tokens/2/")
      both("GET", B .. "tokens/2/")
      both("GET", B .. "tokens/abc/")
      both("GET", B .. "tokens/999/")
      both("GET", B .. "applications/999/")
      both("GET", B .. "applications/abc/")
      both("DELETE", B .. "tokens/1/", { as = "normal" })
    end)

    it("/o/token/: password grant, refresh rotation, reuse, wrong secret, scopes, grants, GET", function()
      local client = { client = "my-client-app" }
      local pw = function(extra)
        return function(t)
          local f = { "grant_type", "password", "username", "admin", "password", t.cred.admin[2] }
          for _, x in ipairs(extra or {}) do f[#f + 1] = x end
          return f
        end
      end
      local each_grant = function(label, o)
        return same(label, function(t)
          local r = request(t, "POST", "/o/token/", o)
          if r.body and r.body.refresh_token then
            t.v.refresh, t.v.access = r.body.refresh_token, r.body.access_token
          end
          return r
        end)
      end
      each_grant("password grant", { as = client, form = pw({ "scope", "read" }) })
      local spent = {}
      each(function(t) spent[t.name] = { refresh = t.v.refresh, access = t.v.access } end)
      local refresh = function(t) return { "grant_type", "refresh_token", "refresh_token", t.v.refresh } end
      each_grant("refresh", { as = client, form = refresh })
      both("GET", B .. "tokens/")
      both("GET", B .. "me/", { as = { bearer = function(t) return spent[t.name].access end } })
      both("POST", "/o/token/", { as = client,
        form = function(t) return { "grant_type", "refresh_token", "refresh_token", spent[t.name].refresh } end })
      both("POST", "/o/token/", { as = { client = "my-client-app", secret = "wrong" }, form = refresh })
      both("POST", "/o/token/", { as = { client = "RHDH Integration" }, form = refresh })
      local function narrowed(scope)
        return function(t) return { "grant_type", "refresh_token", "refresh_token", t.v.refresh, "scope", scope } end
      end
      both("POST", "/o/token/", { as = client, form = narrowed("write") })   -- wider: invalid_scope
      both("POST", "/o/token/", { as = client, form = narrowed("read") })
      both("POST", "/o/token/", { as = client, form = { "grant_type", "refresh_token" } })
      both("POST", "/o/token/", { as = client, form = { "grant_type", "refresh_token", "refresh_token", "nope" } })
      both("POST", "/o/token/", { as = client, form = pw() })
      both("POST", "/o/token/", { as = client, form = pw({ "scope", "admin" }) })
      both("POST", "/o/token/", { as = client, form = { "grant_type", "password", "username", "admin",
        "password", "wrong" } })
      both("POST", "/o/token/", { as = client, form = { "grant_type", "password", "username", "admin" } })
      both("POST", "/o/token/", { as = client, form = { "grant_type", "client_credentials" } })
      both("POST", "/o/token/", { as = client, form = { "grant_type", "magic" } })
      both("POST", "/o/token/", { as = client, form = {} })
      both("POST", "/o/token/", { as = client, json = { grant_type = "password" } })
      both("POST", "/o/token/", { as = "anon", form = { "grant_type", "magic" } })
      both("GET", "/o/token/", { as = "anon" }, { allow = true })
      both("GET", "/o/", { as = "anon" })
    end)

    it("/o/revoke_token/: 200 empty, effective; revoking a refresh token kills its access token", function()
      local client = { client = "RHDH Integration" }
      each(function(t)
        t.v.a = make_token(t, { application = 2, description = "a" })
        t.v.b = make_token(t, { application = 2, description = "b" })
      end)
      local a = both("POST", "/o/revoke_token/", { as = client,
        form = function(t) return { "token", t.v.a.token } end })
      assert.equal(200, a.status)
      both("GET", B .. "me/", { as = { bearer = function(t) return t.v.a.token end } })
      both("POST", "/o/revoke_token/", { as = client,
        form = function(t) return { "token", t.v.b.refresh_token, "token_type_hint", "refresh_token" } end })
      both("GET", B .. "me/", { as = { bearer = function(t) return t.v.b.token end } })
      both("GET", B .. "tokens/")
      both("POST", "/o/revoke_token/", { as = client, form = { "token", "unknown" } })
      both("POST", "/o/revoke_token/", { as = client, form = {} })
      both("POST", "/o/revoke_token/", { as = client, form = { "token", "x", "token_type_hint", "magic" } })
      both("POST", "/o/revoke_token/", { as = { client = "RHDH Integration", secret = "wrong" },
        form = { "token", "unknown" } })
    end)

    it("401s: no credentials, garbage or deleted Bearer, bad Basic; 405 with Allow", function()
      both("GET", B .. "tokens/", { as = "anon" })
      both("GET", B .. "tokens/", { as = { bearer = function() return "garbage" end } })
      both("DELETE", B .. "tokens/1/")
      both("GET", B .. "tokens/", { as = { bearer = function(t) return t.v.admin_pat end } })
      both("GET", B .. "tokens/", { as = { basic = { "admin", "wrong" } } })
      both("GET", B .. "tokens/", { as = { basic = { "nobody", "wrong" } } })
      both("GET", B .. "tokens/", { as = "anon", headers = { authorization = "Basic" } })
      both("GET", B .. "tokens/", { as = "anon", headers = { authorization = "Basic a b" } })
      both("GET", B .. "tokens/", { as = "anon", headers = { authorization = "Basic %%%" } })
      both("PUT", B .. "tokens/", { as = "basic:admin", json = {} }, { allow = true })
      both("POST", B .. "applications/1/tokens/", { as = "basic:admin", json = {} }, { allow = true })
    end)

    it("ping/ answers anonymously", function()
      both("GET", B .. "ping/", { as = "anon" }, { ignore = { "^body%.db_exception$", "^body%.proxy_status_code$",
        "^body%.proxy_exception_type$" } })
    end)
  end)
end)
