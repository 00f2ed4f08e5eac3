--- The four benchmarks. Each takes the run context and returns a results table that
-- bench/report.lua turns into docs/benchmarks.md. Every figure is measured in this run;
-- every comparison runs its contenders side by side, interleaved, against the same server.
local lib = require("bench.lib")

local M = {}
local json = lib.json

local function check(cond, fmt, ...)
  if not cond then error(fmt:format(...), 2) end
  return cond
end

--- The env file every client process sources: Lua paths into the checkout, the credentials.
local function client_env(ctx, extra)
  local vars = {
    LUA_PATH_5_4 = ctx.root .. "/lua/?.lua;" .. ctx.root .. "/?.lua;;",
    LUA_CPATH_5_4 = ctx.build .. "/?.so;;",
    BENCH_PASSWORD = ctx.password,
    AAP_CPATH = ctx.build,
  }
  for k, v in pairs(extra or {}) do vars[k] = v end
  return vars
end

--- The emulator's log entries of one run, one readable line each, for the report.
local function trace(entries)
  local t = {}
  for _, e in ipairs(entries) do
    t[#t + 1] = ("connection %d: %s %s → %d (%s)"):format(math.tointeger(e.conn) or 0, e.method, e.path,
      math.tointeger(e.status) or 0, e.auth)
  end
  return t
end

--- CPU seconds that a process has used so far: /proc/PID/schedstat (nanoseconds on CPU),
-- else utime + stime from /proc/PID/stat (clock ticks, coarser).
local clk_tck
local function proc_cpu(pid)
  local sched = lib.readfile("/proc/" .. pid .. "/schedstat")
  local ns = sched and tonumber(sched:match("^(%d+)"))
  if ns then return ns / 1e9 end
  local stat = lib.readfile("/proc/" .. pid .. "/stat")
  if not stat then return nil end
  local fields = {}
  for f in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = f end
  clk_tck = clk_tck or tonumber((lib.capture("getconf CLK_TCK"))) or 100
  return (tonumber(fields[12]) + tonumber(fields[13])) / clk_tck -- utime, stime (fields 14, 15)
end
M.proc_cpu = proc_cpu

