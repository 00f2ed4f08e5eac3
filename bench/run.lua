--- The benchmark harness (started by bench/run.sh): starts the servers, runs the benchmarks,
-- and writes docs/benchmarks.md and docs/benchmarks.png from what it measured.
--
-- bench/run.sh [--quick] [--only client,lesson,listing,startup,remote]
--   --quick  fewer repetitions and smaller lists; the report goes to build/bench/ instead of docs/
--   --only   run some benchmarks; the report goes to build/bench/ (docs/ only gets whole runs)
local ROOT = assert(os.getenv("AAP_ROOT"), "run through bench/run.sh")
local BUILD = assert(os.getenv("AAP_BUILD"), "run through bench/run.sh")
package.path = ROOT .. "/?.lua;" .. ROOT .. "/lua/?.lua;" .. package.path
package.cpath = BUILD .. "/?.so;" .. package.cpath

local lib = require("bench.lib")
local suite = require("bench.suite")
local report = require("bench.report")

local quick, only = false, nil
local i = 1
while arg[i] do
  if arg[i] == "--quick" then quick = true
  elseif arg[i] == "--only" and arg[i + 1] then
    only = {}
    for w in arg[i + 1]:gmatch("[^,]+") do only[w] = true end
    i = i + 1
  else
    io.stderr:write("usage: bench/run.sh [--quick] [--only client,lesson,listing,startup,remote]\n")
    os.exit(1)
  end
  i = i + 1
end

local function first_line(cmd)
  local out = lib.capture(cmd .. " 2>&1")
  return out:match("^[^\n]*")
end

local function machine()
  local cpu = (lib.readfile("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?"
  local mem = tonumber((lib.readfile("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)")) or 0
  return {
    date = os.date("!%Y-%m-%d %H:%M UTC"),
    kernel = first_line("uname -srm"),
    os = "Debian " .. (first_line("cat /etc/debian_version") or "?"),
    cpu = cpu, cores = tonumber(first_line("nproc")), mem_gib = mem / 1048576,
    load = first_line("cat /proc/loadavg"):match("^(%S+ %S+ %S+)"),
    commit = first_line("git -C " .. lib.shquote(ROOT) .. " rev-parse --short HEAD"),
    dirty = first_line("git -C " .. lib.shquote(ROOT) .. " status --porcelain -- csrc lua bin | head -n 1") ~= "",
    versions = {
      aap = require("aap")._VERSION,
      lua = first_line("lua5.4 -v"):match("^(Lua %S+)") or "?",
      libcurl = first_line("curl -V"):match("(libcurl/%S+)") or "?",
      curl = first_line("curl -V"):match("^(curl %S+)") or "?",
      openssl = first_line("openssl version"),
      nginx = first_line("nginx -v"):match("(nginx/%S+)") or "?",
      jq = first_line("jq --version"),
      luasocket = require("socket")._VERSION,
      valgrind = first_line("valgrind --version"),
      hyperfine = first_line("hyperfine --version"),
      gnuplot = first_line("gnuplot --version"),
    },
  }
end

local ctx = {
  root = ROOT, build = BUILD, quick = quick,
  password = lib.spec_helper().ADMIN_PASSWORD,
  tmp = lib.tmpdir("run"),
}
local ok, err = xpcall(function()
  local results = { machine = machine(), quick = quick }
  local t0 = lib.now()
  ctx.sim = lib.start_sim({})
  lib.say("bench: emulator at %s, nginx and the clients on loopback", ctx.sim.url)
  local parts = { { "client", "client_cost" }, { "lesson", "lesson" }, { "listing", "listing" },
                  { "startup", "startup" }, { "remote", "remote" } }
  for _, p in ipairs(parts) do
    if not only or only[p[1]] then
      lib.say("bench: %s", p[1])
      local t = lib.now()
      results[p[1]] = suite[p[2]](ctx)
      lib.say("bench: %s done in %.0f s", p[1], lib.now() - t)
    end
  end
  results.seconds = lib.now() - t0
  local outdir = (quick or only) and (BUILD .. "/bench") or (ROOT .. "/docs")
  lib.writefile(BUILD .. "/bench/results.json", lib.json.encode(results) .. "\n")
  local md, png = report.write(results, outdir, ctx.tmp)
  lib.say("bench: wrote %s and %s (%.0f s)", md, png, results.seconds)
end, debug.traceback)
lib.cleanup()
if not ok then
  io.stderr:write("bench: ", tostring(err), "\n")
  os.exit(1)
end
