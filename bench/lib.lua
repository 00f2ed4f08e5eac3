--- Helpers for the benchmark harness: processes, timing, instruction counts (callgrind),
-- peak memory (/usr/bin/time), and the loopback servers it starts itself (nginx with canned
-- gateway answers, and the emulator through spec/helper.lua).
-- Secrets never go on a command line: they reach child processes through 0600 env files
-- that a shell sources before it execs the program.
local socket = require("socket")
local cjson = require("cjson.safe").new()

local M = {}

--- The checkout: AAP_ROOT (set by bench/run.sh), else the parent of this file's directory.
local function checkout()
  local env = os.getenv("AAP_ROOT")
  if env and env ~= "" then return env end
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or "."
  local p = assert(io.popen("cd '" .. dir:gsub("'", "'\\''") .. "' && pwd"))
  local abs = p:read("l")
  p:close()
  return abs
end
local ROOT = checkout()
M.ROOT = ROOT
M.AAP = ROOT .. "/bin/aap"
M.json = cjson
M.now = socket.gettime

-- spec/helper.lua starts and drives the emulator, and has the small file and quoting helpers.
package.path = ROOT .. "/spec/?.lua;" .. package.path
local helper = require("helper")
function M.spec_helper() return helper end

local shquote = helper.shquote
M.shquote = shquote
M.readfile = helper.readfile
M.writefile = helper.writefile

--- Joins a list of arguments into a shell command line, each quoted.
function M.cmdline(argv)
  local q = {}
  for i, a in ipairs(argv) do q[i] = shquote(a) end
  return table.concat(q, " ")
end

--- Runs a shell command, returns its stdout (trailing newline removed) and whether it exited 0.
function M.capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok = p:close()
  return (out:gsub("\n$", "")), ok
end