---------------------------------------------------------------------------------------------
-- 1. Per-call client cost: aap vs raw libcurl vs LuaSocket, on nginx serving canned answers.
---------------------------------------------------------------------------------------------
function M.client_cost(ctx)
  local sim = ctx.sim
  sim:reset()
  local auth = { basic = { "admin", ctx.password } }
  for i = 1, 50 do -- a page of realistic tokens, made through the API (half PATs, half app tokens)
    local st = sim:json("POST", "/api/gateway/v1/tokens/", { basic = auth.basic, json = {
      description = "bench token " .. i, scope = i % 3 == 0 and "read" or "write",
      application = i % 2 == 0 and sim.seed.application.id or nil } })
    check(st == 201, "creating token %d: HTTP %s", i, st)
  end
  local st_me, me = sim:raw("GET", "/api/gateway/v1/me/", auth)
  local st_page, page = sim:raw("GET", "/api/gateway/v1/tokens/?page_size=200", auth)
  check(st_me == 200 and st_page == 200, "recording canned answers: HTTP %s, %s", st_me, st_page)
  local decoded = json.decode(page)
  check(decoded and decoded.next == json.null and #decoded.results >= 50, "recorded page is not one whole list")
  local nginx = lib.start_nginx({ ["/api/gateway/v1/me/"] = me, ["/api/gateway/v1/tokens/"] = page })
  local envf = lib.envfile(ctx.tmp .. "/client.env", client_env(ctx))
  local bodies = { me = ctx.tmp .. "/me.json", page = ctx.tmp .. "/page.json" }
  lib.writefile(bodies.me, me)
  lib.writefile(bodies.page, page)

  local clients = {
    { name = "rawcurl", label = "libcurl, C (the floor)",
      argv = function(kind, n)
        return { ctx.build .. "/bench/rawcurl", tostring(n),
                 nginx.url .. (kind == "me" and "/api/gateway/v1/me/" or "/api/gateway/v1/tokens/?page_size=200") }
      end },
    { name = "aap", label = 'require("aap")',
      argv = function(kind, n)
        return { "lua5.4", ctx.root .. "/bench/client.lua", "aap", kind, tostring(n), nginx.url }
      end },
    { name = "luasocket", label = "LuaSocket socket.http + cjson",
      argv = function(kind, n)
        return { "lua5.4", ctx.root .. "/bench/client.lua", "luasocket", kind, tostring(n), nginx.url }
      end },
    { name = "cjson", label = "cjson.decode alone, no network", offline = true,
      argv = function(kind, n)
        return { "lua5.4", ctx.root .. "/bench/client.lua", "cjson", kind, tostring(n), bodies[kind] }
      end },
  }
  -- aap's per-call work by stage: instructions inside these C core functions (and what they
  -- call), counted with callgrind --toggle-collect over N calls.
  local stages = {
    { fn = "aap_http_run", label = "the transfer (libcurl)" },
    { fn = "aap_json_decode", label = "JSON decoding (cjson + integer pass)" },
    { fn = "aap_make_token", label = "building aap.Token objects" },
  }
  local kinds = {
    { name = "me", label = "GET me/ (" .. #me .. " B)", n = ctx.quick and 50 or 200, ncpu = ctx.quick and 200 or 2000 },
    { name = "page", label = ("GET tokens/, one page of %d tokens (%d B)"):format(#decoded.results, #page),
      n = ctx.quick and 20 or 60, ncpu = ctx.quick and 100 or 500 },
  }
  local res = { kinds = {}, clients = {}, tokens_per_page = #decoded.results }
  for _, c in ipairs(clients) do res.clients[#res.clients + 1] = { name = c.name, label = c.label } end

  local function requests_for(argv, want)
    nginx.clear_log()
    local out = ctx.tmp .. "/client.out"
    local ok = os.execute(lib.command(argv, envf, { stdout = out, stderr = ctx.tmp .. "/client.err" }))
    check(ok, "%s failed: %s", argv[1], lib.readfile(ctx.tmp .. "/client.err") or "")
    return nginx.requests(want)
  end

  for _, k in ipairs(kinds) do
    local kr = { name = k.name, label = k.label, n = k.n, ncpu = k.ncpu, by = {} }
    res.kinds[#res.kinds + 1] = kr
    for _, c in ipairs(clients) do
      -- Fairness: every client makes exactly one request per call.
      if not c.offline then
        local reqs = requests_for(c.argv(k.name, 3), 3)
        check(reqs == 3, "%s made %d requests for 3 %s calls", c.name, reqs, k.name)
      end
      lib.say("  %s / %s: callgrind N=%d and 2N", k.name, c.name, k.n)
      local p1 = ("%s/cg.%s.%s.1"):format(ctx.tmp, k.name, c.name)
      local p2 = ("%s/cg.%s.%s.2"):format(ctx.tmp, k.name, c.name)
      local err = ctx.tmp .. "/cg.err"
      local ir1 = lib.callgrind(c.argv(k.name, k.n), envf, p1, { stderr = err })
      local ir2 = lib.callgrind(c.argv(k.name, 2 * k.n), envf, p2, { stderr = err })
      local per_call = (ir2 - ir1) / k.n
      local o1, o2 = lib.ir_by_object(p1), lib.ir_by_object(p2)
      local objects, startup = {}, {}
      for obj, v in pairs(o2) do
        local d = (v - (o1[obj] or 0)) / k.n
        if d > 0 then objects[obj] = d end
        local st0 = (o1[obj] or 0) - k.n * math.max(d, 0)
        if st0 > 0 then startup[obj] = st0 end
      end
      local st
      if c.name == "aap" then
        st = {}
        for _, stage in ipairs(stages) do
          local ir = lib.callgrind(c.argv(k.name, k.n), envf, p1 .. ".stage", { stderr = err, toggle = stage.fn })
          st[#st + 1] = { fn = stage.fn, label = stage.label, ir_per_call = ir / k.n }
        end
      end
      kr.by[c.name] = { ir_per_call = per_call, ir_startup = ir1 - k.n * per_call, objects = objects,
                        startup_objects = startup, stages = st }
    end
    -- CPU time (user + system, kernel included; perf task-clock), interleaved, for N and 2N calls.
    local cpu = {}
    for _, c in ipairs(clients) do cpu[c.name] = { {}, {} } end
    for _ = 1, ctx.quick and 1 or 3 do
      for _, c in ipairs(clients) do
        for j, n in ipairs({ k.ncpu, 2 * k.ncpu }) do
          table.insert(cpu[c.name][j], lib.cpu_seconds(c.argv(k.name, n), envf))
        end
      end
    end
    for _, c in ipairs(clients) do
      -- The least of the runs: interference from other work only ever adds time.
      kr.by[c.name].cpu_us_per_call = (lib.min(cpu[c.name][2]) - lib.min(cpu[c.name][1])) / k.ncpu * 1e6
    end
  end
  nginx.stop()
  return res
end

---------------------------------------------------------------------------------------------
-- 2. The lesson end to end over HTTPS: `aap token create --application` vs bench/lesson.sh.
---------------------------------------------------------------------------------------------
function M.lesson(ctx)
  local certs = lib.spec_helper().make_certs(lib.tmpdir("certs"))
  local sim = lib.start_sim({ "--tls-cert", certs.cert, "--tls-key", certs.key })
  check(sim.url:match("^https://"), "the emulator did not start with TLS: %s", sim.url)
  check(sim.seed.application.name == "RHDH Integration", "the emulator seeds no \"RHDH Integration\" application")
  local envf = lib.envfile(ctx.tmp .. "/lesson.env", client_env(ctx, {
    AAP_URL = sim.url, AAP_HOSTNAME = sim.url, AAP_USERNAME = "admin", AAP_PASSWORD = ctx.password,
    AAP_CA_FILE = certs.ca }))
  local dir = lib.tmpdir("envs")
  local contenders = {
    { name = "aap", label = "aap token create --application",
      argv = function(path)
        return { "lua5.4", lib.AAP, "token", "create", "--application", "RHDH Integration", "--env-file", path }
      end },
    { name = "aap_noverify", label = "aap token create --application --no-verify",
      argv = function(path)
        return { "lua5.4", lib.AAP, "token", "create", "--application", "RHDH Integration", "--no-verify",
                 "--env-file", path }
      end },
    { name = "lesson", label = "lesson.sh (curl + jq)",
      argv = function(path) return { "bash", ctx.root .. "/bench/lesson.sh", path } end },
  }
  local runs = ctx.quick and 3 or 10
  local res = { runs = runs, by = {} }
  for _, c in ipairs(contenders) do
    res.by[c.name] = { label = c.label, cpu = {}, server_cpu = {}, conns = {}, requests = {} }
  end
  -- Checked runs, interleaved: each writes a fresh env file that must hold the token pair; the
  -- emulator's log gives connections and requests, perf the client's CPU (with its children),
  -- /proc the emulator's CPU. Run 0 warms caches and is not kept.
  local seq = 0
  for i = 0, runs do
    for _, c in ipairs(contenders) do
      seq = seq + 1
      local path = ("%s/%s-%d.env"):format(dir, c.name, seq)
      sim:clear_log()
      local scpu0 = proc_cpu(sim.pid)
      local cpu = lib.cpu_seconds(c.argv(path), envf, { stderr = ctx.tmp .. "/lesson.err" })
      local scpu1 = proc_cpu(sim.pid)
      local env = lib.readfile(path) or ""
      check(env:match("AAP_TOKEN=%w+") and env:match("REFRESH_TOKEN=%w+") and not env:match("=null"),
        "%s did not write the token pair: %s", c.name, lib.readfile(ctx.tmp .. "/lesson.err") or "")
      local conns, reqs, entries = lib.log_connections(sim)
      if i > 0 then
        local b = res.by[c.name]
        table.insert(b.cpu, cpu)
        table.insert(b.server_cpu, scpu1 - scpu0)
        table.insert(b.conns, conns)
        table.insert(b.requests, reqs)
        b.trace = trace(entries)
      end
    end
  end
  -- Wall time, with nothing wrapped around the commands: hyperfine, no shell. Each contender
  -- keeps writing one env file (aap replaces its keys; the script appends, as the lesson does).
  local hf = {}
  for _, c in ipairs(contenders) do
    hf[#hf + 1] = { name = c.name, cmd = lib.cmdline(c.argv(("%s/%s-timed.env"):format(dir, c.name))) }
  end
  local timed = lib.hyperfine(hf, envf, ctx.quick and 5 or 50, 3)
  for _, c in ipairs(contenders) do res.by[c.name].wall = timed[c.name].times end
  -- What one process start costs on this machine, for the explanation.
  local starts = lib.hyperfine({
    { name = "curl", cmd = "curl --version" },
    { name = "jq", cmd = "jq -n 1" },
    { name = "aap", cmd = "lua5.4 " .. lib.shquote(lib.AAP) .. " --version" },
  }, envf, ctx.quick and 5 or 20, 2)
  res.process_start = { curl = starts.curl.mean, jq = starts.jq.mean, aap = starts.aap.mean }
  sim:stop()
  return res
end

---------------------------------------------------------------------------------------------
-- 3. Listing 10,000 tokens with 20 ms of emulated latency, sequential vs concurrent pages.
---------------------------------------------------------------------------------------------
function M.listing(ctx)
  local sim = ctx.sim
  sim:reset()
  local total = ctx.quick and 2000 or 10000
  lib.control(sim, "POST", "/__sim/tokens", { count = total })
  local st, first = sim:json("GET", "/api/gateway/v1/tokens/?page_size=1", { basic = { "admin", ctx.password } })
  check(st == 200 and first.count >= total, "seeding %d tokens failed", total)
  local envf = lib.envfile(ctx.tmp .. "/list.env", client_env(ctx))
  local settings = { "1", "default", "4", "8" }
  local latency = 20
  local res = { count = first.count, latency_ms = latency, settings = {}, runs = ctx.quick and 1 or 3 }
  local function run(conc)
    local out = ctx.tmp .. "/list.out"
    local scpu0 = proc_cpu(sim.pid)
    local cpu = lib.cpu_seconds({ "lua5.4", ctx.root .. "/bench/tokens.lua", "list", sim.url, conc }, envf,
      { stdout = out, stderr = ctx.tmp .. "/list.err" })
    local scpu1 = proc_cpu(sim.pid)
    local r = json.decode(lib.readfile(out) or "")
    check(r, "listing with concurrency %s failed: %s", conc, lib.readfile(ctx.tmp .. "/list.err") or "")
    check(r.count == first.count, "listed %d tokens of %d", r.count, first.count)
    r.server_cpu = scpu1 - scpu0
    r.client_cpu = cpu
    return r
  end
  for _, lat in ipairs({ 0, latency }) do
    lib.control(sim, "POST", "/__sim/config", { latency_ms = lat })
    local by = {}
    for _ = 1, res.runs do
      for _, c in ipairs(settings) do
        lib.say("  listing: latency %d ms, concurrency %s", lat, c)
        by[c] = by[c] or {}
        table.insert(by[c], run(c))
      end
    end
    for _, c in ipairs(settings) do
      local secs, scpu, ccpu = {}, {}, {}
      for i, r in ipairs(by[c]) do secs[i] = r.seconds; scpu[i] = r.server_cpu; ccpu[i] = r.client_cpu end
      local s = res.settings[c] or { name = c }
      res.settings[c] = s
      s["seconds_" .. lat] = lib.median(secs)
      s["server_cpu_" .. lat] = lib.median(scpu)
      s["client_cpu_" .. lat] = lib.median(ccpu)
      s.requests = by[c][1].requests
      s.connects = by[c][1].connects
    end
  end
  lib.control(sim, "POST", "/__sim/config", { latency_ms = 0 })
  res.order = settings

  -- The same list from nginx (pages recorded from the emulator, each answered after 20 ms by a
  -- timer): a server whose own cost is next to nothing, so what remains is the client's.
  local pages, path = {}, "/api/gateway/v1/tokens/"
  while path do
    local pst, body = sim:raw("GET", path, { basic = { "admin", ctx.password } })
    local page = json.decode(body or "")
    check(pst == 200 and page, "recording page %d: HTTP %s", #pages + 1, pst)
    pages[#pages + 1] = body
    path = page.next ~= json.null and page.next or nil
    check(#pages <= 100000, "the list does not end")
  end
  local nginx = lib.start_nginx({}, { path = "/api/gateway/v1/tokens/", pages = pages, delay_ms = latency })
  local by = {}
  for _ = 1, res.runs do
    for _, c in ipairs(settings) do
      lib.say("  listing from nginx: latency %d ms, concurrency %s", latency, c)
      local out = ctx.tmp .. "/list.out"
      local cpu = lib.cpu_seconds({ "lua5.4", ctx.root .. "/bench/tokens.lua", "list", nginx.url, c }, envf,
        { stdout = out, stderr = ctx.tmp .. "/list.err" })
      local r = json.decode(lib.readfile(out) or "")
      check(r, "listing from nginx failed: %s", lib.readfile(ctx.tmp .. "/list.err") or "")
      r.client_cpu = cpu
      check(r.count == first.count, "listed %d tokens of %d from nginx", r.count, first.count)
      by[c] = by[c] or {}
      table.insert(by[c], r)
    end
  end
  for _, c in ipairs(settings) do
    local secs, ccpu = {}, {}
    for i, r in ipairs(by[c]) do secs[i] = r.seconds; ccpu[i] = r.client_cpu end
    res.settings[c].nginx_seconds = lib.median(secs)
    res.settings[c].nginx_client_cpu = lib.median(ccpu)
    res.settings[c].nginx_requests = by[c][1].requests
  end
  nginx.stop()
  return res
end

---------------------------------------------------------------------------------------------
-- 4. Cold start and peak memory of the aap command; memory of s:each_token at 1k/5k/10k.
---------------------------------------------------------------------------------------------
function M.startup(ctx)
  local sim = ctx.sim
  sim:reset()
  lib.control(sim, "POST", "/__sim/tokens", { count = 20 })
  local envf = lib.envfile(ctx.tmp .. "/start.env", client_env(ctx, {
    AAP_HOSTNAME = sim.url, AAP_USERNAME = "admin", AAP_PASSWORD = ctx.password }))
  local aapq = lib.shquote(lib.AAP)
  local cmds = {
    { name = "lua", label = "lua5.4 -e '' (the interpreter alone)", argv = { "lua5.4", "-e", "" },
      cmd = "lua5.4 -e ''" },
    { name = "curl", label = "curl --version (the same libcurl, for reference)", argv = { "curl", "--version" },
      cmd = "curl --version" },
    { name = "require", label = "lua5.4 -e 'require\"aap\"' (C core, libcurl, OpenSSL)",
      argv = { "lua5.4", "-e", "require'aap'" }, cmd = "lua5.4 -e \"require'aap'\"" },
    { name = "version", label = "aap --version", argv = { "lua5.4", lib.AAP, "--version" },
      cmd = "lua5.4 " .. aapq .. " --version" },
    { name = "list", label = "aap token list (emulator, plain HTTP, 1 page)",
      argv = { "lua5.4", lib.AAP, "token", "list" }, cmd = "lua5.4 " .. aapq .. " token list" },
  }
  local hf = lib.hyperfine(cmds, envf, ctx.quick and 5 or 30, 3)
  local res = { commands = {}, iterate = {} }
  for _, c in ipairs(cmds) do
    local rss = {}
    for i = 1, 5 do
      local r = lib.rusage(c.argv, envf)
      check(r.ok, "%s failed", c.label)
      rss[i] = r.maxrss_kib
    end
    res.commands[#res.commands + 1] = { name = c.name, label = c.label, mean = hf[c.name].mean,
      stddev = hf[c.name].stddev, maxrss_kib = lib.median(rss) }
  end
  -- Where the resident memory of a process that has loaded aap and listed tokens is.
  local out = ctx.tmp .. "/smaps.out"
  local ok = os.execute(lib.command({ "lua5.4", ctx.root .. "/bench/tokens.lua", "smaps", sim.url }, envf,
    { stdout = out, stderr = ctx.tmp .. "/smaps.err" }))
  res.smaps = json.decode(lib.readfile(out) or "")
  check(ok and res.smaps, "smaps failed: %s", lib.readfile(ctx.tmp .. "/smaps.err") or "")
  -- Memory of iterating N tokens (the emulator reset and seeded with N for each size).
  local sizes = ctx.quick and { 500, 1000, 2000 } or { 1000, 5000, 10000 }
  for _, n in ipairs(sizes) do
    sim:reset()
    lib.control(sim, "POST", "/__sim/tokens", { count = n })
    local row = { n = n }
    for _, mode in ipairs({ "each", "all" }) do
      local scpu0 = proc_cpu(sim.pid)
      local r = lib.rusage({ "lua5.4", ctx.root .. "/bench/tokens.lua", mode, sim.url }, envf,
        { stdout = out, stderr = ctx.tmp .. "/iter.err" })
      local d = json.decode(lib.readfile(out) or "")
      check(r.ok and d, "iterating (%s) failed: %s", mode, lib.readfile(ctx.tmp .. "/iter.err") or "")
      check(d.count >= n, "%s saw %d tokens of %d", mode, d.count, n)
      row[mode] = { maxrss_kib = r.maxrss_kib, heap_peak_kib = d.heap_peak_kib, heap_start_kib = d.heap_start_kib,
                    count = d.count, requests = d.requests, server_cpu = proc_cpu(sim.pid) - scpu0 }
    end
    res.iterate[#res.iterate + 1] = row
  end
  -- For comparison: the Lua heap a set of that many integer ids takes (measured here, in-process).
  collectgarbage("collect")
  local before = collectgarbage("count")
  local set = {}
  for id = 1, sizes[#sizes] do set[id * 7 + 1000] = true end
  collectgarbage("collect")
  res.id_set_kib = collectgarbage("count") - before
  res.id_set_size = next(set) and sizes[#sizes] -- keeps the set alive until it is measured
  sim:reset()
  return res
end


---------------------------------------------------------------------------------------------
-- 5. The whole lesson on a remote gateway: the PAT and the application token, through a proxy
-- that puts the emulator 0, 20 and 80 ms of round trip away (bench/delayproxy.c).
---------------------------------------------------------------------------------------------

--- The values of an env file's KEY= lines: { KEY = {value, ...} } (every line kept, in order).
local function env_values(text)
  local t = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local k, v = line:match("^%s*export%s+([%w_]+)=(.*)$")
    if not k then k, v = line:match("^%s*([%w_]+)=(.*)$") end
    if k then
      v = v:match("^'(.*)'$") or v:match('^"(.*)"$') or v
      t[k] = t[k] or {}
      table.insert(t[k], v)
    end
  end
  return t
end
M.env_values = env_values

--- What the proxy adds beyond the model: rawcurl (one connection, N GETs of plain HTTP) against
-- nginx directly and through the proxy; the model adds (N + 1) × RTT (the TCP handshake, then
-- N round trips). Returns { [rtt] = {n =, direct =, proxied =, excess_per_rt =} }.
local function calibrate(ctx, bin, envf, rtts)
  local body = '{"ok": true}'
  local nginx = lib.start_nginx({ ["/api/gateway/v1/me/"] = body })
  local raw = ctx.build .. "/bench/rawcurl"
  local res = {}
  local function run(url, n)
    local out = ctx.tmp .. "/cal.out"
    local wall, ok = lib.timed(lib.command({ raw, tostring(n), url .. "/api/gateway/v1/me/" }, envf,
      { stdout = out, stderr = ctx.tmp .. "/cal.err" }))
    check(ok and tonumber(lib.readfile(out)) == n * #body, "rawcurl through the proxy failed: %s",
      lib.readfile(ctx.tmp .. "/cal.err") or "")
    return wall
  end
  for _, rtt in ipairs(rtts) do
    local n = rtt == 0 and (ctx.quick and 200 or 500) or math.max(4, math.floor(400 / rtt))
    local px = lib.start_proxy(bin, nginx.port, rtt, { deadline = 120 })
    local direct, proxied = {}, {}
    for _ = 1, ctx.quick and 3 or 5 do
      table.insert(direct, run(nginx.url, n))
      table.insert(proxied, run(px.url(), n))
    end
    px.stop() -- its stats are final once it has stopped
    local st = px.stats()
    check(st.accepted == #proxied, "the proxy counted %s connections for %d rawcurl runs", tostring(st.accepted),
      #proxied)
    local d, p = lib.median(direct), lib.median(proxied)
    res[tostring(rtt)] = { rtt_ms = rtt, n = n, direct = d, proxied = p,
                           excess_per_rt = (p - d - (n + 1) * rtt / 1000) / (n + 1),
                           late_avg = st.late_ns_sum / st.chunks / 1e9, late_max = st.late_ns_max / 1e9 }
  end
  nginx.stop()
  return res
end

function M.remote(ctx)
  local bin = ctx.build .. "/bench/delayproxy"
  check(os.execute("test -x " .. lib.shquote(bin)), "%s missing: run through bench/run.sh", bin)
  local certs = lib.spec_helper().make_certs(lib.tmpdir("certs"))
  local sim = lib.start_sim({ "--tls-cert", certs.cert, "--tls-key", certs.key })
  check(sim.url:match("^https://"), "the emulator did not start with TLS: %s", sim.url)
  check(sim.seed.application.name == "RHDH Integration", "the emulator seeds no \"RHDH Integration\" application")
  local sim_port = tonumber(sim.url:match(":(%d+)/?$"))
  -- The TLS version decides what a handshake costs (TLS 1.3: one round trip, 1.2: two).
  local tls = lib.capture(("curl -sv -o /dev/null --cacert %s %s/api/gateway/v1/ping/ 2>&1"):format(
    lib.shquote(certs.ca), sim.url)):match("SSL connection using (TLSv[%d.]+)")
  check(tls, "cannot tell the emulator's TLS version")
  local rtts = { 0, 20, 80 }
  local reps = ctx.quick and { [0] = 5, [20] = 3, [80] = 3 } or { [0] = 31, [20] = 21, [80] = 15 }
  local res = { rtts = rtts, by_rtt = {}, tls = tls }
  local cal_env = lib.envfile(ctx.tmp .. "/cal.env", client_env(ctx))
  res.calibration = calibrate(ctx, bin, cal_env, rtts)
  -- What one process start costs here (hyperfine -N, no shell; median).
  local starts = lib.hyperfine({
    { name = "curl", cmd = "curl --version" },
    { name = "jq", cmd = "jq -n 1" },
    -- aap --version loads no C core; token create does (libcurl, OpenSSL): this is that start.
    { name = "aap", cmd = "lua5.4 -e \"require'aap'\"" },
  }, cal_env, ctx.quick and 10 or 30, 2)
  res.process_start = { aap = starts.aap.median, curl = starts.curl.median, jq = starts.jq.median }

  -- aap: the whole job in one run (token create --pat --application); aap2: the same in two
  -- commands (a PAT, then the application token), each opening its own connection.
  local one_cmd = 'lua5.4 "$0" token create --pat --application "RHDH Integration" --env-file "$1"'
  local two_cmd = 'lua5.4 "$0" token create --env-file "$1" && ' ..
    'lua5.4 "$0" token create --application "RHDH Integration" --env-file "$1"'
  local contenders = {
    { name = "aap", label = "aap token create --pat --application",
      argv = function(path) return { "bash", "-c", one_cmd, lib.AAP, path } end },
    { name = "aap2", label = "aap: token create; token create --application",
      argv = function(path) return { "bash", "-c", two_cmd, lib.AAP, path } end },
    { name = "lesson", label = "lesson.sh --with-pat (curl + jq)",
      argv = function(path) return { "bash", ctx.root .. "/bench/lesson.sh", "--with-pat", path } end },
  }
  res.labels = {}
  for _, c in ipairs(contenders) do res.labels[c.name] = c.label end
  local function shown(cmd) return (cmd:gsub('lua5.4 "%$0"', "bin/aap"):gsub('"%$1"', "F")) end
  res.commands = { aap = shown(one_cmd), aap2 = shown(two_cmd), lesson = "bash bench/lesson.sh --with-pat F" }
  local dir = lib.tmpdir("remote")
  local seen, seq = {}, 0
  local keys = { "AAP_PAT", "AAP_TOKEN", "REFRESH_TOKEN" }
  local errf = ctx.tmp .. "/remote.err"
  for ri, rtt in ipairs(rtts) do
    local px = lib.start_proxy(bin, sim_port, rtt, { deadline = 600 })
    local envf = lib.envfile(ctx.tmp .. "/remote.env", client_env(ctx, {
      AAP_URL = px.url("https"), AAP_HOSTNAME = px.url("https"), AAP_USERNAME = "admin",
      AAP_PASSWORD = ctx.password, AAP_CA_FILE = certs.ca }))
    local r = { rtt_ms = rtt, runs = reps[rtt], by = {} }
    res.by_rtt[tostring(rtt)] = r
    for _, c in ipairs(contenders) do
      r.by[c.name] = { wall = {}, requests = {}, conns = {}, log_conns = {} }
    end
    -- What starting a command through the harness costs (env -i, sh, the env file), for reference.
    local launch = {}
    for i = 1, 5 do launch[i] = lib.timed(lib.command({ "true" }, envf)) end
    r.launch = lib.median(launch)
    -- Run 0 (at the first RTT only) warms caches and is not kept. Contenders alternate who goes first.
    for i = (ri == 1 and 0 or 1), reps[rtt] do
      lib.say("  remote: %d ms round trip, run %d of %d", rtt, i, reps[rtt])
      local order = {}
      for k = 1, #contenders do order[k] = contenders[(i + k - 1) % #contenders + 1] end
      for _, c in ipairs(order) do
        seq = seq + 1
        local path = ("%s/%s-%d.env"):format(dir, c.name, seq)
        sim:clear_log()
        local a0 = px.accepted()
        local wall, ok = lib.timed(lib.command(c.argv(path), envf, { stderr = errf }))
        local tcp = px.accepted() - a0
        check(ok, "%s failed at %d ms: %s", c.name, rtt, lib.readfile(errf) or "")
        -- Both must have done the whole job, this run: each key written once, a fresh value.
        local vals = env_values(lib.readfile(path))
        for _, k in ipairs(keys) do
          local v = vals[k]
          check(v and #v == 1, "%s wrote %s %d times at %d ms (run %d): %s", c.name, k, v and #v or 0, rtt, i,
            lib.readfile(errf) or "")
          check(v[1]:match("^[%w_%-%.]+$") and v[1] ~= "null", "%s wrote no usable %s at %d ms: %q", c.name, k, rtt,
            v[1])
          check(not seen[v[1]], "%s wrote a %s that an earlier run (or another key) holds", c.name, k)
          seen[v[1]] = true
        end
        local conns, reqs, entries = lib.log_connections(sim)
        check(tcp >= conns, "the proxy counted %d connections, the emulator's log %d", tcp, conns)
        for _, e in ipairs(entries) do
          check(e.status >= 200 and e.status < 300, "%s: %s %s answered %s", c.name, e.method, e.path,
            tostring(e.status))
        end
        -- The two access tokens work (asked of the emulator directly, once its log is read).
        check(sim:token_works(vals.AAP_PAT[1]) and sim:token_works(vals.AAP_TOKEN[1]),
          "the tokens %s wrote at %d ms (run %d) do not work", c.name, rtt, i)
        if i > 0 then
          local b = r.by[c.name]
          table.insert(b.wall, wall)
          table.insert(b.requests, reqs)
          table.insert(b.conns, tcp)
          table.insert(b.log_conns, conns)
          b.trace = trace(entries)
        end
      end
    end
    px.stop()
    r.proxy = px.stats()
  end
  sim:stop()
  return res
end

return M
