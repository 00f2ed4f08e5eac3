--- Self-tests of the benchmark harness (not of aap's speed: no timing thresholds here).
-- Run from the checkout: busted --lua=lua5.4 bench/harness_spec.lua
-- Needs what bench/run.sh installs (nginx, gnuplot-nox, valgrind) and builds (rawcurl).
-- luacheck: std +busted
package.path = "./?.lua;" .. package.path
local lib = require("bench.lib")
local report = require("bench.report")

local BUILD = lib.ROOT .. "/build"

local function rawcurl()
  local bin = BUILD .. "/bench/rawcurl"
  local ok = os.execute(("mkdir -p %s && cc -std=c99 -O2 -o %s %s $(pkg-config --cflags --libs libcurl)")
    :format(lib.shquote(BUILD .. "/bench"), lib.shquote(bin), lib.shquote(lib.ROOT .. "/bench/rawcurl.c")))
  assert(ok, "cannot build rawcurl")
  return bin
end

describe("bench harness", function()
  local tmp
  before_each(function() tmp = lib.tmpdir("spec") end)
  after_each(function() lib.cleanup() end)

  describe("rawcurl (the libcurl floor)", function()
    local bin, nginx, envf
    before_each(function()
      bin = rawcurl()
      nginx = lib.start_nginx({ ["/api/gateway/v1/me/"] = '{"results": [1]}' })
      envf = lib.envfile(tmp .. "/env", { BENCH_PASSWORD = "pw" })
    end)

    it("makes N requests on one connection and reports the bytes", function()
      local out = tmp .. "/out"
      assert.is_true(os.execute(lib.command({ bin, "3", nginx.url .. "/api/gateway/v1/me/" }, envf,
        { stdout = out })))
      assert.equal(3 * #'{"results": [1]}', tonumber(lib.readfile(out)))
      assert.equal(3, nginx.requests(3))
    end)

    it("fails on a status other than 200", function()
      assert.is_falsy(os.execute(lib.command({ bin, "1", nginx.url .. "/nope/" }, envf)))
    end)

    it("fails when nothing listens", function()
      local port = lib.free_port()
      assert.is_falsy(os.execute(lib.command({ bin, "1", "http://127.0.0.1:" .. port .. "/" }, envf)))
    end)

    it("refuses to run without BENCH_PASSWORD or with a bad count", function()
      local noenv = lib.envfile(tmp .. "/noenv", {})
      assert.is_falsy(os.execute(lib.command({ bin, "1", nginx.url .. "/api/gateway/v1/me/" }, noenv)))
      assert.is_falsy(os.execute(lib.command({ bin, "0", nginx.url .. "/api/gateway/v1/me/" }, envf)))
    end)
  end)

  describe("delayproxy (the remote gateway's link)", function()
    local socket = require("socket")
    -- A sequential echo server (one connection after another, each echoed until its EOF, then
    -- closed), bounded by a connection count and a 20 s deadline.
    local ECHO = [[
local socket = require("socket")
local srv = assert(socket.bind("127.0.0.1", 0))
io.stdout:write(select(2, srv:getsockname()), "\n")
io.stdout:flush()
local deadline = socket.gettime() + 20
srv:settimeout(20)
for _ = 1, tonumber(arg[1]) do
  local c = srv:accept()
  if not c then break end
  c:settimeout(0)
  while socket.gettime() < deadline do
    socket.select({ c }, nil, 1)
    local data, err, partial = c:receive(65536)
    local got = data or partial
    if got and #got > 0 then c:settimeout(5); c:send(got); c:settimeout(0) end
    if err == "closed" then break end
  end
  c:close()
end
]]
    local bin, echo_h, echo_port
    local function start_echo(n)
      local script = tmp .. "/echo.lua"
      lib.writefile(script, ECHO)
      echo_h = assert(io.popen("exec lua5.4 " .. lib.shquote(script) .. " " .. n, "r"))
      echo_port = tonumber(echo_h:read("l"))
      assert(echo_port, "the echo server did not start")
    end
    before_each(function() bin = lib.build_delayproxy(BUILD) end)
    after_each(function()
      lib.cleanup()
      if echo_h then echo_h:close() end -- the echo server ends after its connections
      echo_h = nil
    end)

    local function connect(port)
      local c = assert(socket.tcp())
      c:settimeout(5)
      assert(c:connect("127.0.0.1", port))
      return c
    end

    -- Sends `data` in 4 KiB pieces while reading what comes back, then EOF; returns all it read.
    local function echo_through(port, data)
      local c = connect(port)
      local got = {}
      local function drain(wait)
        c:settimeout(wait)
        local d, err, partial = c:receive(65536)
        local s = d or partial
        if s and #s > 0 then got[#got + 1] = s end
        return err
      end
      for i = 1, #data, 4096 do
        c:settimeout(5)
        assert(c:send(data:sub(i, i + 4095)))
        drain(0)
      end
      c:shutdown("send")
      repeat local err = drain(5) until err == "closed"
      c:close()
      return table.concat(got)
    end

    it("forwards bytes intact and in order both ways, and counts the connections", function()
      start_echo(3)
      local px = lib.start_proxy(bin, echo_port, 0, { deadline = 30 })
      local data = {}
      for i = 1, 200000 do data[i] = string.char((i * 7 + i // 256) % 256) end
      data = table.concat(data)
      for _ = 1, 3 do assert.equal(data, echo_through(px.port, data)) end
      local st
      for _ = 1, 100 do -- the closes travel after the data; wait for the counts to settle
        st = px.stats()
        if st.active == 0 then break end
        socket.select(nil, nil, 0.02)
      end
      assert.equal(3, st.accepted)
      assert.equal(0, st.active)
      assert.equal(3 * #data, st.bytes_up)
      assert.equal(3 * #data, st.bytes_down)
    end)

    it("adds a round trip for the connection and one per exchange", function()
      start_echo(1)
      local px = lib.start_proxy(bin, echo_port, 200, { deadline = 30 })
      local t0 = socket.gettime()
      local c = connect(px.port)
      assert(c:send("ping\n"))
      assert.equal("ping", c:receive("*l"))
      local t1 = socket.gettime()
      assert(c:send("pong\n"))
      assert.equal("pong", c:receive("*l"))
      local t2 = socket.gettime()
      c:close()
      -- Delays only ever add: a slow machine can only make these longer.
      assert.is_true(t1 - t0 >= 0.39, ("connect + first exchange took %.3f s"):format(t1 - t0))
      assert.is_true(t2 - t1 >= 0.19, ("second exchange took %.3f s"):format(t2 - t1))
      assert.equal(1, px.accepted())
    end)

    it("serves at most --max-conns at once: the next waits until one closes", function()
      start_echo(2)
      local px = lib.start_proxy(bin, echo_port, 0, { deadline = 30, max_conns = 1 })
      local a = connect(px.port)
      assert(a:send("a\n"))
      assert.equal("a", a:receive("*l"))
      local b = connect(px.port) -- the kernel's backlog takes it; the proxy does not serve it yet
      assert(b:send("b\n"))
      b:settimeout(0.3)
      local line, err = b:receive("*l")
      assert.is_nil(line)
      assert.equal("timeout", err)
      assert.equal(1, px.accepted())
      a:close()
      b:settimeout(5)
      assert.equal("b", b:receive("*l"))
      b:close()
      assert.equal(2, px.accepted())
    end)

    it("stops at its deadline, and when told", function()
      start_echo(0)
      local px = lib.start_proxy(bin, echo_port, 0, { deadline = 0.3 })
      -- Gone, or a zombie (exited; its parent, this process, reaps it in px.stop).
      local function alive(pid)
        local st = lib.readfile("/proc/" .. pid .. "/stat")
        return st ~= nil and not st:match("^%d+ %b() Z")
      end
      local gone = false
      for _ = 1, 250 do
        if not alive(px.pid) then gone = true break end
        socket.select(nil, nil, 0.02)
      end
      assert.is_true(gone, "delayproxy still runs after its deadline")
      px.stop()
      local px2 = lib.start_proxy(bin, echo_port, 0, { deadline = 30 })
      assert.is_true(alive(px2.pid))
      px2.stop()
      assert.is_false(alive(px2.pid))
    end)

    it("refuses bad arguments", function()
      for _, args in ipairs({ "", "--rtt-ms 1", "--target 127.0.0.1:1", "--target nohost --rtt-ms 1",
                              "--target 127.0.0.1:1 --rtt-ms -1", "--target 127.0.0.1:1 --rtt-ms 1 --max-conns 0" }) do
        assert.is_falsy(os.execute(lib.shquote(bin) .. " " .. args .. " >/dev/null 2>&1"), args)
      end
    end)
  end)

  describe("nginx with canned pages", function()
    it("answers ?page=N with page N (page 1 without it), and 404 past the end", function()
      local http = require("socket.http")
      local nginx = lib.start_nginx({}, { path = "/list/", pages = { '{"p":1}', '{"p":2}' }, delay_ms = 30 })
      local body, st = http.request(nginx.url .. "/list/?page=2&page_size=50")
      assert.equal(200, st)
      assert.equal('{"p":2}', body)
      body, st = http.request(nginx.url .. "/list/")
      assert.equal('{"p":1}', body)
      assert.equal(200, st)
      body, st = http.request(nginx.url .. "/list/?page=3")
      assert.is_nil(body:find('"p"', 1, true))
      assert.equal(404, st)
    end)
  end)

  describe("child processes", function()
    it("get secrets through the env file, never in the command line", function()
      local secret = "s3cret-" .. os.time()
      local envf = lib.envfile(tmp .. "/env", { BENCH_PASSWORD = secret })
      assert.equal("600", lib.capture("stat -c %a " .. lib.shquote(envf)))
      local out = tmp .. "/out"
      local cmd = lib.command({ "sh", "-c", 'printf %s "$BENCH_PASSWORD"' }, envf, { stdout = out })
      assert.is_nil(cmd:find(secret, 1, true))
      assert.is_true(os.execute(cmd))
      assert.equal(secret, lib.readfile(out))
    end)

    it("report a failing command under callgrind as an error", function()
      assert.has_error(function()
        lib.callgrind({ "lua5.4", "-e", "os.exit(3)" }, nil, tmp .. "/cg.out")
      end)
    end)

    it("count instructions by shared object, adding up to the total", function()
      local total, prof = lib.callgrind({ "lua5.4", "-e", "local x = 0 for i = 1, 1e5 do x = x + i end" }, nil,
        tmp .. "/cg.out")
      local by = lib.ir_by_object(prof)
      assert.is_true(by["lua5.4"] > 0)
      local sum = 0
      for _, v in pairs(by) do sum = sum + v end
      assert.is_true(sum <= total and sum > 0.95 * total, ("%d of %d"):format(sum, total))
    end)
  end)

  describe("the report", function()
    -- Synthetic results: `good` meets every target, otherwise every target is missed.
    local function results(good)
      local kind = function(name, floor)
        local aap = good and floor * 1.1 or floor * 3
        return { name = name, label = name, n = 10, ncpu = 100, by = {
          rawcurl = { ir_per_call = floor, ir_startup = 1e7, cpu_us_per_call = 50, objects = { curl = floor },
                      startup_objects = { curl = 1e7 } },
          aap = { ir_per_call = aap, ir_startup = 2e7, cpu_us_per_call = good and 70 or 200,
                  objects = { curl = floor, lua5_4 = aap - floor },
                  startup_objects = { curl = 1e7, lua = 1e7 },
                  stages = { { fn = "aap_http_run", label = "transfer", ir_per_call = floor },
                             { fn = "aap_json_decode", label = "decode", ir_per_call = aap - floor } } },
          luasocket = { ir_per_call = floor * 3, ir_startup = 5e6, cpu_us_per_call = 150, objects = {} },
          cjson = { ir_per_call = floor * 0.1, ir_startup = 1e6, cpu_us_per_call = 5, objects = {} },
        } }
      end
      local lesson_b = function(label, wall)
        return { label = label, wall = { wall, wall * 1.1, wall * 0.9 }, cpu = { wall / 2 }, server_cpu = { 0.005 },
                 conns = { 2 }, requests = { 3 }, trace = { "connection 1: GET /x/ → 200 (basic)" } }
      end
      local settings = {}
      for _, c in ipairs({ "1", "default", "4", "8" }) do
        local conc = c == "default" and 4 or tonumber(c)
        local limit = 200 / conc * 0.02
        settings[c] = { name = c, requests = 200, connects = conc, seconds_20 = limit * (good and 1.2 or 2),
                        seconds_0 = 1, server_cpu_20 = 1, server_cpu_0 = 1, client_cpu_20 = 0.2,
                        client_cpu_0 = 0.2 }
      end
      local row = function(n)
        local e = { maxrss_kib = 11000, heap_peak_kib = 500 + n / 100, count = n, requests = n / 50,
                    server_cpu = n / 1e4 }
        local a = { maxrss_kib = 11000 + n, heap_peak_kib = 500 + n, count = n }
        return { n = n, each = e, all = a }
      end
      -- The whole lesson through the proxy: aap 2 connections and 5 requests, the script 3 and 3
      -- (9 round trips each over TLS 1.3); walls in seconds at 0, 20 and 80 ms.
      local remote_walls = good and { { 0.02, 0.1 }, { 0.2, 0.45 }, { 0.79, 1.0 } }
        or { { 0.05, 0.1 }, { 0.3, 0.4 }, { 1.0, 1.1 } }
      local by_rtt = {}
      for i, rtt in ipairs({ 0, 20, 80 }) do
        local w = remote_walls[i]
        by_rtt[tostring(rtt)] = { rtt_ms = rtt, runs = 3, launch = 0.003, by = {
          aap = { wall = { w[1], w[1] * 1.1, w[1] * 0.9 }, requests = { 5, 5, 5 }, conns = { 2, 2, 2 },
                  trace = { "connection 1: POST /api/gateway/v1/tokens/ → 201 (basic)" } },
          lesson = { wall = { w[2], w[2] * 1.1, w[2] * 0.9 }, requests = { 3, 3, 3 }, conns = { 3, 3, 3 },
                     trace = { "connection 2: POST /api/gateway/v1/tokens/ → 201 (basic)" } } } }
      end
      local calibration = {}
      for _, rtt in ipairs({ 0, 20, 80 }) do
        calibration[tostring(rtt)] = { n = 20, direct = 0.01, proxied = 0.01 + 21 * rtt / 1000, excess_per_rt = 1e-5,
                                       late_avg = 1e-6, late_max = 1e-5 }
      end
      return {
        seconds = 100, quick = false,
        remote = { tls = "TLSv1.3", rtts = { 0, 20, 80 }, by_rtt = by_rtt, calibration = calibration,
                   labels = { aap = "aap", lesson = "script" }, commands = { aap = "aap x", lesson = "lesson.sh" },
                   process_start = { aap = 0.015, curl = 0.008, jq = 0.02 } },
        machine = { date = "2026-01-01 00:00 UTC", kernel = "Linux", os = "Debian 12", cpu = "CPU", cores = 2,
          mem_gib = 24, load = "0 0 0", commit = "abc1234", dirty = false, versions = { aap = "0.1.0",
          lua = "Lua 5.4.4", libcurl = "libcurl/7.88.1", curl = "curl 7.88.1", openssl = "OpenSSL 3",
          nginx = "nginx/1",
          jq = "jq-1.6", luasocket = "LuaSocket 3.0.0", valgrind = "valgrind-3", hyperfine = "hyperfine 1.15.0",
          gnuplot = "gnuplot 5.4" } },
        client = { tokens_per_page = 50, kinds = { kind("me", 1e5), kind("page", 1.5e5) },
                   clients = { { name = "rawcurl", label = "C" }, { name = "aap", label = "aap" },
                               { name = "luasocket", label = "LuaSocket" }, { name = "cjson", label = "cjson" } } },
        lesson = { runs = 3, process_start = { curl = 0.008, jq = 0.02, aap = 0.015 },
                   by = { aap = lesson_b("aap", good and 0.025 or 0.05), lesson = lesson_b("script", 0.1) } },
        listing = { count = 10000, latency_ms = 20, runs = 3, order = { "1", "default", "4", "8" },
                    settings = settings },
        startup = { id_set_kib = 384,
          commands = { { name = "lua", label = "lua", mean = 0.001, stddev = 0, maxrss_kib = 2000 },
                       { name = "curl", label = "curl", mean = 0.009, stddev = 0, maxrss_kib = 11000 },
                       { name = "require", label = "require", mean = 0.009, stddev = 0, maxrss_kib = 10000 },
                       { name = "version", label = "version", mean = 0.015, stddev = 0, maxrss_kib = 11000 },
                       { name = "list", label = "list", mean = 0.018, stddev = 0,
                         maxrss_kib = good and 9000 or 12000 } },
          iterate = { row(1000), row(5000), row(10000) },
          smaps = { rollup = { Rss = 11000, Pss = 2400, Private_Clean = 100, Private_Dirty = 1500, Anonymous = 1500 },
                    mappings = { ["libcrypto.so"] = { rss = 3000, private = 400 },
                                 ["[heap]"] = { rss = 400, private = 400 } } } },
      }
    end

    local function rows(md, pattern)
      local n = 0
      for line in md:gmatch("[^\n]+") do
        if line:match("^| ") and line:find(pattern) then n = n + 1 end
      end
      return n
    end

    it("marks every target met, with no explanation of a miss, and draws the chart", function()
      local md_path, png = report.write(results(true), tmp, tmp)
      local md = lib.readfile(md_path)
      assert.equal(0, rows(md, "| missed |"))
      assert.equal(12, rows(md, "| met |"))
      assert.is_nil(md:find("Why", 1, true))
      assert.is_nil(md:find("nan", 1, true))
      assert.equal("\137PNG", lib.readfile(png):sub(1, 4))
    end)

    it("marks every target missed and explains each from the figures", function()
      local md = lib.readfile((report.write(results(false), tmp, tmp)))
      assert.equal(12, rows(md, "| missed |"))
      assert.equal(0, rows(md, "| met |"))
      -- The whole lesson: 9 round trips each; at 20 ms aap's floor is 180 ms, the script's 400 ms
      -- leaves aap 20 ms beyond it for 2×; at 80 ms aap's 1000 ms is 1.39× its 720 ms floor.
      assert.truthy(md:find("aap's floor is 180.0 ms (2 connections × 2 + 5 requests = 9 round trips)", 1, true))
      assert.truthy(md:find("To be 2.00× faster aap may spend 20.0 ms beyond its floor; it spent 120.0 ms", 1, true))
      assert.truthy(md:find("aap within 1.30× of its floor — missed** (measured: 1.39×", 1, true))
      assert.truthy(md:find("at 0 ms there is no network to save", 1, true))
      assert.truthy(md:find("Why me misses", 1, true))
      assert.truthy(md:find("Why page misses", 1, true))
      assert.truthy(md:find("page decoded with no more CPU than LuaSocket + cjson — missed** (measured: 1.33× the CPU",
        1, true))
      assert.truthy(md:find("the script's 100.0 ms", 1, true))
      assert.truthy(md:find("Concurrency 8 (2.00× the limit)", 1, true))
      assert.truthy(md:find("of the listing process's 10.7 MiB RSS", 1, true))
      assert.is_nil(md:find("nan", 1, true))
      assert.is_nil(md:find("inf", 1, true))
    end)
  end)
end)
