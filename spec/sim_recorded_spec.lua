-- aap sim: the recorded responses of the API doc §13, replayed in order against a sim seeded like the
-- recording (only _system and admin): same status, same JSON keys in the same order.
-- luacheck: ignore 631 (the recorded bodies keep their long lines verbatim)
local helper = require("helper")
local mime = require("mime")

local B = "/api/gateway/v1/"

local R = {}
R.PAT = [==[
{
  "id": 1, "url": "/api/gateway/v1/tokens/1/",
  "related": {
    "activity_stream": "/api/gateway/v1/activitystream/?content_type=33&object_id=1",
    "created_by": "/api/gateway/v1/users/2/", "modified_by": "/api/gateway/v1/users/2/",
    "user": "/api/gateway/v1/users/2/"
  },
  "summary_fields": {
    "modified_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "created_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "user": {"id": 2, "username": "admin", "first_name": "", "last_name": ""}
  },
  "created": "2026-11-29T10:21:27.047839Z", "created_by": 2, "modified": "2026-11-29T10:21:27.062032Z",
  "modified_by": 2, "expires": "3026-04-01T10:21:27.044063Z", "user": 2, "application": null,
  "description": "my PAT", "last_used": null, "scope": "write", "token": "R50pb5LuAHfXQ17vDp8zyPHpd1CsjZ",
  "refresh_token": null
}
]==]
R.ORG = [==[
{
  "id": 1, "url": "/api/gateway/v1/organizations/1/",
  "related": {
    "admins": "/api/gateway/v1/organizations/1/admins/", "cows": "/api/gateway/v1/organizations/1/cows/",
    "created_by": "/api/gateway/v1/users/2/", "inventories": "/api/gateway/v1/organizations/1/inventories/",
    "modified_by": "/api/gateway/v1/users/2/", "namespaces": "/api/gateway/v1/organizations/1/namespaces/",
    "parentnames": "/api/gateway/v1/organizations/1/parentnames/",
    "positionmodels": "/api/gateway/v1/organizations/1/positionmodels/",
    "public_data": "/api/gateway/v1/organizations/1/publicdata/", "teams": "/api/gateway/v1/organizations/1/teams/",
    "users": "/api/gateway/v1/organizations/1/members/",
    "uuidmodels": "/api/gateway/v1/organizations/1/uuidmodels/",
    "weirdperms": "/api/gateway/v1/organizations/1/weirdperms/"
  },
  "summary_fields": {
    "modified_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "created_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "resource": {"ansible_id": "7c2e610a-80db-434c-8458-ff2a7e6a8638", "resource_type": "shared.organization"}
  },
  "modified": "2026-11-29T10:21:27.331112Z", "created": "2026-11-29T10:21:27.331145Z", "name": "Default",
  "description": "", "extra_field": null, "modified_by": 2, "created_by": 2, "users": [], "admins": []
}
]==]
R.APP = [==[
{
  "id": 1, "url": "/api/gateway/v1/applications/1/",
  "related": {
    "access_tokens": "/api/gateway/v1/applications/1/tokens/",
    "activity_stream": "/api/gateway/v1/activitystream/?content_type=30&object_id=1",
    "created_by": "/api/gateway/v1/users/2/", "modified_by": "/api/gateway/v1/users/2/",
    "organization": "/api/gateway/v1/organizations/1/"
  },
  "summary_fields": {
    "modified_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "created_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "organization": {"id": 1, "name": "Default"}, "tokens": {"count": 0, "results": []}
  },
  "created": "2026-11-29T10:21:28.030346Z", "created_by": 2, "modified": "2026-11-29T10:21:28.030315Z",
  "modified_by": 2, "name": "my-client-app", "client_id": "IzdKFwPDsXgG6tluI0fv1oh0tIJt6LFUzcSZIEWw",
  "redirect_uris": "", "post_logout_redirect_uris": "", "algorithm": "", "user": null, "description": "test app",
  "organization": 1,
  "client_secret": "SeXHMvUZv4QrFrixlXiT9YHmPhm7ArDijNSGa6cChUHuoLIbGSq73Q7DcfoBKDlILvh1D6FzLdSQCDBEdzBXWERNetCh1vcJGX6zJWDb0NSIdU9wWmtf5MPg8tTKJSE7",
  "client_type": "confidential", "skip_authorization": false, "authorization_grant_type": "password"
}
]==]
R.APP_TOKEN = [==[
{
  "id": 2, "url": "/api/gateway/v1/tokens/2/",
  "related": {
    "activity_stream": "/api/gateway/v1/activitystream/?content_type=33&object_id=2",
    "application": "/api/gateway/v1/applications/1/", "created_by": "/api/gateway/v1/users/2/",
    "modified_by": "/api/gateway/v1/users/2/", "user": "/api/gateway/v1/users/2/"
  },
  "summary_fields": {
    "modified_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "created_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "user": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
    "application": {"id": 1, "name": "my-client-app"}
  },
  "created": "2026-11-29T10:21:29.086970Z", "created_by": 2, "modified": "2026-11-29T10:21:29.097926Z",
  "modified_by": 2, "expires": "3026-04-01T10:21:29.084568Z", "user": 2, "application": 1,
  "description": "app token", "last_used": null, "scope": "read", "token": "dVU2BqTXZFgcbxKZjByqLgOcpo71VV",
  "refresh_token": "1aa3P01jmcQomuEk0YZ7QSmHXewfiP"
}
]==]
R.REFRESH = [==[
{
  "access_token": "x8EFxJwC6J5HPNIKYHFouF5hdlMVlk", "expires_in": 31536000000, "token_type": "Bearer",
  "scope": "read", "refresh_token": "dBSoOR2HGw4UsH7ncCNtrxHCweNTXG"
}
]==]
R.LIST = [==[
{
  "count": 2, "next": null, "previous": null,
  "results": [
    {
      "id": 1, "url": "/api/gateway/v1/tokens/1/",
      "related": {
        "activity_stream": "/api/gateway/v1/activitystream/?content_type=33&object_id=1",
        "created_by": "/api/gateway/v1/users/2/", "modified_by": "/api/gateway/v1/users/2/",
        "user": "/api/gateway/v1/users/2/"
      },
      "summary_fields": {
        "modified_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
        "created_by": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
        "user": {"id": 2, "username": "admin", "first_name": "", "last_name": ""}
      },
      "created": "2026-11-29T10:21:27.047839Z", "created_by": 2, "modified": "2026-11-29T10:21:27.062032Z",
      "modified_by": 2, "expires": "3026-04-01T10:21:27.044063Z", "user": 2, "application": null,
      "description": "my PAT", "last_used": "2026-11-29T10:21:27.315965Z", "scope": "write", "token": "$encrypted$",
      "refresh_token": null
    },
    {
      "id": 3, "url": "/api/gateway/v1/tokens/3/",
      "related": {
        "activity_stream": "/api/gateway/v1/activitystream/?content_type=33&object_id=3",
        "application": "/api/gateway/v1/applications/1/", "created_by": "/api/gateway/v1/users/1/",
        "modified_by": "/api/gateway/v1/users/1/", "user": "/api/gateway/v1/users/2/"
      },
      "summary_fields": {
        "modified_by": {"id": 1, "username": "_system", "first_name": "", "last_name": ""},
        "created_by": {"id": 1, "username": "_system", "first_name": "", "last_name": ""},
        "source_refresh_token": {"id": 1},
        "user": {"id": 2, "username": "admin", "first_name": "", "last_name": ""},
        "application": {"id": 1, "name": "my-client-app"}
      },
      "created": "2026-11-29T10:21:29.527406Z", "created_by": 1, "modified": "2026-11-29T10:21:29.527384Z",
      "modified_by": 1, "expires": "3026-04-01T10:21:29.504995Z", "user": 2, "application": 1, "description": "",
      "last_used": null, "scope": "read", "token": "$encrypted$", "refresh_token": "$encrypted$"
    }
  ]
}
]==]


