-- The README's shell examples run as written. Every ```sh block of README.md is either run
-- here - against an emulator this spec starts, in a scratch directory, with `aap` and a
-- stand-in `kubectl` (it records what it would apply) first on PATH - or named below with
-- the reason it is not; a new block must be one or the other. A block runs with
-- `bash -e -o pipefail`, so any failing line fails it. Only the gateway's address and the
-- `...` placeholders are filled in, and only in the block that shows them.
local helper = require("helper")

local ROOT = assert(io.popen("pwd")):read("l")

local function sh_blocks()
  local text = assert(helper.readfile("README.md"))
  local blocks = {}
  for body in text:gmatch("\n```sh\n(.-)\n```") do blocks[#blocks + 1] = body .. "\n" end
  return blocks, text
end

local function first_line(block) return block:match("^([^\n]*)") end

-- Blocks not run here, by their first line, and why.
local NOT_RUN = {
  ["make demo    # installs what is missing, builds, runs the lesson end to end on the built-in emulator"] =
    "make demo is its own .ci/run step; make test is what runs this spec",
  ["AAP_LIVE_URL=https://aap.example.com AAP_LIVE_USERNAME=admin AAP_LIVE_PASSWORD=... \\"] =
    "needs a real gateway",
  ["make dist   # build/aap-0.1.0.tar.gz (the files git tracks) and build/*.rockspec pointing at it"] =
    "installs into the system's rock tree; scripts/rock.sh (a .ci/run step) runs the same into a throwaway tree",
}

-- Runs a block in dir with bash; env: extra variables; stdin: a string. Returns code, output.
local function run_block(block, dir, env, stdin)
  helper.writefile(dir .. "/block.sh", block)
  helper.writefile(dir .. "/stdin", stdin or "")
  local vars = { ("PATH=%s/bin:%s"):format(dir, os.getenv("PATH")), "HOME=" .. dir, "LANG=C.UTF-8",
                 "AAP_CPATH=" .. (os.getenv("AAP_CPATH") or (ROOT .. "/build")) }
  -- a sanitizer run (scripts/test.sh --sanitize) keeps its settings in children
  for _, k in ipairs({ "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
    if os.getenv(k) then vars[#vars + 1] = k .. "=" .. os.getenv(k) end
  end
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. v end
  for i, v in ipairs(vars) do vars[i] = "'" .. v:gsub("'", "'\\''") .. "'" end
  local p = io.popen(("cd '%s' && env -i %s bash -e -o pipefail block.sh <stdin 2>&1"):format(dir,
    table.concat(vars, " ")))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

-- A scratch directory with lua/ and build/ linked to this checkout's, and in bin/ (first on
-- PATH) `aap` and a stand-in `kubectl` that records its arguments and its input.
local function scratch()
  local dir = helper.tmpdir()
  for _, d in ipairs({ "lua", "build" }) do os.execute(("ln -s '%s/%s' '%s/%s'"):format(ROOT, d, dir, d)) end
  os.execute(("mkdir -p '%s/bin'"):format(dir))
  helper.writefile(dir .. "/bin/aap", ("#!/bin/sh\nexec lua5.4 '%s/bin/aap' \"$@\"\n"):format(ROOT), 493)
  helper.writefile(dir .. "/bin/kubectl",
    ("#!/bin/sh\nprintf 'kubectl %%s\\n' \"$*\" >> '%s/kubectl.log'\ncat >> '%s/kubectl.log'\n")
    :format(dir, dir), 493)
  return dir
end

describe("README.md's shell examples", function()
  local blocks, text = sh_blocks()
  local by_first = {}
  for _, b in ipairs(blocks) do by_first[first_line(b)] = b end
  local sim

  setup(function() sim = helper.start_sim() end)
  teardown(function() assert.is_true((sim:stop())) end)

  local RUN = {}

  RUN["export AAP_SIM_ADMIN_PASSWORD=change-me"] = function(block)
    -- The emulator snippet: it starts bin/aap sim itself, and must stop it again.
    -- It runs bin/aap from a checkout: here bin/ is this checkout's.
    local dir = scratch()
    os.execute(("rm -rf '%s/bin' && ln -s '%s/bin' '%s/bin'"):format(dir, ROOT, dir))
    local code, out = run_block(block .. 'echo "url=$AAP_URL"\n', dir)
    -- Stopped: no process is left in the scratch directory (else: stop those, and fail).
    local p = io.popen(("for c in /proc/[0-9]*/cwd; do [ \"$(readlink \"$c\")\" = '%s' ] && " ..
      "c=${c%%/cwd} && echo ${c#/proc/}; done 2>/dev/null"):format(dir))
    local left = p:read("a")
    p:close()
    if left:match("%d") then
      os.execute("kill " .. left:gsub("%s+", " "))
      error("the README's emulator snippet left processes running: " .. left)
    end
    assert.equal(0, code, out)
    local token = out:match("^(%w+)\nurl=")
    assert.is_string(token, out)
    assert.equal(30, #token)
    assert.matches("stopped", helper.readfile(dir .. "/sim.log"))
  end

  RUN["export LUA_PATH=\"$PWD/lua/?.lua;$PWD/lua/?/init.lua;;\" LUA_CPATH=\"$PWD/build/?.so;;\""] = function(block)
    local dir = scratch()
    local code, out = run_block(block, dir)
    assert.equal(0, code, out)
    assert.equal("0.1.0\n", out)
  end

  RUN["export AAP_HOSTNAME=https://aap.example.com AAP_USERNAME=admin"] = function(block)
    local dir = scratch()
    local filled, n = block:gsub("https://aap%.example%.com", sim.url)
    assert.equal(1, n)
    -- AAP_CLIENT_ID is recorded in .env by token create --application: only the secret is given
    filled, n = filled:gsub("AAP_CLIENT_SECRET=%.%.%.", ("AAP_CLIENT_SECRET=%s")
      :format(sim.seed.application.client_secret))
    assert.equal(1, n)
    for line in filled:gmatch("[^\n]+") do   -- outside comments
      assert.is_nil(line:gsub("%s+#.*$", ""):find("...", 1, true), "a placeholder left: " .. line)
    end
    local code, out = run_block(filled, dir, nil, sim.admin_password .. "\n")
    assert.equal(0, code, out)
    -- eval "$(aap token create --format shell)" exported a PAT; the Secret went to kubectl.
    local log = assert(helper.readfile(dir .. "/kubectl.log"), "kubectl was not run")
    assert.matches("^kubectl apply %-%-server%-side %-%-field%-manager=aap %-f %-\n", log)
    assert.matches('\n  "AAP_TOKEN": "%w+"', log)
    local env = helper.source_env(dir .. "/.env", { "AAP_PAT", "AAP_TOKEN", "REFRESH_TOKEN" })
    assert.equal("<unset>", env.AAP_PAT)          -- revoked and removed by the block
    assert.is_true(sim:token_works(env.AAP_TOKEN)) -- the refreshed application token
  end

  local ROTATE = "aap token rotate --policy policies/yearly.lua --env-file .env --dry-run" ..
    "   # decision and reason, changes nothing"
  RUN[ROTATE] =
    function(block)
      local dir = scratch()
      -- The policy is the README's own (the ```lua block that names policies/yearly.lua).
      local policy = assert(text:match("\n```lua\n(%-%- policies/yearly%.lua\n.-)\n```"),
        "no policies/yearly.lua block")
      os.execute(("mkdir -p '%s/policies'"):format(dir))
      helper.writefile(dir .. "/policies/yearly.lua", policy .. "\n")
      local env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password }
      local code, out = run_block("aap token create --env-file .env --description ci\n", dir, env)
      assert.equal(0, code, out)
      code, out = run_block(block, dir, env)
      assert.equal(0, code, out)
      assert.matches("keep AAP_PAT", out)
      assert.matches("^kubectl apply %-%-server%-side", assert(helper.readfile(dir .. "/kubectl.log")))
    end

  it("are each either run here or named with the reason they are not", function()
    assert.is_true(#blocks >= 6, "found only " .. #blocks .. " sh blocks")
    for _, b in ipairs(blocks) do
      local f = first_line(b)
      assert.is_true(RUN[f] ~= nil or NOT_RUN[f] ~= nil, "README block not run nor excused: " .. f)
    end
    for f in pairs(RUN) do assert.is_not_nil(by_first[f], "no README block starts with: " .. f) end
    for f in pairs(NOT_RUN) do assert.is_not_nil(by_first[f], "no README block starts with: " .. f) end
  end)

  for _, b in ipairs(blocks) do
    local f = first_line(b)
    if RUN[f] then
      it("runs: " .. f, function() RUN[f](b) end)
    end
  end
end)
