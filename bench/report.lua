--- Turns the results of one run into docs/benchmarks.md and its chart (gnuplot, PNG).
-- Nothing here is measured: every number comes from the results table; every verdict is a
-- comparison of a measured figure with its target.
local lib = require("bench.lib")

local M = {}

M.TARGETS = {
  client = 1.25,   -- aap's instructions per call at most 1.25x raw libcurl's
  page_cpu = 1.0,  -- a page of tokens: aap's CPU per call at most LuaSocket + cjson's
  lesson = 3,      -- the curl + jq script at least 3x slower than aap
  listing = 1.5,   -- listing time at most 1.5x the limit (pages / concurrency x latency)
  rss_mib = 10,    -- peak memory of the aap command under 10 MiB
  remote_0 = 4,    -- the whole lesson on loopback: the script at least 4x slower than aap
  remote_20 = 2,   -- ... at 20 ms of round trip: at least 2x slower
  remote_floor = 1.3, -- ... at 80 ms: aap within 1.3x its network floor
}
M.REMOTE_FLOOR_RTT = "80" -- the round trip at which aap's ratio to its floor is held to the target

local function fmt_int(n)
  local s = ("%d"):format(math.floor(n + 0.5))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^(%-?),", "%1"))
end

local function ms(s) return ("%.1f ms"):format(s * 1000) end
local function mib(kib) return ("%.1f MiB"):format(kib / 1024) end
local function ratio(x) return ("%.2f×"):format(x) end
local function yes(b) return b and "met" or "missed" end