local tmpdirs = {}
--- A fresh temporary directory, removed by M.cleanup().
function M.tmpdir(tag)
  local d = M.capture("mktemp -d /tmp/aap-bench-" .. (tag or "x") .. ".XXXXXX")
  tmpdirs[#tmpdirs + 1] = d
  return d
end

local cleanups = {}
--- Registers a function for M.cleanup() (servers to stop).
function M.on_cleanup(fn) cleanups[#cleanups + 1] = fn end

function M.cleanup()
  for i = #cleanups, 1, -1 do pcall(cleanups[i]) end
  cleanups = {}
  for _, d in ipairs(tmpdirs) do os.execute("rm -rf " .. shquote(d)) end
  tmpdirs = {}
end

--- Writes a 0600 file of `export K='v'` lines, for `. file; exec program` command lines.
function M.envfile(path, vars)
  local lines = {}
  local keys = {}
  for k in pairs(vars) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if vars[k] then lines[#lines + 1] = ("export %s=%s"):format(k, shquote(vars[k])) end
  end
  M.writefile(path, "", 384)
  M.writefile(path, table.concat(lines, "\n") .. "\n")
  return path
end

--- A command line that runs argv with a clean environment made of env file `envf` (plus PATH,
-- HOME and LANG), from directory `cwd` when given. `wrap` is a list to prefix (time, valgrind).
function M.command(argv, envf, opts)
  opts = opts or {}
  local wrap = opts.wrap and (M.cmdline(opts.wrap) .. " ") or ""
  local inner = ("%s%sexec %s%s"):format(
    envf and (". " .. shquote(envf) .. "; ") or "",
    opts.cwd and ("cd " .. shquote(opts.cwd) .. " && ") or "",
    wrap, M.cmdline(argv))
  local redir = (" <%s >%s 2>%s"):format(shquote(opts.stdin or "/dev/null"),
    shquote(opts.stdout or "/dev/null"), shquote(opts.stderr or "/dev/null"))
  local base = ("PATH=%s HOME=%s LANG=C.UTF-8"):format(shquote(os.getenv("PATH")),
    shquote(os.getenv("HOME") or "/tmp"))
  return ("env -i %s /bin/sh -c %s%s"):format(base, shquote(inner), redir)
end

--- Runs a command line; returns wall seconds and whether it exited 0.
function M.timed(cmd)
  local t0 = M.now()
  local ok = os.execute(cmd)
  return M.now() - t0, ok == true
end

--- Runs argv under /usr/bin/time: {wall =, user =, sys =, maxrss_kib =, ok =}.
function M.rusage(argv, envf, opts)
  opts = opts or {}
  local out = os.tmpname()
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.wrap = { "/usr/bin/time", "-f", "%e %U %S %M", "-o", out }
  for _, w in ipairs(opts.wrap or {}) do o.wrap[#o.wrap + 1] = w end
  local ok = os.execute(M.command(argv, envf, o))
  local line = M.readfile(out) or ""
  os.remove(out)
  local e, u, s, m = line:match("([%d.]+) ([%d.]+) ([%d.]+) (%d+)%s*$")
  return { wall = tonumber(e), user = tonumber(u), sys = tonumber(s), maxrss_kib = tonumber(m),
           ok = ok == true and e ~= nil }
end

--- Runs argv under `perf stat -e task-clock`; returns the CPU seconds of the process and its
-- children (user + system, nanosecond resolution).
function M.cpu_seconds(argv, envf, opts)
  local out = os.tmpname()
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.wrap = { "perf", "stat", "-x,", "-e", "task-clock", "-o", out, "--" }
  local ok = os.execute(M.command(argv, envf, o))
  local ms = tonumber((M.readfile(out) or ""):match("([%d.]+),msec,task%-clock"))
  os.remove(out)
  if not ok or not ms then error("perf stat failed: " .. table.concat(argv, " ")) end
  return ms / 1000
end

--- Runs argv under callgrind; returns the instruction count and the profile's path.
-- opts.toggle: count only inside this function (and what it calls), e.g. "aap_json_decode".
function M.callgrind(argv, envf, outfile, opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.wrap = { "valgrind", "--tool=callgrind", "--callgrind-out-file=" .. outfile }
  if opts.toggle then o.wrap[#o.wrap + 1] = "--toggle-collect=" .. opts.toggle end
  local ok = os.execute(M.command(argv, envf, o))
  local prof = M.readfile(outfile) or ""
  local total = tonumber(prof:match("\ntotals: (%d+)") or prof:match("\nsummary: (%d+)"))
  if not ok or not total then
    error("callgrind run failed: " .. table.concat(argv, " ") .. (opts.stderr and
      ("\n" .. (M.readfile(opts.stderr) or "")) or ""))
  end
  return total, outfile
end

--- Self instructions by shared object, from a callgrind profile: { [object] = Ir }.
function M.ir_by_object(profile)
  local out = M.capture("callgrind_annotate --threshold=100 --inclusive=no " .. shquote(profile) ..
    " 2>/dev/null")
  local by = {}
  for line in out:gmatch("[^\n]+") do
    local n, obj = line:match("^%s*([%d,]+) %(%s*[%d.]+%%%)%s+%S.-%[(.-)%]%s*$")
    if n then
      local name = obj:match("([^/]+)$"):gsub("%.so[%.%d]*$", ""):gsub("^lib", "")
      by[name] = (by[name] or 0) + tonumber((n:gsub(",", "")))
    end
  end
  return by
end

--- Self instructions by function, for one object: list of {fn =, ir =}, largest first.
function M.ir_by_function(profile, object_pattern, limit)
  local out = M.capture("callgrind_annotate --threshold=100 --inclusive=no " .. shquote(profile) ..
    " 2>/dev/null")
  local list = {}
  for line in out:gmatch("[^\n]+") do
    local n, fn, obj = line:match("^%s*([%d,]+) %(%s*[%d.]+%%%)%s+(%S.-)%s+%[(.-)%]%s*$")
    if n and obj:find(object_pattern) then
      list[#list + 1] = { fn = fn:gsub("^.-:", ""), ir = tonumber((n:gsub(",", ""))) }
    end
  end
  table.sort(list, function(a, b) return a.ir > b.ir end)
  while #list > (limit or 10) do table.remove(list) end
  return list
end

--- A progress line on stderr.
function M.say(fmt, ...)
  io.stderr:write(fmt:format(...), "\n")
end

function M.median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

function M.min(xs)
  local m
  for _, x in ipairs(xs) do if not m or x < m then m = x end end
  return m
end

function M.max(xs)
  local m
  for _, x in ipairs(xs) do if not m or x > m then m = x end end
  return m
end

--- A free TCP port on 127.0.0.1 (the kernel's pick; a server that loses the race is retried).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

--- Waits until something accepts connections on 127.0.0.1:port, up to `seconds`.
function M.wait_listening(port, seconds)
  local deadline = M.now() + seconds
  repeat
    local c = socket.tcp()
    c:settimeout(0.5)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then return true end
    socket.select(nil, nil, 0.02) -- a bounded readiness poll, not a synchronisation sleep
  until M.now() > deadline
  return false
end

local NGINX_CONF = [[
@MODULES@
daemon off;
master_process off;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 256; }
http {
  access_log @DIR@/access.log;
  client_body_temp_path @DIR@/tmp/body;
  proxy_temp_path @DIR@/tmp/proxy;
  fastcgi_temp_path @DIR@/tmp/fastcgi;
  uwsgi_temp_path @DIR@/tmp/uwsgi;
  scgi_temp_path @DIR@/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  default_type application/json;
  map $arg_page $page_no { "" 1; default $arg_page; }
  server {
    listen 127.0.0.1:@PORT@;
    root @DIR@/www;
@LOCATIONS@
  }
}
]]

--- Starts nginx as the current user on a loopback ephemeral port, serving canned answers:
-- routes is a map of exact path -> body (answered 200, application/json, GET only).
-- paged (optional): {path =, pages = {body, ...}, delay_ms =}: GET path?page=N answers
-- pages[N] after delay_ms (echo_sleep from nginx's echo module: a timer, other requests go on).
-- Returns {url =, port =, requests = function() -> count of logged requests, stop =}.
function M.start_nginx(routes, paged)
  local dir = M.tmpdir("nginx")
  os.execute("mkdir -p " .. shquote(dir .. "/www/pages") .. " " .. shquote(dir .. "/tmp"))
  local modules = ""
  local extra = {}
  if paged then
    modules = "load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;"
    for n, body in ipairs(paged.pages) do M.writefile(("%s/www/pages/%d.json"):format(dir, n), body) end
    extra[1] = ("    location = %s { echo_sleep %.3f; echo_exec /pages/$page_no.json; }"):format(paged.path,
      paged.delay_ms / 1000)
    extra[2] = "    location /pages/ { internal; }"
  end
  local locs, i = {}, 0
  local paths = {}
  for path in pairs(routes) do paths[#paths + 1] = path end
  table.sort(paths)
  for _, path in ipairs(paths) do
    i = i + 1
    M.writefile(("%s/www/r%d.json"):format(dir, i), routes[path])
    locs[#locs + 1] = ("    location = %s { try_files /r%d.json =404; }"):format(path, i)
  end
  for _, l in ipairs(extra) do locs[#locs + 1] = l end
  for _ = 1, 5 do
    local port = M.free_port()
    local conf = NGINX_CONF:gsub("@DIR@", dir):gsub("@PORT@", tostring(port)):gsub("@MODULES@", modules)
      :gsub("@LOCATIONS@", (table.concat(locs, "\n"):gsub("%%", "%%%%")))
    M.writefile(dir .. "/nginx.conf", conf)
    local pid = M.capture(("nginx -p %s -c %s -e %s >/dev/null 2>&1 & echo $!"):format(
      shquote(dir), shquote(dir .. "/nginx.conf"), shquote(dir .. "/error.log")))
    if M.wait_listening(port, 5) and os.execute("kill -0 " .. pid .. " 2>/dev/null") then
      local srv = { url = "http://127.0.0.1:" .. port, port = port, pid = pid, dir = dir }
      -- Requests logged so far. nginx logs a request after it has answered it, so a client
      -- can be done before its last line is written: `want` waits (up to 5 s) for that many.
      function srv.requests(want)
        local deadline = M.now() + 5
        while true do
          local log = M.readfile(dir .. "/access.log") or ""
          local n = 0
          for _ in log:gmatch("\n") do n = n + 1 end
          if not want or n >= want or M.now() > deadline then return n end
          socket.select(nil, nil, 0.005)
        end
      end
      function srv.clear_log() M.writefile(dir .. "/access.log", "") end
      function srv.stop()
        if srv.pid then os.execute("kill -TERM " .. srv.pid .. " 2>/dev/null") end
        srv.pid = nil
      end
      M.on_cleanup(srv.stop)
      return srv
    end
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  end
  error("nginx did not start: " .. (M.readfile(dir .. "/error.log") or ""))
end

--- Starts the emulator (spec/helper.lua's start_sim) and registers its stop.
function M.start_sim(args)
  local sim = helper.start_sim({ args = args })
  M.on_cleanup(function() sim:stop() end)
  return sim
end

--- Builds bench/delayproxy.c (bench/run.sh does the same) when `bin` is missing or older.
function M.build_delayproxy(build)
  local bin = (build or (ROOT .. "/build")) .. "/bench/delayproxy"
  local src = ROOT .. "/bench/delayproxy.c"
  local ok = os.execute(("mkdir -p %s && { [ %s -nt %s ] || cc -std=c99 -O2 -Wall -Wextra -o %s %s; }"):format(
    shquote(bin:match("^(.*)/")), shquote(bin), shquote(src), shquote(bin), shquote(src)))
  assert(ok, "cannot build delayproxy")
  return bin
end

--- Starts bench/delayproxy (built at `bin`) on a loopback ephemeral port, forwarding to
-- 127.0.0.1:target_port with rtt_ms of round trip (see the model in bench/delayproxy.c).
-- Returns {port =, url = function(scheme), accepted = function() -> connections so far,
-- stats = function() -> {accepted, active, bytes_up, bytes_down}, stop =}. It stops on its own
-- at `deadline` seconds (default 600) or if this process goes away.
function M.start_proxy(bin, target_port, rtt_ms, opts)
  opts = opts or {}
  local dir = M.tmpdir("proxy")
  local stats, errlog = dir .. "/stats", dir .. "/err"
  local argv = { bin, "--target", "127.0.0.1:" .. target_port, "--rtt-ms", tostring(rtt_ms), "--stats", stats,
                 "--deadline", tostring(opts.deadline or 600), "--max-conns", tostring(opts.max_conns or 64),
                 "--spin-us", tostring(opts.spin_us or 300) }
  local h = assert(io.popen(("echo $$; exec %s 2>%s"):format(M.cmdline(argv), shquote(errlog)), "r"))
  local pid = h:read("l")
  local line = h:read("l") or ""
  local port = tonumber(line:match("^listening 127%.0%.0%.1:(%d+)$"))
  local px = { pid = pid, port = port, rtt_ms = rtt_ms }
  function px.stop()
    if not h then return end
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    h:close()
    h = nil
  end
  M.on_cleanup(px.stop)
  if not port then
    px.stop()
    error("delayproxy did not start: " .. line .. " " .. (M.readfile(errlog) or ""))
  end
  function px.url(scheme) return (scheme or "http") .. "://127.0.0.1:" .. port end
  function px.stats()
    local t = {}
    for k, v in (M.readfile(stats) or ""):gmatch("([%w_]+) (%d+)") do t[k] = tonumber(v) end
    return t
  end
  function px.accepted() return px.stats().accepted end
  return px
end

--- Asserts a control call answered 2xx and returns its body.
function M.control(sim, method, path, body)
  local st, res = sim:control(method, path, body)
  if not st or st < 200 or st > 299 then
    error(("%s %s: %s %s"):format(method, path, tostring(st), type(res) == "table" and cjson.encode(res)
      or tostring(res)))
  end
  return res
end

--- Number of distinct connections and requests in the emulator's log.
function M.log_connections(sim)
  local entries = sim:log()
  local conns, n = {}, 0
  for _, e in ipairs(entries) do
    if not conns[e.conn] then conns[e.conn] = true; n = n + 1 end
  end
  return n, #entries, entries
end

--- Runs hyperfine over named commands (no intermediate shell); returns {name -> {mean, stddev, min}}.
function M.hyperfine(cmds, envf, runs, warmup)
  local json = os.tmpname()
  local argv = { "hyperfine", "-N", "--style", "none", "--runs", tostring(runs), "--warmup",
                 tostring(warmup or 2), "--export-json", json }
  for _, c in ipairs(cmds) do
    argv[#argv + 1] = "-n"
    argv[#argv + 1] = c.name
    argv[#argv + 1] = c.cmd
  end
  local ok = os.execute(M.command(argv, envf, { stdout = "/dev/null", stderr = json .. ".err" }))
  local data = cjson.decode(M.readfile(json) or "")
  local err = M.readfile(json .. ".err")
  os.remove(json)
  os.remove(json .. ".err")
  if not ok or not data then error("hyperfine failed: " .. tostring(err)) end
  local res = {}
  for _, r in ipairs(data.results) do
    res[r.command] = { mean = r.mean, stddev = r.stddev, min = r.min, median = r.median, times = r.times }
  end
  return res
end

return M
