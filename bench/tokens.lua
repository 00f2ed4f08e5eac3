--- Token-listing client processes for the benchmark (credentials in BENCH_PASSWORD).
--
-- lua5.4 bench/tokens.lua list URL CONCURRENCY
--   s:tokens{} (every page) on a session with that concurrency ("default": the option left
--   out); prints JSON {seconds, count, requests, connects}.
-- lua5.4 bench/tokens.lua each URL
--   for tok in s:each_token{} ...: counts the tokens and samples the Lua heap
--   (collectgarbage("count")) after every token; prints JSON {count, heap_peak_kib,
--   heap_start_kib, seconds, requests}. Peak RSS is measured from outside (/usr/bin/time).
-- lua5.4 bench/tokens.lua all URL
--   the same through s:tokens{} (the whole list in memory), for comparison.
-- lua5.4 bench/tokens.lua smaps URL
--   lists the tokens once, then prints JSON {mappings = {name -> {rss, private}} (KiB, from
--   /proc/self/smaps), rollup = {Rss, Pss, Private_Dirty, ...}}: where the resident memory is.
local aap = require("aap")
local cjson = require("cjson.safe").new()

local mode, url, conc = arg[1], arg[2], arg[3]
local password = os.getenv("BENCH_PASSWORD")
assert(url and password, "usage: tokens.lua list|each|all URL [CONCURRENCY] (BENCH_PASSWORD set)")

local opts = { url = url, username = "admin", password = password, flavor = "gateway", timeout = 120 }
if mode == "list" and conc ~= "default" then opts.concurrency = assert(tonumber(conc), "concurrency") end
local s = assert(aap.connect(opts))
local now = aap.os.now

if mode == "list" then
  local t0 = now()
  local toks = assert(s:tokens({}))
  local dt = now() - t0
  local st = s:stats()
  io.write(cjson.encode({ seconds = dt, count = #toks, requests = st.requests, connects = st.connects }), "\n")
elseif mode == "each" or mode == "all" then
  collectgarbage("collect")
  local start = collectgarbage("count")
  local peak, count = start, 0
  local t0 = now()
  if mode == "each" then
    for tok, err in s:each_token({}) do
      assert(tok, err and tostring(err))
      count = count + 1
      local h = collectgarbage("count")
      if h > peak then peak = h end
    end
  else
    local toks = assert(s:tokens({}))
    for _ = 1, #toks do
      count = count + 1
      local h = collectgarbage("count")
      if h > peak then peak = h end
    end
  end
  io.write(cjson.encode({ count = count, heap_peak_kib = peak, heap_start_kib = start,
                          seconds = now() - t0, requests = s:stats().requests }), "\n")
elseif mode == "smaps" then
  assert(s:tokens({}))
  local maps, name = {}, nil
  for line in io.lines("/proc/self/smaps") do
    local path = line:match("^%x+%-%x+ %S+ %x+ %S+ %d+%s*(.*)$")
    if path then
      name = path:match("([^/]+)$") or (path == "" and "[anonymous]") or path
      name = name:gsub("%.so[%.%d]*$", ".so")
      maps[name] = maps[name] or { rss = 0, private = 0 }
    else
      local k, v = line:match("^([%w_]+):%s+(%d+) kB")
      if k == "Rss" then maps[name].rss = maps[name].rss + tonumber(v)
      elseif k == "Private_Clean" or k == "Private_Dirty" then maps[name].private = maps[name].private + tonumber(v) end
    end
  end
  local rollup = {}
  for line in io.lines("/proc/self/smaps_rollup") do
    local k, v = line:match("^([%w_]+):%s+(%d+) kB")
    if k then rollup[k] = tonumber(v) end
  end
  io.write(cjson.encode({ mappings = maps, rollup = rollup }), "\n")
else
  error("unknown mode " .. tostring(mode))
end
s:close()
