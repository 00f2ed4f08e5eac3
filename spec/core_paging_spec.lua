-- Lists across pages: all pages, concurrent page fetches, each_token's one page at a time.
-- (Application lookup by name on top of the paged list: apps_spec.lua.)
local h = require("helper")
local aap = require("aap")

local function ids_of(list)
  local ids, seen, dups = {}, {}, 0
  for i, t in ipairs(list) do
    ids[i] = t.id
    if seen[t.id] then dups = dups + 1 end
    seen[t.id] = true
  end
  return ids, dups
end

local function page_requests(log, path)
  local n = 0
  for _, e in ipairs(log) do
    if e.method == "GET" and e.path:sub(1, #path) == path then n = n + 1 end
  end
  return n
end

describe("paging (gateway, 500 tokens)", function()
  local sim, first, last

  setup(function()
    sim = h.start_sim()
    local st, body = sim:control("POST", "/__sim/tokens", { count = 500, user = sim.seed.admin.id })
    assert.equals(201, st)
    first, last = math.tointeger(body.ids[1]), math.tointeger(body.ids[2])
  end)
  teardown(function() sim:stop() end)
  before_each(function() sim:clear_log() end)

  local function connect(extra)
    local o = { url = sim.url, username = "admin", password = h.ADMIN_PASSWORD, flavor = "gateway" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(aap.connect(o))
  end

  it("returns every token once, in order, fetching pages 2..10 concurrently", function()
    local s = connect({ concurrency = 4 })
    local all = assert(s:tokens())
    local ids, dups = ids_of(all)
    assert.equals(500, #all)
    assert.equals(0, dups)
    assert.equals(first, ids[1])
    assert.equals(last, ids[500])
    for i = 2, 500 do assert.is_true(ids[i] > ids[i - 1]) end
    assert.equals(10, page_requests(sim:log(), "/api/gateway/v1/tokens/"))
    local st = s:stats()
    assert.equals(10, st.requests)
    -- one connection for page 1 (kept from an earlier session, or new), at most `concurrency`
    -- for the rest, shared
    local conns = {}
    for _, e in ipairs(sim:log()) do conns[e.conn] = true end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.is_true(n >= 1 and n <= 4)
    assert.is_true(st.connects <= n)
    s:close()
  end)

  -- http.c sets a plain GET up again with its URL alone when its handle's last setup was a
  -- plain GET; handles moved when concurrent pages add more, and other requests, must not
  -- inherit that (a moved handle still points at its old place: ASan and valgrind see it).
  it("keeps a session whole across plain GETs, concurrent pages and a POST", function()
    local s = connect({ concurrency = 4 })
    assert.equals("admin", assert(s:me()).username)
    assert.equals(500, #assert(s:tokens()))
    assert.equals("admin", assert(s:me()).username)
    local tok = assert(s:create_token({ description = "after plain GETs", scope = "read" }))
    assert.equals("read", tok.scope)
    local again = assert(s:token(tok.id))
    assert.equals("after plain GETs", again.description)
    assert.equals("admin", assert(s:me()).username)
    assert.truthy(s:delete_token(tok.id))
    assert.equals(500, #assert(s:tokens()))
    s:close()
  end)

  it("gives the same list with concurrency = 1 (sequential)", function()
    local s = connect({ concurrency = 1 })
    local all = assert(s:tokens())
    assert.equals(500, #all)
    local conns, n = {}, 0
    for _, e in ipairs(sim:log()) do
      if not conns[e.conn] then conns[e.conn] = true; n = n + 1 end
    end
    assert.equals(1, n)
    s:close()
  end)

  it("follows only what the server links: count_disabled pages carry no next", function()
    local s = connect()
    local all = assert(s:tokens({ count_disabled = 1 }))
    assert.equals(50, #all)
    assert.equals(1, page_requests(sim:log(), "/api/gateway/v1/tokens/"))
    s:close()
  end)

  it("honours page_size and other filters on every page", function()
    local s = connect()
    local all = assert(s:tokens({ page_size = 200, order_by = "-id" }))
    assert.equals(500, #all)
    assert.equals(last, all[1].id)
    assert.equals(3, page_requests(sim:log(), "/api/gateway/v1/tokens/"))
    s:close()
  end)

  it("each_token holds one page at a time and fetches the next only when needed", function()
    local s = connect()
    local it = s:each_token()
    local tok = it()
    assert.equals(first, tok.id)
    assert.equals(1, page_requests(sim:log(), "/api/gateway/v1/tokens/"))
    for _ = 2, 50 do assert.truthy(it()) end
    assert.equals(1, page_requests(sim:log(), "/api/gateway/v1/tokens/"))
    assert.truthy(it())
    assert.equals(2, page_requests(sim:log(), "/api/gateway/v1/tokens/"))
    local n = 51
    for t, err in it do
      assert.is_nil(err)
      assert.equals("aap.Token", getmetatable(t).__name)
      n = n + 1
    end
    assert.equals(500, n)
    s:close()
  end)

  it("each_token yields false, err once on a failure and then stops", function()
    local s = connect({ retries = 0 })
    local it = s:each_token()
    for _ = 1, 50 do assert.truthy(it()) end
    sim:fault({ kind = "500", count = 1, path = "/api/gateway/v1/tokens/" })
    local ok, err = it()
    assert.is_false(ok)
    assert.equals("server", err.code)
    assert.equals(500, err.status)
    assert.is_nil(it())
    assert.is_nil(it())
    s:close()
  end)

  it("survives a transient 503 on the list (retried GET)", function()
    local s = connect({ backoff = 0.001 })
    sim:fault({ kind = "503", count = 2, path = "/api/gateway/v1/tokens/" })
    local all = assert(s:tokens())
    assert.equals(500, #all)
    assert.equals(2, s:stats().retries)
    s:close()
  end)

  it("returns the error when a page keeps failing", function()
    local s = connect({ retries = 1, backoff = 0.001 })
    sim:fault({ kind = "502", count = 100, path = "/api/gateway/v1/tokens/" })
    local all, err = s:tokens()
    assert.is_nil(all)
    assert.equals("server", err.code)
    assert.equals(502, err.status)
    assert.matches("Bad Gateway", err.message)
    assert.is_nil(err.message:find("<", 1, true))
    sim:control("DELETE", "/__sim/faults")
    s:close()
  end)

  it("reports a page that is not JSON as bad_response", function()
    local s = connect()
    sim:fault({ kind = "malformed_json", count = 1, path = "/api/gateway/v1/tokens/" })
    local all, err = s:tokens()
    assert.is_nil(all)
    assert.equals("bad_response", err.code)
    s:close()
  end)
end)

describe("paging (controller: 25 per page)", function()
  it("reads every page of the smaller pages", function()
    local sim = h.start_sim({ args = { "--flavor", "controller" } })
    assert.equals(201, (sim:control("POST", "/__sim/tokens", { count = 60 })))
    local s = assert(aap.connect({ url = sim.url, username = "admin", password = h.ADMIN_PASSWORD }))
    local all = assert(s:tokens())
    local _, dups = ids_of(all)
    assert.equals(60, #all)
    assert.equals(0, dups)
    assert.equals(3, page_requests(sim:log(), "/api/v2/tokens/"))
    s:close()
    sim:stop()
  end)
end)
