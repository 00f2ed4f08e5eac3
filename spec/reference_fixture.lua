--- Shared fixtures of the reference suite (spec/reference_*_spec.lua): every README workflow
-- run against the reference gateway, each step checked against the server's own state (its
-- database), never only against what aap says.
--
-- Every test starts from a freshly seeded database plus "unrelated" tokens that no workflow
-- may touch: an older PAT of each user and an application token of the admin, created by raw
-- requests before anything else (so they have the lowest ids and are each user's oldest
-- token). A client that acts on "the user's oldest/newest token" instead of the one meant
-- hits them, and `untouched` says so.
--
-- busted's functions are not globals in a required module: `case(it, pending)` builds the
-- spec file's `it`, which marks a test pending when no reference gateway is there.
local helper = require("helper")
local reference = require("reference")
local envfile = require("aap.env")
local cjson = require("cjson.safe")
local luassert = require("luassert")

local F = {}

-- A failed check is a test failure (luassert), not a Lua error.
local function check(cond, msg)
  luassert.is_truthy(cond, msg)
  return cond
end

F.API = "/api/gateway/v1/"
F.DAY = 86400

--- setup(): attaches to (or starts) the reference gateway.
function F.open()
  F.ref, F.why = reference.get()
end

--- teardown(): stops the gateway if this process started it; removes the temporary files.
function F.close()
  if F.ref then F.ref:release() end
  helper.cleanup()
end

--- The spec file's `it`: fn(ref, world) runs only when the reference gateway is there.
function F.case(it, pending)
  return function(name, fn)
    it(name, function()
      if not F.ref then return pending(F.why) end
      return fn(F.ref, F.world)
    end)
  end
end

--- A spec file of the suite: one outer block that opens the gateway once for all its inner
-- blocks (a spec file run alone starts its own, which takes about 20 s) and releases it at the
-- end. `b` holds busted's describe, it, pending, setup, teardown, before_each (they are not
-- globals in a module).
function F.file(b, name, body)
  b.describe(name, function()
    b.setup(F.open)
    b.teardown(F.close)
    body()
  end)
end

--- An inner block of a spec file: a fresh world before each test; body(case) gets the
-- block's `it` (see F.case).
function F.describe(b, name, body)
  b.describe(name, function()
    b.before_each(F.fresh)
    body(F.case(b.it, b.pending))
  end)
end

local function basic(ref, user)
  return { user, ref.seed[user].password }
end

