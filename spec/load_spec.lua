-- Load (issue #6): the CLI and the Lua API stay correct with 64 concurrent clients on the
-- emulator (loopback, bounded in count: every client does a fixed amount of work), and a
-- 10,000-token list is paged completely, each token exactly once, each page fetched once.
local helper = require("helper")
local cjson = require("cjson.safe")
local envfile = require("aap.env")

local CLIENTS = 64
local BIG = 10000

-- Runs `count` copies of a shell command line at once (`$i` is the client's number, from
-- 1), each with the environment in `env` (sourced from a 0600 file: no secret in argv), and
-- waits for all of them. Returns the exit codes and the outputs by client number.
local function run_many(dir, count, line, env)
  local lines = {}
  for k, v in pairs(env) do lines[#lines + 1] = ("export %s=%s"):format(k, helper.shquote(v)) end
  helper.writefile(dir .. "/env.sh", table.concat(lines, "\n") .. "\n", 384)
  local script = ([[
. %s
i=1
while [ $i -le %d ]; do
  ( %s >%s/out.$i 2>%s/err.$i; echo $? >%s/rc.$i ) &
  i=$((i + 1))
done
wait
]]):format(helper.shquote(dir .. "/env.sh"), count, line, dir, dir, dir)
  helper.writefile(dir .. "/many.sh", script)
  assert(os.execute("/bin/sh " .. helper.shquote(dir .. "/many.sh")))
  local res = {}
  for i = 1, count do
    res[i] = { code = tonumber(helper.readfile(dir .. "/rc." .. i)), stdout = helper.readfile(dir .. "/out." .. i),
               stderr = helper.readfile(dir .. "/err." .. i) }
  end
  return res
end

describe("load", function()
  local sim, dir

  setup(function() sim = helper.start_sim({ args = { "--quiet" } }) end)
  teardown(function()
    sim:stop()
    helper.cleanup()
  end)
  before_each(function()
    sim:reset()
    dir = helper.tmpdir()
  end)

  local function base_env()
    return { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password, PATH = os.getenv("PATH"),
             AAP_CPATH = os.getenv("AAP_CPATH"), LANG = "C.UTF-8" }
  end

  it(CLIENTS .. " concurrent CLI clients each create, check and revoke their own token", function()
    -- First only the creates, to check what they wrote before revoking.
    local creates = run_many(dir, CLIENTS, ("lua5.4 %s token create --env-file %s/$i.env --description load-$i")
      :format(helper.AAP, dir), base_env())
    local ids, values = {}, {}
    for i, r in ipairs(creates) do
      assert.equal(0, r.code, "client " .. i .. ": " .. tostring(r.stderr))
      local doc = assert(envfile.read(dir .. "/" .. i .. ".env"))
      local v = doc:get("AAP_PAT")
      assert.is_string(v)
      assert.is_nil(values[v], "two clients got the same token")
      values[v] = i
      local st = cjson.decode(helper.readfile(dir .. "/" .. i .. ".env.aap-state.json"))
      local id = math.tointeger(st.keys.AAP_PAT.id)
      assert.is_nil(ids[id], "two clients recorded the same id")
      ids[id] = i
    end
    -- The server holds exactly these tokens, each with its client's description.
    local server_ids, all = sim:token_ids()
    assert.equal(CLIENTS, #server_ids)
    for _, t in ipairs(all) do
      local i = ids[math.tointeger(t.id)]
      assert.is_number(i, "a token no client recorded: " .. tostring(t.id))
      -- the client's description, then the marker of a create into an env file
      assert.matches("^load%-" .. i .. " aap%-create:%x+$", t.description)
    end
    -- Each value works and belongs to the id its client recorded.
    for v, i in pairs(values) do
      if i % 8 == 0 then assert.equal(i, ids[sim:token_id(v)]) end
    end
    local revokes = run_many(dir, CLIENTS, ("lua5.4 %s token revoke --env-file %s/$i.env --key AAP_PAT")
      :format(helper.AAP, dir), base_env())
    for i, r in ipairs(revokes) do assert.equal(0, r.code, "revoke " .. i .. ": " .. tostring(r.stderr)) end
    assert.same({}, (sim:token_ids()))
  end)

  it(CLIENTS .. " concurrent CLI clients writing different keys of one env file lose none", function()
    local path = dir .. "/shared.env"
    helper.writefile(path, "# shared by many writers\n", 384)
    local res = run_many(dir, CLIENTS, ("lua5.4 %s token create --env-file %s --key KEY_$i --description shared-$i")
      :format(helper.AAP, path), base_env())
    for i, r in ipairs(res) do assert.equal(0, r.code, "client " .. i .. ": " .. tostring(r.stderr)) end
    local doc = assert(envfile.read(path))
    local missing = {}
    for i = 1, CLIENTS do
      if not doc:get("KEY_" .. i) then missing[#missing + 1] = "KEY_" .. i end
    end
    assert.equal(0, #missing, ("%d of %d keys lost by concurrent writers (no lock around the "
      .. "read-modify-write of the env file): %s"):format(#missing, CLIENTS, table.concat(missing, " ")))
    assert.equal(CLIENTS, #(sim:token_ids()))
  end)

  it("ten concurrent creates of one key end with exactly one live, recorded token (issue #11)", function()
    local path = dir .. "/one.env"
    local res = run_many(dir, 10, ("lua5.4 %s token create --env-file %s --description same-key-$i")
      :format(helper.AAP, path), base_env())
    local created = 0
    for i, r in ipairs(res) do
      assert.equal(0, r.code, "client " .. i .. ": " .. tostring(r.stderr))
      if r.stdout:find("created personal token", 1, true) then created = created + 1 end
    end
    local value = assert(envfile.read(path)):get("AAP_PAT")
    local live = sim:token_ids()
    assert.equal(1, #live, "live tokens: " .. table.concat(live, ","))
    assert.equal(live[1], sim:token_id(value))
    local st = cjson.decode(helper.readfile(path .. ".aap-state.json"))
    assert.equal(live[1], math.tointeger(st.keys.AAP_PAT.id))
    assert.is_nil(next(st.rotations))
    assert.is_true(created >= 1)
  end)

  it("a refresh and a rotation of one file at once leave no token live that nothing records (issue #11)",
    function()
    local path = dir .. "/app.env"
    local app = sim.seed.application
    local env = base_env()
    local r = helper.run({ "token", "create", "--application", app.name, "--env-file", path }, { env = env })
    assert.equal(0, r.code, r.stderr)
    helper.writefile(dir .. "/now.lua", 'return { max_age = "0s", strategy = "recreate", grace = "1d" }')
    env.AAP_CLIENT_ID, env.AAP_CLIENT_SECRET = app.client_id, app.client_secret
    local res = run_many(dir, 2, ("if [ $i = 1 ]; then lua5.4 %s token refresh --env-file %s; "
      .. "else lua5.4 %s token rotate --policy %s --env-file %s; fi")
      :format(helper.AAP, path, helper.AAP, dir .. "/now.lua", path), env)
    assert.equal(0, res[1].code, "refresh: " .. tostring(res[1].stderr))
    assert.is_true(res[2].code == 0 or res[2].stderr:find("another aap run holds the lock", 1, true) ~= nil,
      "rotate: " .. tostring(res[2].stderr))
    local value = assert(envfile.read(path)):get("AAP_TOKEN")
    assert.is_true(sim:token_works(value))
    local st = cjson.decode(helper.readfile(path .. ".aap-state.json"))
    local known = { [math.tointeger(st.keys.AAP_TOKEN.id)] = true }
    for _, p in ipairs(st.pending) do known[math.tointeger(p.id)] = true end
    assert.equal(sim:token_id(value), math.tointeger(st.keys.AAP_TOKEN.id))
    for _, id in ipairs(sim:token_ids()) do
      assert.is_true(known[id] == true, "token id=" .. id .. " is live and recorded nowhere")
    end
  end)

  -- Phase 1 only creates (the list is ordered by id, so new tokens land after every page a
  -- client has read: its own tokens must all be listed, once); phase 2 only deletes.
  it(CLIENTS .. " concurrent Lua API clients get consistent answers", function()
    local script = dir .. "/client.lua"
    helper.writefile(script, ([==[
package.path = %q .. "/lua/?.lua;" .. package.path
package.cpath = (os.getenv("AAP_CPATH") or %q) .. "/?.so;" .. package.cpath
local aap = require("aap")
local mode, i = arg[1], tonumber(arg[2])
local s <close> = assert(aap.connect({ url = os.getenv("AAP_HOSTNAME"), username = "admin",
                                       password = os.getenv("AAP_PASSWORD") }))
if mode == "delete" then
  for id in io.open(arg[3]):read("a"):gmatch("%%d+") do assert(s:delete_token(tonumber(id))) end
  assert(select(2, s:token(tonumber(io.open(arg[3]):read("a"):match("%%d+")))).code == "not_found")
  return
end
local created = {}
for round = 1, 3 do
  local tok = assert(s:create_token({ description = ("api-%%d-%%d"):format(i, round) }))
  local back = assert(s:token(tok.id))
  assert(back.description == tok.description, "token(id) disagrees with create_token")
  local b <close> = assert(aap.connect({ url = os.getenv("AAP_HOSTNAME"), token = tok.token }))
  assert(assert(b:me()).username == "admin")
  created[#created + 1] = tok.id
end
local seen = {}
for tok, err in s:each_token({ order_by = "id" }) do
  assert(tok, tostring(err))
  assert(not seen[tok.id], "a token listed twice")
  seen[tok.id] = true
end
for _, id in ipairs(created) do assert(seen[id], "an own token missing from the list") end
io.write(table.concat(created, " "))
]==]):format(helper.ROOT, helper.ROOT .. "/build"))
    local res = run_many(dir, CLIENTS, "lua5.4 " .. helper.shquote(script) .. " create $i", base_env())
    local all, gone = {}, {}
    for i, r in ipairs(res) do
      assert.equal(0, r.code, "client " .. i .. ": " .. tostring(r.stderr))
      local ids = {}
      for id in r.stdout:gmatch("%d+") do ids[#ids + 1] = math.tointeger(tonumber(id)) end
      assert.equal(3, #ids)
      for _, id in ipairs(ids) do all[#all + 1] = id end
      gone[#gone + 1] = ids[1]
      helper.writefile(dir .. "/del." .. i, tostring(ids[1]))
    end
    table.sort(all)
    assert.same(all, (sim:token_ids()))
    res = run_many(dir, CLIENTS, "lua5.4 " .. helper.shquote(script) .. " delete $i " .. dir .. "/del.$i",
      base_env())
    for i, r in ipairs(res) do assert.equal(0, r.code, "delete " .. i .. ": " .. tostring(r.stderr)) end
    local deleted = {}
    for _, id in ipairs(gone) do deleted[id] = true end
    local kept = {}
    for _, id in ipairs(all) do if not deleted[id] then kept[#kept + 1] = id end end
    assert.same(kept, (sim:token_ids()))
  end)

  describe("a " .. BIG .. "-token list", function()
    local aap = require("aap")
    local expected

    before_each(function()
      local st, body = sim:control("POST", "/__sim/tokens", { count = BIG, user = sim.seed.admin.id })
      assert.equal(201, st, cjson.encode(body))
      expected = sim:token_ids()
      assert.equal(BIG, #expected)
      sim:clear_log()
    end)

    local function pages_once()
      local seen, n = {}, 0
      for _, e in ipairs(sim:log()) do
        if e.method == "GET" and e.path:find("/tokens/", 1, true) then
          n = n + 1
          assert.is_nil(seen[e.path], "a page fetched twice: " .. e.path)
          seen[e.path] = true
        end
      end
      return n
    end

    local function same_ids(list)
      local ids, dup = {}, {}
      for _, t in ipairs(list) do
        local id = math.tointeger(t.id)
        if dup[id] then error("token " .. id .. " listed twice") end
        dup[id] = true
        ids[#ids + 1] = id
      end
      table.sort(ids)
      assert.equal(#expected, #ids)
      assert.same(expected, ids)
    end

    it("is paged completely and exactly once by s:tokens (concurrent pages) and s:each_token", function()
      local s = assert(aap.connect({ url = sim.url, username = "admin", password = sim.admin_password }))
      same_ids(assert(s:tokens({})))
      local n1 = pages_once()
      assert.is_true(n1 >= BIG / 200, "fewer pages than the largest page size allows: " .. n1)
      sim:clear_log()
      local list = {}
      for tok, err in s:each_token({}) do
        assert.is_not_false(tok, tostring(err))
        list[#list + 1] = tok
      end
      same_ids(list)
      pages_once()
      s:close()
    end)

    it("is listed completely and exactly once by `aap token list`", function()
      local r = helper.run({ "token", "list", "--format", "json" },
        { env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password } })
      assert.equal(0, r.code, r.stderr)
      same_ids(assert(cjson.decode(r.stdout)))
      pages_once()
    end)
  end)
end)