-- A JSON reader that keeps key order: objects become { keys = {...}, vals = {k = v} }.
local function parse(text)
  local pos = 1
  local value
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == '"' then pos = pos + 1; return table.concat(out) end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        if e == "u" then out[#out + 1] = "?"; pos = pos + 6
        else out[#out + 1] = ({ n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" })[e] or e; pos = pos + 2 end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
      assert(pos <= #text, "unterminated string")
    end
  end
  value = function()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local o = { keys = {}, vals = {} }
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1; return o end
      while true do
        ws()
        local k = str()
        ws()
        assert(text:sub(pos, pos) == ":", "colon expected at " .. pos)
        pos = pos + 1
        o.keys[#o.keys + 1] = k
        o.vals[k] = value()
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return o end
        assert(d == ",", "comma expected at " .. pos)
      end
    elseif c == "[" then
      local a = { array = true }
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1; return a end
      while true do
        a[#a + 1] = value()
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return a end
        assert(d == ",", "comma expected")
      end
    elseif c == '"' then
      return str()
    else
      local lit = text:match("^[%w%.%-+]+", pos)
      pos = pos + #lit
      if lit == "true" then return true end
      if lit == "false" then return false end
      if lit == "null" then return "<null>" end
      return tonumber(lit)
    end
  end
  local v = value()
  return v
end

-- The shape of a value: objects as ordered key lists with their children's shapes; arrays by elements.
local function shape(v, skip)
  if type(v) ~= "table" then return type(v) == "string" and v == "<null>" and "null" or type(v) end
  if v.array then
    local out = { "array" }
    for i, x in ipairs(v) do out[i + 1] = shape(x, skip) end
    return out
  end
  local out = {}
  for _, k in ipairs(v.keys) do
    out[#out + 1] = k
    out[#out + 1] = (skip and skip[k]) and "*" or shape(v.vals[k], skip)
  end
  return out
end

local function keys(text) return shape(parse(text)) end

describe("aap sim against the recorded responses of §13", function()
  local sim, dir, client, pat, app_token, refreshed

  local function admin() return { "admin", helper.ADMIN_PASSWORD } end
  local function client_basic() return "Basic " .. mime.b64(client.client_id .. ":" .. client.client_secret) end
  local function form(path, body, auth)
    return sim:raw("POST", path, { headers = { ["content-type"] = "application/x-www-form-urlencoded",
      authorization = auth or client_basic() }, body = body })
  end

  setup(function()
    -- the recording's database: _system (1) and admin (2), nothing else
    dir = helper.tmpdir()
    helper.writefile(dir .. "/state.lua", [[return {
      users = { { id = 1, username = "_system", login = false }, { id = 2, username = "admin", is_superuser = true } },
      organizations = {}, applications = {},
      config = { app_url = false, access_token_lifetime = 31536000000 },
    }]])
    sim = helper.start_sim({ args = { "--state", dir .. "/state.lua" } })
  end)
  teardown(function()
    sim:stop()
    helper.cleanup()
  end)

  it("13.1 create a PAT", function()
    local st, body = sim:raw("POST", B .. "tokens/",
      { basic = admin(), json = { description = "my PAT", scope = "write" } })
    assert.equal(201, st)
    assert.same(keys(R.PAT), keys(body))
    pat = helper.json.decode(body)
    assert.equal(1, pat.id)
    -- 31536000000 s: year 3026 (leap days not counted)
    assert.matches("^3026%-", pat.expires)
  end)

  it("13.2 create an organization with the PAT", function()
    local st, body = sim:raw("POST", B .. "organizations/", { bearer = pat.token, json = { name = "Default" } })
    assert.equal(201, st)
    -- the recording's test_app organization has extra related keys; compare the rest in full
    assert.same(shape(parse(R.ORG), { related = true }), shape(parse(body), { related = true }))
    assert.equal(1, helper.json.decode(body).id)
  end)

  it("13.3 create an application", function()
    local st, body = sim:raw("POST", B .. "applications/", { basic = admin(), json = {
      name = "my-client-app", organization = 1, client_type = "confidential", authorization_grant_type = "password",
      redirect_uris = "", description = "test app" } })
    assert.equal(201, st)
    assert.same(keys(R.APP), keys(body))
    client = helper.json.decode(body)
    assert.equal(40, #client.client_id)
    assert.equal(128, #client.client_secret)
    assert.matches("^[A-Za-z0-9]+$", client.client_secret)
  end)

  it("13.4 create an application token", function()
    local st, body = sim:raw("POST", B .. "tokens/", { basic = admin(), json = {
      application = 1, description = "app token", scope = "read" } })
    assert.equal(201, st)
    assert.same(keys(R.APP_TOKEN), keys(body))
    app_token = helper.json.decode(body)
    assert.equal(2, app_token.id)
  end)

  it("13.5 refresh at /o/token/", function()
    local st, body = form("/o/token/", "grant_type=refresh_token&refresh_token=" .. app_token.refresh_token)
    assert.equal(201, st)
    assert.same(keys(R.REFRESH), keys(body))
    refreshed = helper.json.decode(body)
    assert.equal(31536000000, refreshed.expires_in)
  end)

  it("13.6 list tokens, then the user's authorized tokens with the new token", function()
    local st, body = sim:raw("GET", B .. "tokens/", { basic = admin() })
    assert.equal(200, st)
    assert.same(keys(R.LIST), keys(body))
    local list = helper.json.decode(body)
    assert.equal(1, list.results[1].id)
    assert.equal(3, list.results[2].id)
    assert.is_string(list.results[1].last_used) -- set by its use in 13.2
    assert.equal("$encrypted$", list.results[2].refresh_token)
    st, body = sim:raw("GET", B .. "users/2/authorized_tokens/", { bearer = refreshed.access_token })
    assert.equal(200, st)
    local one = helper.json.decode(body)
    assert.equal(1, one.count)
    assert.equal(3, one.results[1].id)
    assert.is_string(one.results[1].last_used)
    local expect = parse(R.LIST)
    local got = parse(body)
    -- "exactly as above except last_used", set by this very request
    assert.same(shape(expect.vals.results[2], { last_used = true }), shape(got.vals.results[1], { last_used = true }))
  end)

  describe("13.7 errors, revocation and the /o/ root", function()
    local password_grant

    it("the replaced access token is 401 invalid_token", function()
      local st, body, h = sim:raw("GET", B .. "tokens/", { bearer = app_token.token })
      assert.equal(401, st)
      assert.equal('{"detail":"Authentication credentials were not provided."}', body)
      assert.equal('Bearer realm="api",error="invalid_token",error_description="The access token is invalid."',
        h["www-authenticate"])
    end)

    it("reusing the spent refresh token is invalid_grant", function()
      local st, body = form("/o/token/", "grant_type=refresh_token&refresh_token=" .. app_token.refresh_token)
      assert.equal(400, st)
      assert.equal('{"error": "invalid_grant"}', body)
    end)

    it("a wrong client secret is invalid_client", function()
      local st, body = form("/o/token/", "grant_type=refresh_token&refresh_token=" .. refreshed.refresh_token,
        "Basic " .. mime.b64(client.client_id .. ":wrong-secret"))
      assert.equal(401, st)
      assert.equal('{"error": "invalid_client"}', body)
    end)

    it("the password grant", function()
      local st, body = form("/o/token/", "grant_type=password&username=admin&password=" .. helper.ADMIN_PASSWORD
        .. "&scope=write")
      assert.equal(201, st)
      assert.same(keys(R.REFRESH), keys(body))
      password_grant = helper.json.decode(body)
      assert.equal("write", password_grant.scope)
    end)

    it("revoke_token, then the revoked token is 401", function()
      local st, body, h = form("/o/revoke_token/", "token=" .. password_grant.access_token)
      assert.equal(200, st)
      assert.equal("", body)
      assert.matches("^text/html", h["content-type"])
      st, body = sim:raw("GET", B .. "tokens/", { bearer = password_grant.access_token })
      assert.equal(401, st)
      assert.equal('{"detail":"Authentication credentials were not provided."}', body)
    end)

    it("a read token cannot create an organization", function()
      local st, body = sim:raw("POST", B .. "organizations/",
        { bearer = refreshed.access_token, json = { name = "nope" } })
      assert.equal(403, st)
      assert.equal('{"detail":"You do not have permission to perform this action."}', body)
    end)

    it("DELETE the PAT, then it is 401", function()
      local st, body = sim:raw("DELETE", B .. "tokens/1/", { basic = admin() })
      assert.equal(204, st)
      assert.equal("", body)
      st, body = sim:raw("GET", B .. "tokens/", { bearer = pat.token })
      assert.equal(401, st)
      assert.equal('{"detail":"Authentication credentials were not provided."}', body)
    end)

    it("an unknown scope", function()
      local st, body = sim:raw("POST", B .. "tokens/", { basic = admin(), json = { scope = "admin" } })
      assert.equal(400, st)
      assert.equal('{"scope":["Invalid scope: admin. Must be one of: read, write"]}', body)
    end)

    it("GET /o/ without credentials", function()
      local st, body = sim:raw("GET", "/o/")
      assert.equal(200, st)
      assert.equal('{"authorize":"/o/authorize/","revoke_token":"/o/revoke_token/","token":"/o/token/"}', body)
    end)
  end)
end)