local function sorted_pairs_by_value(t)
  local list = {}
  for k, v in pairs(t) do list[#list + 1] = { k = k, v = v } end
  table.sort(list, function(a, b) return a.v > b.v end)
  return list
end

local function sum(t)
  local s = 0
  for _, v in pairs(t) do s = s + v end
  return s
end

--- The key of a round trip time in the remote results ("20"), from an integer or a float.
local function rtt_key(rtt) return ("%d"):format(rtt) end

--- The derived figures (ratios and verdicts) that both the summary and the sections use.
local function derive(r)
  local d = {}
  if r.client then
    d.client = {}
    for _, k in ipairs(r.client.kinds) do
      local floor = k.by.rawcurl.ir_per_call
      d.client[k.name] = {
        aap = k.by.aap.ir_per_call / floor, luasocket = k.by.luasocket.ir_per_call / floor,
        aap_cpu = k.by.aap.cpu_us_per_call / k.by.rawcurl.cpu_us_per_call,
        luasocket_cpu = k.by.luasocket.cpu_us_per_call / k.by.rawcurl.cpu_us_per_call,
        vs_luasocket_cpu = k.by.aap.cpu_us_per_call / k.by.luasocket.cpu_us_per_call,
        vs_luasocket_ir = k.by.aap.ir_per_call / k.by.luasocket.ir_per_call,
      }
    end
  end
  if r.lesson then
    local a, l = r.lesson.by.aap, r.lesson.by.lesson
    d.lesson = { aap = lib.median(a.wall), script = lib.median(l.wall) }
    d.lesson.speedup = d.lesson.script / d.lesson.aap
  end
  if r.listing then
    d.listing = {}
    for _, name in ipairs(r.listing.order) do
      local s = r.listing.settings[name]
      local conc = name == "default" and 4 or tonumber(name)
      local limit = s.requests / conc * r.listing.latency_ms / 1000
      d.listing[name] = { conc = conc, limit = limit, ratio = s["seconds_" .. r.listing.latency_ms] / limit }
      if s.nginx_seconds then
        local nlimit = s.nginx_requests / conc * r.listing.latency_ms / 1000
        d.listing[name].nginx_limit = nlimit
        d.listing[name].nginx_ratio = s.nginx_seconds / nlimit
      end
    end
  end
  if r.remote then
    -- The floor: what the network alone costs, (connections x handshake round trips + requests)
    -- x RTT, where a handshake is TCP's round trip plus TLS's (1 for TLS 1.3, 2 for TLS 1.2).
    local hs = 1 + (r.remote.tls == "TLSv1.3" and 1 or 2)
    d.remote = { handshake_rtts = hs }
    for _, rtt in ipairs(r.remote.rtts) do
      local x = r.remote.by_rtt[rtt_key(rtt)]
      local e = { rtt_ms = rtt }
      for name, b in pairs(x.by) do
        local c = { wall = lib.median(b.wall), min = lib.min(b.wall), max = lib.max(b.wall),
                    requests = lib.median(b.requests), conns = lib.median(b.conns) }
        c.round_trips = c.conns * hs + c.requests
        c.floor = c.round_trips * rtt / 1000
        c.ratio = rtt > 0 and c.wall / c.floor or nil
        c.beyond = c.wall - c.floor
        e[name] = c
      end
      e.speedup = e.lesson.wall / e.aap.wall
      -- What the script's wall time over aap's floor is: the ratio an aap costing nothing on
      -- the machine would reach (nil at 0 ms, where the floor is nothing).
      e.best = rtt > 0 and e.lesson.wall / e.aap.floor or nil
      d.remote[rtt_key(rtt)] = e
    end
  end
  if r.startup then
    for _, c in ipairs(r.startup.commands) do
      if c.name == "list" then d.cli_rss = c.maxrss_kib end
      if c.name == "version" then d.version_rss = c.maxrss_kib end
    end
  end
  return d
end

local function section_client(out, r, d)
  local c = r.client
  out[#out + 1] = "## 1. Per-call client cost\n"
  out[#out + 1] = ([[
Each client process makes N calls and then 2N calls against %s on a loopback port,
serving answers recorded from the emulator (so the server costs next to nothing and is the same
for everyone); the difference divided by N is the cost of one call, with start-up (interpreter,
loading libcurl and OpenSSL) cancelled out. Instructions are counted with callgrind (user space
of the client process only: the kernel's share of the socket work is not in them); CPU time
(user + system, `perf stat -e task-clock`, least of %s interleaved runs at N = %s/%s and 2N)
includes the kernel's share but is noisier on a shared machine. Every client was first checked to make exactly
one request per call.

- **libcurl, C** (`bench/rawcurl.c`): one easy handle, one kept-alive connection, the same
  headers as aap, the body appended to a buffer and dropped — the floor: no JSON decoding.
- **`require("aap")`**: one session (`aap.connect`), `s:me()` or `s:tokens{page_size = 200}`,
  which decode the JSON and build `aap.Token` objects (times parsed, secrets checked).
- **LuaSocket**: `socket.http.request` plus `cjson.decode` — what a Lua user would write instead.
  It sends `Connection: close`, so it pays a TCP connection per call.
]]):format(r.machine.versions.nginx, r.quick and 1 or 3, fmt_int(c.kinds[1].ncpu), fmt_int(c.kinds[2].ncpu))
  out[#out + 1] = "| call | client | instructions / call | × libcurl | CPU µs / call | × libcurl | " ..
    "start-up instructions |"
  out[#out + 1] = "|---|---|---:|---:|---:|---:|---:|"
  for _, k in ipairs(c.kinds) do
    for _, cl in ipairs(c.clients) do
      local b = k.by[cl.name]
      local floor = k.by.rawcurl
      out[#out + 1] = ("| %s | %s | %s | %s | %.1f | %s | %s |"):format(k.label, cl.label, fmt_int(b.ir_per_call),
        ratio(b.ir_per_call / floor.ir_per_call), b.cpu_us_per_call, ratio(b.cpu_us_per_call / floor.cpu_us_per_call),
        fmt_int(b.ir_startup))
    end
  end
  out[#out + 1] = ""
  for _, k in ipairs(c.kinds) do
    local aap = k.by.aap
    local total = sum(aap.objects)
    out[#out + 1] = ("Where `require(\"aap\")`'s instructions per call go, %s (callgrind, 2N profile minus N " ..
      "profile, self cost by shared object; %s per call in all):\n"):format(k.label, fmt_int(total))
    out[#out + 1] = "| object | instructions / call | share | libcurl C program, same object |"
    out[#out + 1] = "|---|---:|---:|---:|"
    for _, o in ipairs(sorted_pairs_by_value(aap.objects)) do
      if o.v / total >= 0.005 then
        out[#out + 1] = ("| %s | %s | %.1f%% | %s |"):format(o.k, fmt_int(o.v), 100 * o.v / total,
          fmt_int(k.by.rawcurl.objects[o.k] or 0))
      end
    end
    out[#out + 1] = ""
    if aap.stages then
      out[#out + 1] = ("By stage (callgrind `--toggle-collect` on the C core's functions, %s calls):\n"):format(k.n)
      out[#out + 1] = "| stage | C function | instructions / call | share |"
      out[#out + 1] = "|---|---|---:|---:|"
      local staged = 0
      for _, st in ipairs(aap.stages) do
        if st.ir_per_call > 0 then
          staged = staged + st.ir_per_call
          out[#out + 1] = ("| %s | `%s` | %s | %.1f%% |"):format(st.label, st.fn, fmt_int(st.ir_per_call),
            100 * st.ir_per_call / aap.ir_per_call)
        end
      end
      local rest = aap.ir_per_call - staged
      out[#out + 1] = ("| the rest (argument checks, the Lua loop, garbage collection) | | %s | %.1f%% |")
        :format(math.abs(rest) < 0.01 * aap.ir_per_call and "≈ 0" or fmt_int(rest), 100 * rest / aap.ir_per_call)
      out[#out + 1] = ""
    end
  end
  local worst, worst_kind = 0, nil
  for _, k in ipairs(c.kinds) do
    local x = d.client[k.name].aap
    if x > worst then worst, worst_kind = x, k end
  end
  local met = worst <= M.TARGETS.client
  out[#out + 1] = ("**Target: within %s of raw libcurl — %s** (worst case %s: %s the instructions).")
    :format(ratio(M.TARGETS.client), yes(met), worst_kind.label, ratio(worst))
  for _, k in ipairs(c.kinds) do
    local by = k.by
    local floor = by.rawcurl.ir_per_call
    if by.aap.ir_per_call / floor > M.TARGETS.client then
      local stage = {}
      for _, st in ipairs(by.aap.stages or {}) do stage[st.fn] = st.ir_per_call end
      local least = 1 + by.cjson.ir_per_call / floor
      out[#out + 1] = ("\n\nWhy %s misses, from the figures above: the C program only moves bytes (%s " ..
        "instructions per call); aap's transfer costs %s (%s). What aap adds is turning the body into Lua values: " ..
        "JSON decoding costs %s per call, of which cjson alone, with no network at all, is %s (%s libcurl's " ..
        "whole call); the difference is the C core's pass that gives integral numbers back their integer type " ..
        "(Debian's lua-cjson 2.1.0 decodes every number as a float)%s. %s LuaSocket + cjson, the alternative, " ..
        "costs %s libcurl on this call.")
        :format(k.label, fmt_int(floor), fmt_int(stage.aap_http_run or 0),
          ratio((stage.aap_http_run or 0) / floor), fmt_int(stage.aap_json_decode or 0),
          fmt_int(by.cjson.ir_per_call), ratio(by.cjson.ir_per_call / floor),
          (stage.aap_make_token or 0) > 0 and ("; building the Token objects costs " ..
            fmt_int(stage.aap_make_token)) or "",
          least > M.TARGETS.client and ("Any client that returns Lua tables pays at least the transfer plus " ..
            "the decoding, " .. ratio(least) .. " libcurl with cjson, so the target cannot be met by a " ..
            "decoding client; it can only be approached.") or "",
          ratio(by.luasocket.ir_per_call / floor))
    end
  end
  local page = d.client.page and c.kinds[2]
  if page then
    local pd, by = d.client.page, page.by
    local stage = {}
    for _, st in ipairs(by.aap.stages or {}) do stage[st.fn] = st.ir_per_call end
    local met_page = pd.vs_luasocket_cpu <= M.TARGETS.page_cpu
    local para = { ("\n\n**Target: %s decoded with no more CPU than LuaSocket + cjson — %s** (measured: %s the " ..
      "CPU, %.1f against %.1f µs per call; %s the instructions).")
      :format(page.label, yes(met_page), ratio(pd.vs_luasocket_cpu), by.aap.cpu_us_per_call,
        by.luasocket.cpu_us_per_call, ratio(pd.vs_luasocket_ir)) }
    if not met_page then
      local extra = (stage.aap_json_decode or 0) - by.cjson.ir_per_call + (stage.aap_make_token or 0)
      para[#para + 1] = (" Why, from the figures: both decode the same body with the same cjson (%s " ..
        "instructions alone); aap then gives integral numbers their integer type and builds `aap.Token` objects " ..
        "(times parsed, values checked), %s instructions more per page, while its transfer (%s) costs less than " ..
        "LuaSocket's Lua-level HTTP. The only lever left is decoding without cjson, which the house rules leave to " ..
        "lua-cjson.")
        :format(fmt_int(by.cjson.ir_per_call), fmt_int(extra), fmt_int(stage.aap_http_run or 0))
    end
    out[#out + 1] = table.concat(para)
  end
  out[#out + 1] = "\n"
end

local function section_lesson(out, r, d)
  local l = r.lesson
  out[#out + 1] = "## 2. The lesson end to end\n"
  out[#out + 1] = ([[
Look up the `RHDH Integration` application by name, create an application token for it, and
write `AAP_TOKEN` and `REFRESH_TOKEN` to an env file, over HTTPS against the emulator (`aap sim
--tls-cert/--tls-key`, a throwaway CA made with the spec helper's openssl commands):
`aap token create --application "RHDH Integration" --env-file F` (TLS verified with
`AAP_CA_FILE`; it proves the new token with `GET me/` before writing, and writes atomically)
against `bench/lesson.sh`, the lesson's curl + jq commands run as a script (`curl -sk`, one curl
per request, jq per value, `>> .env`). Wall time: hyperfine (`-N`, no shell, %d runs each after 3
warm-ups). Then %d checked runs each, interleaved, each writing a fresh env file that must hold
the token pair: client CPU from `perf stat -e task-clock` (the process and its children), the
emulator's CPU from `/proc/PID/schedstat`, connections from the emulator's request log
(distinct connection ids).
]]):format(#l.by.aap.wall, l.runs)
  out[#out + 1] = "| contender | wall, median | wall, min | client CPU | emulator CPU | connections | requests |"
  out[#out + 1] = "|---|---:|---:|---:|---:|---:|---:|"
  for _, name in ipairs({ "aap", "aap_noverify", "lesson" }) do
    local b = l.by[name]
    if b then out[#out + 1] = ("| %s | %s | %s | %s | %s | %d | %d |"):format(b.label, ms(lib.median(b.wall)),
      ms(lib.min(b.wall)), ms(lib.median(b.cpu)), ms(lib.median(b.server_cpu)), lib.median(b.conns),
      lib.median(b.requests)) end
  end
  out[#out + 1] = ""
  local ps = l.process_start
  out[#out + 1] = ("Process start on this machine (hyperfine, mean): `curl --version` %s, `jq -n 1` %s, " ..
    "`aap --version` %s.\n"):format(ms(ps.curl), ms(ps.jq), ms(ps.aap))
  local met = d.lesson.speedup >= M.TARGETS.lesson
  out[#out + 1] = ("**Target: aap at least %s faster than the script — %s** (measured: %s faster, %s vs %s).")
    :format(ratio(M.TARGETS.lesson), yes(met), ratio(d.lesson.speedup), ms(d.lesson.aap), ms(d.lesson.script))
  if not met then
    local a, s = l.by.aap, l.by.lesson
    local nv = l.by.aap_noverify and lib.median(l.by.aap_noverify.wall)
    out[#out + 1] = (" Why, from the figures above: the script's %s go mostly to starting its six processes " ..
      "(bash, two curl, three jq; %s of CPU in all, a jq start alone is %s). aap's %s: %s of its own CPU, " ..
      "of which its start (`aap --version`) is %s, and %s of emulator CPU, for %d requests on %d TLS " ..
      "connections against the script's %d on %d. aap proves the new token with `GET me/` before it writes " ..
      "it (the requests below)%s.")
      :format(ms(d.lesson.script), ms(lib.median(s.cpu)), ms(ps.jq), ms(d.lesson.aap), ms(lib.median(a.cpu)),
        ms(ps.aap), ms(lib.median(a.server_cpu)), lib.median(a.requests), lib.median(a.conns),
        lib.median(s.requests), lib.median(s.conns),
        nv and ("; without that proof (`--no-verify`) it takes " .. ms(nv) .. ", " .. ratio(d.lesson.script / nv) ..
          " faster than the script") or "")
  end
  for _, name in ipairs({ "aap", "lesson" }) do
    local b = l.by[name]
    if b and b.trace then
      out[#out + 1] = ("\n\nRequests of one `%s` run (emulator log):\n\n```\n%s\n```"):format(b.label,
        table.concat(b.trace, "\n"))
    end
  end
  out[#out + 1] = "\n"
end

local function section_listing(out, r, d)
  local l = r.listing
  local lat = l.latency_ms
  out[#out + 1] = "## 3. Listing many tokens with server latency\n"
  out[#out + 1] = ([[
%s tokens on the emulator (plain HTTP), `latency_ms = %d` (added to every request without
blocking other connections), listed with `s:tokens{}` on sessions with `concurrency = 1` (pages
one after another), the default, 4 and 8. Time is measured inside the client around the call.
The limit is pages ÷ concurrency × latency (pages = the requests the session made, from
`s:stats()`). CPU: the client's from `perf stat`, the emulator's from `/proc/PID/schedstat`.
The same lists at `latency_ms = 0` show the processing cost alone. Median of %d interleaved runs.
]]):format(fmt_int(l.count), lat, l.runs)
  out[#out + 1] = ("| concurrency | pages | connections | emulator, %d ms | limit | × limit | emulator CPU | " ..
    "client CPU | emulator, 0 ms | nginx, %d ms | × limit |"):format(lat, lat)
  out[#out + 1] = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for _, name in ipairs(l.order) do
    local s, x = l.settings[name], d.listing[name]
    out[#out + 1] = ("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |"):format(
      name == "default" and "default (4)" or name, s.requests, s.connects, ms(s["seconds_" .. lat]), ms(x.limit),
      ratio(x.ratio), ms(s["server_cpu_" .. lat]), ms(s["client_cpu_" .. lat]), ms(s.seconds_0),
      s.nginx_seconds and ms(s.nginx_seconds) or "", x.nginx_ratio and ratio(x.nginx_ratio) or "")
  end
  out[#out + 1] = ""
  if l.settings["1"].nginx_seconds then
    out[#out + 1] = ("The last two columns: the same %s tokens from nginx, the pages recorded from the emulator and " ..
      "each answered after %d ms by a timer (the echo module's `echo_sleep`; other requests go on meanwhile), " ..
      "so the server costs next to nothing and what remains is the client.\n"):format(fmt_int(l.count), lat)
  end
  local met = true
  for _, name in ipairs(l.order) do met = met and d.listing[name].ratio <= M.TARGETS.listing end
  out[#out + 1] = ("**Target: within %s of the limit — %s** (sequential %s; the default is %s faster).")
    :format(ratio(M.TARGETS.listing), yes(met), ratio(d.listing["1"].ratio),
      ratio(l.settings["1"]["seconds_" .. lat] / l.settings.default["seconds_" .. lat]))
  for _, name in ipairs(l.order) do
    local s, x = l.settings[name], d.listing[name]
    if x.ratio > M.TARGETS.listing then
      local pages = s.requests
      local rounds = 1 + math.ceil((pages - 1) / x.conc)
      out[#out + 1] = (" Concurrency %s (%s the limit), measured: the emulator was on the CPU for %s of the " ..
        "%s (%.2f ms a page; it runs every request on one thread), the client for %s; page 1 must arrive " ..
        "before the others are known, so %d rounds of %d ms (%s) is the least any client can take; and since " ..
        "the emulator serves the %d requests of a round one after another, a round lasts about %d ms + %d × " ..
        "%.2f ms, so %d rounds come to %s against the %s measured. At 0 ms latency the list takes %s.")
        :format(name, ratio(x.ratio), ms(s["server_cpu_" .. lat]), ms(s["seconds_" .. lat]),
          1000 * s["server_cpu_" .. lat] / pages, ms(s["client_cpu_" .. lat]), rounds, lat, ms(rounds * lat / 1000),
          x.conc, lat, x.conc, 1000 * s["server_cpu_" .. lat] / pages, rounds,
          ms(rounds * (lat / 1000 + x.conc * s["server_cpu_" .. lat] / pages)), ms(s["seconds_" .. lat]),
          ms(s.seconds_0))
    end
  end
  for _, name in ipairs(l.order) do
    local s, x = l.settings[name], d.listing[name]
    if x.nginx_ratio and x.nginx_ratio > M.TARGETS.listing then
      local rounds = 1 + math.ceil((s.nginx_requests - 1) / x.conc)
      local least = rounds * lat / 1000
      out[#out + 1] = (" From nginx, concurrency %s (%s the limit): %d rounds of %d ms (page 1 first) take %s; " ..
        "the %s measured is %s more, against %s of client CPU (its start-up included): the C core fetches " ..
        "every remaining page first and decodes them after the last has arrived (`csrc/paging.c`, " ..
        "`fetch_rest_concurrently`), so the decoding is added to the waiting instead of overlapping it.")
        :format(name, ratio(x.nginx_ratio), rounds, lat, ms(least), ms(s.nginx_seconds), ms(s.nginx_seconds - least),
          ms(s.nginx_client_cpu))
    end
  end
  if not met and r.startup then
    local per = {}
    for _, row in ipairs(r.startup.iterate) do
      per[#per + 1] = ("%s tokens %.2f ms"):format(fmt_int(row.n), 1000 * row.each.server_cpu / row.each.requests)
    end
    local it = r.startup.iterate
    local grow = (it[#it].each.server_cpu / it[#it].each.requests) / (it[1].each.server_cpu / it[1].each.requests)
    out[#out + 1] = (" The emulator's CPU per page, measured while iterating at 0 ms latency (section 4): %s%s.")
      :format(table.concat(per, ", "), grow > 1.3 and ("; it grows with the length of the list, since the " ..
        "emulator filters and orders the whole token list for every page it serves (`lua/aap/sim/views/tokens.lua`, " ..
        "`lists.lua`)") or "")
  end
  out[#out + 1] = "\n"
end

local function section_startup(out, r, d)
  local s = r.startup
  out[#out + 1] = "## 4. Cold start and peak memory\n"
  out[#out + 1] = "Wall time from hyperfine (`-N`, mean ± σ after warm-up); peak RSS from `/usr/bin/time -v` " ..
    "(median of 5). `token list` runs against the emulator on plain HTTP with 20 tokens (one page).\n"
  out[#out + 1] = "| command | wall | peak RSS |"
  out[#out + 1] = "|---|---:|---:|"
  for _, c in ipairs(s.commands) do
    out[#out + 1] = ("| `%s` | %s ± %s | %s |"):format(c.label, ms(c.mean), ms(c.stddev), mib(c.maxrss_kib))
  end
  out[#out + 1] = ""
  if r.client then
    local k = r.client.kinds[1]
    local aap, raw = k.by.aap, k.by.rawcurl
    out[#out + 1] = ("Start-up instructions by object (callgrind, from section 1: the N-call profile less N " ..
      "calls): `require(\"aap\")` and a session %s in all, the libcurl C program %s.\n")
      :format(fmt_int(aap.ir_startup), fmt_int(raw.ir_startup))
    out[#out + 1] = "| object | aap client | libcurl C program |"
    out[#out + 1] = "|---|---:|---:|"
    for i, o in ipairs(sorted_pairs_by_value(aap.startup_objects or {})) do
      if i > 6 then break end
      out[#out + 1] = ("| %s | %s | %s |"):format(o.k, fmt_int(o.v), fmt_int((raw.startup_objects or {})[o.k] or 0))
    end
    out[#out + 1] = ""
  end
  local ru = s.smaps.rollup
  local private = (ru.Private_Clean or 0) + (ru.Private_Dirty or 0)
  out[#out + 1] = ("Where the resident memory of a process that loaded aap and listed the tokens is " ..
    "(`/proc/self/smaps`): RSS %s, PSS %s, private %s (anonymous %s); the largest mappings:\n")
    :format(mib(ru.Rss), mib(ru.Pss), mib(private), mib(ru.Anonymous or 0))
  out[#out + 1] = "| mapping | RSS | private |"
  out[#out + 1] = "|---|---:|---:|"
  local maps = {}
  for name, m in pairs(s.smaps.mappings) do maps[#maps + 1] = { name = name, rss = m.rss, private = m.private } end
  table.sort(maps, function(a, b) return a.rss > b.rss end)
  local shown, other, other_priv = 0, 0, 0
  for _, m in ipairs(maps) do
    if shown < 10 then
      shown = shown + 1
      out[#out + 1] = ("| %s | %s | %s |"):format(m.name, mib(m.rss), mib(m.private))
    else
      other, other_priv = other + m.rss, other_priv + m.private
    end
  end
  out[#out + 1] = ("| %d others | %s | %s |\n"):format(#maps - shown, mib(other), mib(other_priv))
  out[#out + 1] = "Iterating every token with `for tok in s:each_token{}` against the whole list in memory " ..
    "(`s:tokens{}`), the emulator reset and seeded with N tokens each time; Lua heap sampled with " ..
    "`collectgarbage(\"count\")` after every token (peak), RSS as above.\n"
  out[#out + 1] = "| tokens | each_token: peak RSS | each_token: peak Lua heap | tokens{}: peak RSS | " ..
    "tokens{}: peak Lua heap |"
  out[#out + 1] = "|---:|---:|---:|---:|---:|"
  for _, row in ipairs(s.iterate) do
    out[#out + 1] = ("| %s | %s | %s | %s | %s |"):format(fmt_int(row.n), mib(row.each.maxrss_kib),
      mib(row.each.heap_peak_kib), mib(row.all.maxrss_kib), mib(row.all.heap_peak_kib))
  end
  out[#out + 1] = ""
  local first, last = s.iterate[1], s.iterate[#s.iterate]
  out[#out + 1] = ("From %s to %s tokens, `each_token`'s peak RSS changes by %s and its peak Lua heap by %s " ..
    "(`tokens{}`: %s and %s).\n"):format(fmt_int(first.n), fmt_int(last.n),
    mib(last.each.maxrss_kib - first.each.maxrss_kib), mib(last.each.heap_peak_kib - first.each.heap_peak_kib),
    mib(last.all.maxrss_kib - first.all.maxrss_kib), mib(last.all.heap_peak_kib - first.all.heap_peak_kib))
  local n = last.n - first.n
  out[#out + 1] = ("That is %.0f bytes of Lua heap per token for `each_token` against %.0f for `tokens{}`. " ..
    "What `each_token` keeps is the set of ids it has seen, to drop duplicates when the list shifts while it " ..
    "is read (`csrc/paging.c`); a set of %s integer ids takes %s of Lua heap on its own (measured in the " ..
    "harness).\n"):format(1024 * (last.each.heap_peak_kib - first.each.heap_peak_kib) / n,
    1024 * (last.all.heap_peak_kib - first.all.heap_peak_kib) / n, fmt_int(last.n), mib(s.id_set_kib))
  local met = d.cli_rss < M.TARGETS.rss_mib * 1024
  out[#out + 1] = ("**Target: peak memory of the aap command under %d MiB — %s** (`aap token list`: %s).")
    :format(M.TARGETS.rss_mib, yes(met), mib(d.cli_rss))
  if not met then
    local rss = {}
    for _, c in ipairs(s.commands) do rss[c.name] = c.maxrss_kib end
    local nlibs = 0
    for name in pairs(s.smaps.mappings) do if name:match("%.so$") then nlibs = nlibs + 1 end end
    out[#out + 1] = (" Why, measured above: the interpreter alone peaks at %s; loading the C core brings it to " ..
      "%s, and `curl --version`, the same libcurl with nothing else, peaks at %s: most of it is libcurl and the " ..
      "%d shared libraries it and Lua bring in (the mappings table above), mapped and partly touched at " ..
      "load. Those pages are file-backed and shared with every other process using them: of the listing " ..
      "process's %s RSS, %s is private to it (PSS %s).")
      :format(mib(rss.lua), mib(rss.require), mib(rss.curl), nlibs, mib(ru.Rss), mib(private), mib(ru.Pss))
  end
  out[#out + 1] = "\n"
end

local function section_remote(out, r, d)
  local x, dr = r.remote, d.remote
  local hs = dr.handshake_rtts
  local first = x.by_rtt[rtt_key(x.rtts[1])]
  local names = {}
  for _, n in ipairs({ "aap", "aap2", "lesson" }) do
    if first.by[n] then names[#names + 1] = n end
  end
  local runs = {}
  for _, rtt in ipairs(x.rtts) do
    runs[#runs + 1] = ("%d at %d ms"):format(#x.by_rtt[rtt_key(rtt)].by.aap.wall, rtt)
  end
  out[#out + 1] = "## 5. The whole lesson on a remote gateway\n"
  out[#out + 1] = ([[
The lesson's whole job — a personal access token saved as `AAP_PAT`, then the `RHDH Integration`
application looked up by name and an application token saved as `AAP_TOKEN` and `REFRESH_TOKEN`,
all in one env file — done by aap in one run (`%s`, TLS verified with the emulator's CA in
`AAP_CA_FILE`)%s and by the lesson's script (`%s`: `curl -sk` per request, jq per value,
`>> .env`). The targets are aap's one run against the script.
The emulator serves HTTPS (`aap sim --tls-cert/--tls-key`; it negotiated %s with curl) behind
`bench/delayproxy`, which puts it a round trip time (RTT) away: every chunk of bytes is delayed
by RTT/2 each way, and a new connection's first bytes by one RTT more, for the TCP handshake its
`connect()` skipped on loopback.

Each run writes a fresh env file that must hold each of the three keys once, with a value no
other run or key holds, and both access tokens must then work (`GET me/` with each, asked of the
emulator directly), so a failing run cannot be measured. TCP connections: what the proxy
accepted during the run (checked against the distinct connection ids of the emulator's request
log); requests: the emulator's log. Wall time: the whole command line (`env -i`, `sh`, the env
file sourced: %s by itself), median of %s, the contenders interleaved and alternating who goes
first; spread: least to most.

The floor is what the network alone costs: (connections × %d + requests) × RTT. A new
connection costs one round trip for TCP and %d for the TLS handshake (%s; TLS 1.2 takes two, so
on a TLS 1.2 gateway every connection would cost %d), and each request one more, since both
contenders make their requests one after another. Nothing done on the machine (process starts,
the key exchange's arithmetic, JSON) is in it: "beyond the floor" is that share, which should
stay the same at every RTT if the model holds.
]]):format(x.commands.aap, x.commands.aap2 and (", in two commands for comparison (`" .. x.commands.aap2 ..
    "`: each opens its own connection)") or "", x.commands.lesson, x.tls, ms(first.launch), table.concat(runs, ", "),
    hs, hs - 1,
    x.tls == "TLSv1.3" and "one round trip for TLS 1.3, measured here" or ("two for " .. x.tls .. ", measured here"),
    hs + (x.tls == "TLSv1.3" and 1 or 0))
  out[#out + 1] = "| RTT | contender | wall, median | spread | requests | TCP connections | round trips | floor | " ..
    "× floor | beyond the floor |"
  out[#out + 1] = "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for _, rtt in ipairs(x.rtts) do
    local e = dr[rtt_key(rtt)]
    for _, name in ipairs(names) do
      local c = e[name]
      out[#out + 1] = ("| %d ms | %s | %s | %s – %s | %d | %d | %d | %s | %s | %s |"):format(rtt, x.labels[name],
        ms(c.wall), ms(c.min), ms(c.max), c.requests, c.conns, c.round_trips, ms(c.floor),
        c.ratio and ratio(c.ratio) or "—", ms(c.beyond))
    end
  end
  out[#out + 1] = ""
  out[#out + 1] = "| RTT | aap | script | script ÷ aap | script ÷ aap's floor (aap costing nothing locally) |"
  out[#out + 1] = "|---:|---:|---:|---:|---:|"
  for _, rtt in ipairs(x.rtts) do
    local e = dr[rtt_key(rtt)]
    out[#out + 1] = ("| %d ms | %s | %s | %s | %s |"):format(rtt, ms(e.aap.wall), ms(e.lesson.wall), ratio(e.speedup),
      e.best and ratio(e.best) or "—")
  end
  out[#out + 1] = ""
  if x.calibration then
    out[#out + 1] = "The proxy itself, measured: `bench/rawcurl` making N GETs on one plain HTTP connection to " ..
      "nginx, directly and through the proxy (median of interleaved runs). The model adds (N + 1) × RTT; the " ..
      "excess is what the proxy adds beyond it, per round trip, and the lateness how late its chunks left " ..
      "(its own count).\n"
    out[#out + 1] = "| RTT | N | direct | through the proxy | the model adds | excess per round trip | " ..
      "lateness, mean / most |"
    out[#out + 1] = "|---:|---:|---:|---:|---:|---:|---:|"
    for _, rtt in ipairs(x.rtts) do
      local c = x.calibration[rtt_key(rtt)]
      out[#out + 1] = ("| %d ms | %d | %s | %s | %s | %.3f ms | %.3f / %.3f ms |"):format(rtt, c.n, ms(c.direct),
        ms(c.proxied), ms((c.n + 1) * rtt / 1000), 1000 * c.excess_per_rt, 1000 * c.late_avg, 1000 * c.late_max)
    end
    out[#out + 1] = ""
  end
  local function round_trips(c) return ("%d connections × %d + %d requests = %d round trips"):format(c.conns, hs,
    c.requests, c.round_trips) end
  local z = dr["0"]
  local function plural(n, word) return ("%d %s%s"):format(n, word, n == 1 and "" or "s") end
  for _, v in ipairs({ { rtt = "0", target = M.TARGETS.remote_0 }, { rtt = "20", target = M.TARGETS.remote_20 } }) do
    local e = dr[v.rtt]
    if e then
      local met = e.speedup >= v.target
      local para = { ("**Target: at %s ms of round trip, the script at least %s slower than aap — %s** " ..
        "(measured: %s, %s against %s)."):format(v.rtt, ratio(v.target), yes(met), ratio(e.speedup), ms(e.aap.wall),
        ms(e.lesson.wall)) }
      local ps = x.process_start
      if not met and v.rtt == "0" then
        para[#para + 1] = (" Why, from the figures: at 0 ms there is no network to save, and the wall time is " ..
          "what the machine does. aap's %s are %s under `bash -c` (starting Lua, loading libcurl and " ..
          "OpenSSL, then making its requests on one TLS connection per process: %s on %s in all); " ..
          "the script's %s are bash, three curl and four jq processes, %s on %s%s. The machine's load " ..
          "average at the start was %s.")
          :format(ms(e.aap.wall), e.aap.conns == 1 and "one `aap` process" or plural(e.aap.conns, "`aap` process"),
            plural(e.aap.requests, "request"), plural(e.aap.conns, "connection"),
            ms(e.lesson.wall), plural(e.lesson.requests, "request"), plural(e.lesson.conns, "TLS connection"),
            ps and ("; one process start alone (hyperfine, median) is " .. ms(ps.aap) ..
              " for Lua loading aap's C core (`lua5.4 -e \"require'aap'\"`), " .. ms(ps.curl) ..
              " for `curl --version` and " .. ms(ps.jq) .. " for `jq -n 1`, so starts alone come to " ..
              ms(e.aap.conns * ps.aap) .. " of aap's time and " .. ms(3 * ps.curl + 4 * ps.jq) .. " of the script's")
              or "",
            r.machine.load)
      elseif not met then
        para[#para + 1] = (" Why, from the figures: aap's floor is %s (%s), the script's %s (%s). aap opens " ..
          "%s fewer but makes %s more (aap proves each new token with `GET me/` before writing it; the " ..
          "requests below).")
          :format(ms(e.aap.floor), round_trips(e.aap), ms(e.lesson.floor), round_trips(e.lesson),
            plural(e.lesson.conns - e.aap.conns, "connection"), plural(e.aap.requests - e.lesson.requests, "request"))
        local need = e.lesson.wall / v.target - e.aap.floor
        if need <= 0 then
          para[#para + 1] = (" The script's %s over aap's floor is %s: no aap making these round trips can be " ..
            "%s faster, even one costing nothing on the machine; only fewer round trips could.")
            :format(ms(e.lesson.wall), ratio(e.best), ratio(v.target))
        else
          para[#para + 1] = (" To be %s faster aap may spend %s beyond its floor; it spent %s (at 0 ms its " ..
            "whole run took %s).%s"):format(ratio(v.target), ms(need), ms(e.aap.beyond), z and ms(z.aap.wall) or "?",
            e.best < v.target * 1.25 and (" Even an aap costing nothing on the machine would be only " ..
              ratio(e.best) .. " faster: the round trips leave little room.") or "")
        end
      end
      out[#out + 1] = table.concat(para) .. "\n"
    end
  end
  local f = dr[M.REMOTE_FLOOR_RTT]
  if f then
    local met = f.aap.ratio <= M.TARGETS.remote_floor
    local para = { ("**Target: at %s ms, aap within %s of its floor — %s** (measured: %s, %s against %s: %s).")
      :format(M.REMOTE_FLOOR_RTT, ratio(M.TARGETS.remote_floor), yes(met), ratio(f.aap.ratio), ms(f.aap.wall),
        ms(f.aap.floor), round_trips(f.aap)) }
    if not met then
      para[#para + 1] = (" Why, from the figures: aap spent %s beyond its floor, while its whole run at 0 ms " ..
        "took %s: the machine's work accounts for at most that much, and the rest is what the link adds beyond " ..
        "the model (the proxy's calibration above).")
        :format(ms(f.aap.beyond), z and ms(z.aap.wall) or "?")
    end
    out[#out + 1] = table.concat(para) .. "\n"
  end
  local last = x.by_rtt[rtt_key(x.rtts[#x.rtts])]
  for _, name in ipairs(names) do
    local b = last.by[name]
    if b.trace then
      out[#out + 1] = ("Requests of one `%s` run at %d ms (emulator log):\n\n```\n%s\n```\n"):format(x.labels[name],
        last.rtt_ms, table.concat(b.trace, "\n"))
    end
  end
  out[#out + 1] = "\n"
end

--- The chart: five panels, one per benchmark.
local function chart(r, d, png, tmp)
  local files = {}
  local function data(name, lines)
    local p = tmp .. "/" .. name .. ".dat"
    lib.writefile(p, table.concat(lines, "\n") .. "\n")
    files[name] = p
  end
  local plots = {}
  if r.client then
    local lines = {}
    for _, k in ipairs(r.client.kinds) do
      lines[#lines + 1] = ('"%s" 1 %.3f %.3f'):format(k.name == "me" and "GET me/" or "GET tokens/ (page)",
        d.client[k.name].aap, d.client[k.name].luasocket)
    end
    data("client", lines)
    plots[#plots + 1] = ([[
set title "1. Instructions per call (× raw libcurl)"
set style data histogram; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set ylabel "× libcurl (log scale)"; set logscale y; set yrange [0.5:*]; set key top left
set arrow 1 from graph 0, first %g to graph 1, first %g nohead dt 2 lc rgb "#aa0000"
plot "%s" using 2:xtic(1) title "libcurl (C)" lc rgb "#999999", \
  NaN with lines dt 2 lc rgb "#aa0000" title "target: 1.25×", \
  '' using 3 title 'require("aap")' lc rgb "#1f77b4", \
  '' using 4 title "LuaSocket + cjson" lc rgb "#ff7f0e"
unset arrow 1; unset logscale y
]]):format(M.TARGETS.client, M.TARGETS.client, files.client)
  end
  if r.lesson then
    local bars = { ('"aap token create" %.1f'):format(1000 * d.lesson.aap) }
    if r.lesson.by.aap_noverify then
      bars[#bars + 1] = ('"... --no-verify" %.1f'):format(1000 * lib.median(r.lesson.by.aap_noverify.wall))
    end
    bars[#bars + 1] = ('"lesson.sh (curl+jq)" %.1f'):format(1000 * d.lesson.script)
    data("lesson", bars)
    plots[#plots + 1] = ([[
set title "2. The lesson over HTTPS (median wall time)"
set style data histogram; set style histogram clustered; set style fill solid 0.8 border -1
set ylabel "ms"; set yrange [0:*]; set key top left
set arrow 3 from graph 0, first %.1f to graph 1, first %.1f nohead dt 2 lc rgb "#aa0000"
plot "%s" using 2:xtic(1) lc rgb "#1f77b4" notitle, NaN with lines dt 2 lc rgb "#aa0000" title "target: script ÷ 3"
unset arrow 3
]]):format(1000 * d.lesson.script / M.TARGETS.lesson, 1000 * d.lesson.script / M.TARGETS.lesson, files.lesson)
  end
  if r.listing then
    local lines = {}
    for _, name in ipairs(r.listing.order) do
      local s = r.listing.settings[name]
      lines[#lines + 1] = ('"%s" %.3f %.3f %.3f'):format(name == "default" and "default" or ("c=" .. name),
        s["seconds_" .. r.listing.latency_ms], s.nginx_seconds or 0, d.listing[name].limit)
    end
    data("listing", lines)
    plots[#plots + 1] = ([[
set title "3. Listing %s tokens, %d ms latency"
set style data histogram; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set ylabel "seconds"; set yrange [0:*]; set key top right
plot "%s" using 2:xtic(1) title "from the emulator" lc rgb "#1f77b4", \
  '' using 3 title "from nginx" lc rgb "#2ca02c", \
  '' using 4 title "limit (pages/c × latency)" lc rgb "#999999"
]]):format(fmt_int(r.listing.count), r.listing.latency_ms, files.listing)
  end
  if r.startup then
    local lines = {}
    for _, row in ipairs(r.startup.iterate) do
      lines[#lines + 1] = ("%d %.2f %.2f %.2f %.2f"):format(row.n, row.each.maxrss_kib / 1024,
        row.all.maxrss_kib / 1024, row.each.heap_peak_kib / 1024, row.all.heap_peak_kib / 1024)
    end
    data("memory", lines)
    plots[#plots + 1] = ([[
set title "4. Peak memory while listing N tokens"
set style data linespoints; set ylabel "MiB"; set xlabel "tokens"; set yrange [0:*]; set key top left
set arrow 2 from graph 0, first %d to graph 1, first %d nohead dt 2 lc rgb "#aa0000"
plot "%s" using 1:2 title "each_token RSS" lw 2 lc rgb "#1f77b4", \
  NaN with lines dt 2 lc rgb "#aa0000" title "target for the CLI: 10 MiB", \
  '' using 1:4 title "each_token Lua heap" lw 2 dt 2 lc rgb "#1f77b4", \
  '' using 1:3 title "tokens{} RSS" lw 2 lc rgb "#ff7f0e", \
  '' using 1:5 title "tokens{} Lua heap" lw 2 dt 2 lc rgb "#ff7f0e"
unset xlabel; unset arrow 2
]]):format(M.TARGETS.rss_mib, M.TARGETS.rss_mib, files.memory)
  end
  if r.remote then
    local lines = {}
    for _, rtt in ipairs(r.remote.rtts) do
      local e = d.remote[rtt_key(rtt)]
      lines[#lines + 1] = ('"%d ms" %.1f %.1f %.1f %.1f %.1f'):format(rtt, 1000 * e.aap.wall, 1000 * e.lesson.wall,
        1000 * e.aap.floor, 1000 * e.lesson.floor, 1000 * (e.aap2 or e.aap).wall)
    end
    data("remote", lines)
    local two = r.remote.by_rtt[rtt_key(r.remote.rtts[1])].by.aap2 ~= nil
    plots[#plots + 1] = ([[
set title "5. The whole lesson (PAT + application token) by round trip time, HTTPS"
set style data histogram; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set ylabel "ms (median wall)"; set yrange [0:*]; set key top left; set offsets 0, 0, graph 0.4, 0
plot "%s" using 2:xtic(1) title "aap (one run)" lc rgb "#1f77b4", \
%s  '' using 3 title "lesson.sh --with-pat (curl + jq)" lc rgb "#ff7f0e", \
  '' using 4 title "aap's floor" lc rgb "#9ecae1", \
  '' using 5 title "the script's floor" lc rgb "#fdd0a2"
set offsets
]]):format(files.remote, two and "  '' using 6 title \"aap (2 commands)\" lc rgb \"#08519c\", \\\n" or "")
  end
  local rows = #plots > 4 and 3 or 2
  local script = ('set terminal pngcairo noenhanced size 1400,%d font "sans,11"\nset output "%s"\n'):format(
    500 * rows, png) ..
    ("set multiplot layout %d,2 title \"aap benchmarks, %s (%s)\"\nset grid ytics\n"):format(rows, r.machine.date,
      r.machine.commit) .. table.concat(plots, "\n") .. "\nunset multiplot\n"
  local gp = tmp .. "/chart.gp"
  lib.writefile(gp, script)
  local ok = os.execute("gnuplot " .. lib.shquote(gp) .. " 2>" .. lib.shquote(tmp .. "/gnuplot.err"))
  if not ok then error("gnuplot failed: " .. (lib.readfile(tmp .. "/gnuplot.err") or "")) end
end

--- Writes outdir/benchmarks.md and outdir/benchmarks.png; returns their paths.
function M.write(r, outdir, tmp)
  local d = derive(r)
  local png = outdir .. "/benchmarks.png"
  chart(r, d, png, tmp)
  local m = r.machine
  local out = {}
  out[#out + 1] = "# Benchmarks\n"
  out[#out + 1] = ("Generated by `make bench` (`bench/run.sh`, %.0f s) on %s%s. Do not edit: run it again. " ..
    "Every figure below was measured in that one run, with each comparison's contenders run side by side " ..
    "against loopback servers the harness started itself.\n"):format(r.seconds or 0, m.date,
    r.quick and " — **quick run (fewer repetitions): not for the record**" or "")
  out[#out + 1] = ("- Machine: %s, %d cores, %.0f GiB, %s, %s; load average at start %s (the machine may " ..
    "be shared: instruction counts are the stable figures, times are medians)."):format(m.cpu, m.cores, m.mem_gib,
    m.kernel, m.os, m.load)
  out[#out + 1] = ("- Code: commit %s%s, aap %s."):format(m.commit, m.dirty and " with uncommitted changes" or "",
    m.versions.aap)
  local v = m.versions
  out[#out + 1] = ("- Versions: %s; %s (%s); %s; %s; LuaSocket %s; %s; %s; hyperfine %s; %s.\n"):format(v.lua,
    v.libcurl, v.curl, v.openssl, v.nginx, v.luasocket:gsub("^LuaSocket ", ""), v.jq, v.valgrind,
    v.hyperfine:gsub("^hyperfine ", ""), v.gnuplot)
  out[#out + 1] = "## Summary\n"
  out[#out + 1] = "| benchmark | measured | target | |"
  out[#out + 1] = "|---|---:|---:|---|"
  if r.client then
    for _, k in ipairs(r.client.kinds) do
      local x = d.client[k.name].aap
      out[#out + 1] = ("| client cost, %s: aap instructions per call ÷ raw libcurl's | %s | ≤ %s | %s |")
        :format(k.label, ratio(x), ratio(M.TARGETS.client), yes(x <= M.TARGETS.client))
    end
    local pd = d.client.page
    if pd then
      out[#out + 1] = ("| client cost, %s: aap CPU per call ÷ LuaSocket + cjson's | %s | ≤ %s | %s |")
        :format(r.client.kinds[2].label, ratio(pd.vs_luasocket_cpu), ratio(M.TARGETS.page_cpu),
          yes(pd.vs_luasocket_cpu <= M.TARGETS.page_cpu))
    end
  end
  if r.lesson then
    out[#out + 1] = ("| the lesson over HTTPS: curl + jq script's wall time ÷ aap's | %s | ≥ %s | %s |")
      :format(ratio(d.lesson.speedup), ratio(M.TARGETS.lesson), yes(d.lesson.speedup >= M.TARGETS.lesson))
  end
  if r.listing then
    for _, name in ipairs(r.listing.order) do
      local x = d.listing[name].ratio
      out[#out + 1] = ("| listing %s tokens from the emulator at %d ms latency, concurrency %s: time ÷ limit " ..
        "| %s | ≤ %s | %s |"):format(fmt_int(r.listing.count), r.listing.latency_ms, name, ratio(x),
          ratio(M.TARGETS.listing), yes(x <= M.TARGETS.listing))
    end
    for _, name in ipairs(r.listing.order) do
      local x = d.listing[name].nginx_ratio
      if x then
        out[#out + 1] = ("| the same list from nginx at %d ms latency, concurrency %s: time ÷ limit " ..
          "| %s | ≤ %s | %s |"):format(r.listing.latency_ms, name, ratio(x), ratio(M.TARGETS.listing),
            yes(x <= M.TARGETS.listing))
      end
    end
  end
  if r.startup then
    out[#out + 1] = ("| peak memory of `aap token list` | %s | < %d MiB | %s |")
      :format(mib(d.cli_rss), M.TARGETS.rss_mib, yes(d.cli_rss < M.TARGETS.rss_mib * 1024))
  end
  if r.remote then
    local dr = d.remote
    for _, t in ipairs({ { "0", M.TARGETS.remote_0, "on loopback (0 ms RTT)" },
                         { "20", M.TARGETS.remote_20, "at 20 ms RTT" } }) do
      local e = dr[t[1]]
      if e then
        out[#out + 1] = ("| the whole lesson (PAT + application token) over HTTPS %s: curl + jq script's wall " ..
          "time ÷ aap's | %s | ≥ %s | %s |"):format(t[3], ratio(e.speedup), ratio(t[2]), yes(e.speedup >= t[2]))
      end
    end
    local f = dr[M.REMOTE_FLOOR_RTT]
    if f then
      out[#out + 1] = ("| the whole lesson at %s ms RTT: aap's wall time ÷ its network floor | %s | ≤ %s | %s |")
        :format(M.REMOTE_FLOOR_RTT, ratio(f.aap.ratio), ratio(M.TARGETS.remote_floor),
          yes(f.aap.ratio <= M.TARGETS.remote_floor))
    end
  end
  out[#out + 1] = ("\n![The benchmarks](benchmarks.png)\n")
  if r.client then section_client(out, r, d) end
  if r.lesson then section_lesson(out, r, d) end
  if r.listing then section_listing(out, r, d) end
  if r.startup then section_startup(out, r, d) end
  if r.remote then section_remote(out, r, d) end
  out[#out + 1] = [[
## Running it

`make bench` (after `make build`; it installs nginx, gnuplot-nox, hyperfine, time, valgrind and
linux-perf when they are missing). `bench/run.sh --quick` and `bench/run.sh --only
client,lesson,listing,startup,remote` write to `build/bench/` instead, so `docs/` only ever holds
a whole run. The harness: `bench/run.lua` (driver), `bench/suite.lua` (the benchmarks),
`bench/report.lua` (this page and the chart), `bench/client.lua` and `bench/tokens.lua` (client
processes), `bench/rawcurl.c` (the libcurl floor), `bench/lesson.sh` (the lesson's commands),
`bench/delayproxy.c` (the link to a remote gateway). The harness's own tests (no timing
thresholds: the floor program's failure paths, the proxy forwarding intact, counting, delaying
and stopping, secrets kept out of command lines, the report's verdicts): `busted --lua=lua5.4
bench/harness_spec.lua`.
]]
  local md = outdir .. "/benchmarks.md"
  lib.writefile(md, table.concat(out, "\n"))
  return md, png
end

return M
