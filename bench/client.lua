--- One client process of the per-call cost benchmark: N calls of one kind against the canned
-- gateway (nginx), with the library under test. The harness runs it for N and 2N calls and
-- takes the difference, so start-up (interpreter, module loading, TLS library init) cancels.
--
-- usage: lua5.4 bench/client.lua aap|luasocket me|page N URL   (password in BENCH_PASSWORD)
--        lua5.4 bench/client.lua cjson me|page N FILE         (decode FILE's JSON N times)
--   me:   GET /api/gateway/v1/me/ and decode the user
--   page: GET /api/gateway/v1/tokens/ (one page) and decode the tokens
-- aap does it with one session (one kept-alive connection, Token objects); LuaSocket with
-- socket.http plus cjson, which is what a Lua user would write instead (it opens a connection
-- per request: socket.http sends `Connection: close`). `cjson` decodes a recorded answer from
-- memory, with no network: the decoding that any Lua client returning Lua tables pays.
local lib_name, kind, n, url = arg[1], arg[2], tonumber(arg[3]), arg[4]
local password = os.getenv("BENCH_PASSWORD")
assert(lib_name and (kind == "me" or kind == "page") and n and url and password,
  "usage: client.lua aap|luasocket me|page N URL (BENCH_PASSWORD set)")

local calls = 0
if lib_name == "aap" then
  local aap = require("aap")
  local s = assert(aap.connect({ url = url, username = "admin", password = password, flavor = "gateway" }))
  for _ = 1, n do
    if kind == "me" then
      local me = assert(s:me())
      assert(me.username == "admin")
    else
      local toks = assert(s:tokens({ page_size = 200 }))
      assert(#toks > 0 and toks[1].id)
    end
    calls = calls + 1
  end
  local st = s:stats()
  s:close()
  io.write(("%d %d %d\n"):format(calls, st.requests, st.connects))
elseif lib_name == "luasocket" then
  local http = require("socket.http")
  local ltn12 = require("ltn12")
  local mime = require("mime")
  local cjson = require("cjson.safe").new()
  local headers = { authorization = "Basic " .. mime.b64("admin:" .. password), accept = "application/json" }
  local target = url .. (kind == "me" and "/api/gateway/v1/me/" or "/api/gateway/v1/tokens/?page_size=200")
  for _ = 1, n do
    local chunks = {}
    local ok, status = http.request({ url = target, headers = headers, sink = ltn12.sink.table(chunks) })
    assert(ok and status == 200, "HTTP " .. tostring(status))
    local body = assert(cjson.decode(table.concat(chunks)))
    assert(#body.results > 0)
    calls = calls + 1
  end
  io.write(("%d %d %d\n"):format(calls, calls, calls))
elseif lib_name == "cjson" then
  local cjson = require("cjson.safe").new()
  local f = assert(io.open(url, "rb"))
  local text = f:read("a")
  f:close()
  for _ = 1, n do
    local body = assert(cjson.decode(text))
    assert(#body.results > 0)
    calls = calls + 1
  end
  io.write(("%d 0 0\n"):format(calls))
else
  error("unknown client " .. tostring(lib_name))
end