--- A token made by a raw POST tokens/ (the lesson's curl), as `user`; fields as the API takes
-- them. Returns { id =, token =, refresh_token = (app tokens), user = }.
function F.raw_token(ref, user, fields)
  local st, body = ref:json("POST", F.API .. "tokens/", { basic = basic(ref, user), json = fields })
  assert(st == 201, "POST tokens/ as " .. user .. ": " .. tostring(st) .. " " .. tostring(cjson.encode(body)))
  return { id = math.tointeger(body.id), token = body.token,
           refresh_token = body.refresh_token ~= cjson.null and body.refresh_token or nil,
           user = ref.seed[user].id }
end

--- A raw request as the admin (e.g. DELETE tokens/ID/ "elsewhere"); returns status, body.
function F.admin_json(ref, method, path, json)
  return ref:json(method, F.API .. path, { basic = basic(ref, "admin"), json = json })
end

-- The unrelated tokens, made once per gateway (Basic authentication costs the reference half a
-- second per request: Django's password hashing) and then restored with the database.
local worlds = {}

--- before_each(): a fresh database with the unrelated tokens, and a fresh directory.
-- F.world = { dir =, unrelated = {tokens}, ids = {their ids, sorted} }
function F.fresh()
  local ref = F.ref
  if not ref then return end
  local unrelated = worlds[ref.dir]
  if unrelated then
    ref:restore("refsuite-world")
  else
    ref:reset()
    local app = ref.seed.applications["RHDH Integration"].id
    unrelated = {
      F.raw_token(ref, "admin", { description = "UNRELATED other integration", scope = "write" }),
      F.raw_token(ref, "normal", { description = "UNRELATED normal integration", scope = "write" }),
      F.raw_token(ref, "admin", { description = "UNRELATED app integration", scope = "write", application = app }),
    }
    ref:save_as("refsuite-world")
    worlds[ref.dir] = unrelated
  end
  local ids = {}
  for i, t in ipairs(unrelated) do ids[i] = t.id end
  F.world = { dir = helper.tmpdir(), unrelated = unrelated, ids = ids }
end

--- The sorted union of lists of ids.
function F.union(...)
  local seen, out = {}, {}
  for _, list in ipairs({ ... }) do
    for _, id in ipairs(list) do
      if not seen[id] then seen[id], out[#out + 1] = true, id end
    end
  end
  table.sort(out)
  return out
end

--- The server's access token rows, by id.
function F.rows(ref)
  local by = {}
  for _, r in ipairs(ref:db().access) do by[math.tointeger(r.id)] = r end
  return by
end

--- Asserts that the unrelated tokens are all still there, same id, value, owner and
-- application, and (for the app token) its refresh token alive.
function F.untouched(ref, world)
  local rows = F.rows(ref)
  for _, t in ipairs(world.unrelated) do
    local r = rows[t.id]
    check(r, ("the unrelated token id=%d is gone from the server"):format(t.id))
    check(r.token == t.token, ("the unrelated token id=%d has another value"):format(t.id))
    check(math.tointeger(r.user_id) == t.user, ("the unrelated token id=%d changed owner"):format(t.id))
    if t.refresh_token then
      check(ref:refresh_alive(t.refresh_token), ("the unrelated token id=%d lost its refresh token"):format(t.id))
    end
  end
end

--- Asserts the server's access token ids are exactly `expected` (any order).
function F.expect_ids(ref, expected, what)
  local want = F.union(expected)
  local have = ref:ids()
  check(cjson.encode(want) == cjson.encode(have), ("%sserver token ids: expected %s, found %s")
    :format(what and (what .. ": ") or "", cjson.encode(want), cjson.encode(have)))
end

--- Runs bin/aap as `user` ("admin" or "normal") with the RHDH Integration client in its
-- environment; extra (false removes a variable), opts.stdin, opts.cwd.
function F.aap(user, argv, extra, opts)
  opts = opts or {}
  return helper.run(argv, { env = F.ref:env(user, extra), stdin = opts.stdin, cwd = opts.cwd })
end

--- A value from an env file as bash reads it (nil when unset).
function F.get(path, key)
  local doc = assert(envfile.read(path))
  return doc:get(key)
end

--- The decoded state file of an env file (nil when there is none).
function F.state(path)
  local text = helper.readfile(path .. ".aap-state.json")
  return text and assert(cjson.decode(text)) or nil
end

--- The id recorded for a key in an env file's state file, or nil.
function F.recorded(path, key)
  local st = F.state(path)
  local rec = st and st.keys and st.keys[key]
  return rec and math.tointeger(rec.id) or nil
end

--- Asserts the env file holds a working token under `key` whose server id is recorded in the
-- state file; returns value, id. With `unused`, the token is not used (GET me/ with it sets its
-- last_used, which a wait_for_use rotation counts as the consumer's use): a 200 is not checked.
function F.file_token(ref, path, key, unused)
  local value = F.get(path, key)
  check(value and value ~= "", ("%s holds no %s"):format(path, key))
  local id = ref:id_of(value)
  check(id, ("the %s in %s is not a token on the server"):format(key, path))
  check(unused or ref:token_works(value), ("the %s in %s does not work (GET me/)"):format(key, path))
  local rec = F.recorded(path, key)
  check(rec == id, ("the state file records %s as token id=%s, but the server's id of its value is %d")
    :format(key, tostring(rec), id))
  return value, id
end

--- Asserts that none of the values appears in the run's output.
function F.no_secrets(r, values)
  for _, v in ipairs(values) do
    if v and v ~= "" then
      check(not r.stdout:find(v, 1, true), "a secret value is on stdout")
      check(not r.stderr:find(v, 1, true), "a secret value is on stderr")
    end
  end
end

--- Every secret the server holds (token and refresh values) and the seeded client secrets.
function F.all_secrets(ref)
  local out = {}
  local db = ref:db()
  for _, r in ipairs(db.access) do out[#out + 1] = r.token end
  for _, r in ipairs(db.refresh) do out[#out + 1] = r.token end
  for _, a in pairs(ref.seed.applications) do out[#out + 1] = a.client_secret end
  out[#out + 1] = ref.seed.admin.password
  out[#out + 1] = ref.seed.normal.password
  return out
end

--- Asserts a run exited 0 (with its stderr in the message).
function F.ok(r, what)
  check(r.code == 0, ("%sexit %s\nstdout: %s\nstderr: %s"):format(what and (what .. ": ") or "", tostring(r.code),
    r.stdout, r.stderr))
end

--- The id aap reported on a summary line ("... token id=N ..."), the last one when several.
function F.reported_id(text, pattern)
  local id
  for n in text:gmatch(pattern or "token id=(%d+)") do id = n end
  return id and math.tointeger(tonumber(id)) or nil
end

--- Writes an env file the way the lesson's curl commands do: plain KEY=value lines, no state file.
function F.curl_env(path, pairs_list)
  local lines = {}
  for i, kv in ipairs(pairs_list) do lines[i] = kv[1] .. "=" .. kv[2] end
  helper.writefile(path, table.concat(lines, "\n") .. "\n", 384)
end

--- "An hour later": marks every pending revocation in the state file as past its grace period
-- (the reference's clock cannot be moved; only not_before, written by aap from the server's
-- clock, is changed).
function F.grace_over(path)
  local st = assert(F.state(path), "no state file for " .. path)
  for _, e in ipairs(st.pending or {}) do e.not_before = 0 end
  local text = assert(cjson.encode(st))
  if #(st.pending or {}) == 0 then text = text:gsub('"pending":{}', '"pending":[]') end
  helper.writefile(path .. ".aap-state.json", text .. "\n", 384)
end

--- Ids of the pending revocations in the state file.
function F.pending_ids(path)
  local ids = {}
  for _, e in ipairs((F.state(path) or {}).pending or {}) do ids[#ids + 1] = math.tointeger(e.id) end
  table.sort(ids)
  return ids
end

--- Creates a token with `aap token create` into an env file as `user`; args are extra flags.
-- Returns value, id (checked against the server).
function F.create(user, path, args)
  local argv = { "token", "create", "--env-file", path }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local r = F.aap(user, argv)
  F.ok(r, "token create")
  local key = "AAP_PAT"
  for i, a in ipairs(argv) do
    if a == "--application" then key = "AAP_TOKEN" end
    if a == "--key" then key = argv[i + 1] end
  end
  return F.file_token(F.ref, path, key)
end

return F
