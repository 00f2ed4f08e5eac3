-- Issue #13, CLI conventions and errors: usage errors show the failing command's usage;
-- `aap help`; completions and the manual page generated from the parser; connection flags
-- before or after the command; --quiet everywhere; URL errors as usage errors; candidates in
-- ambiguity errors; organization names; the password asked for on a terminal, without echo.
local helper = require("helper")
local cjson = require("cjson")

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs a shell command line; returns its exit status and its output (stdout and stderr).
local function shell(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

describe("aap command conventions", function()
  local sim
  setup(function() sim = helper.start_sim() end)
  before_each(function() sim:reset() end)
  teardown(function()
    assert.is_true((sim:stop()))
    helper.cleanup()
  end)

  -- bin/aap against the emulator, as its admin; `extra` adds variables (false unsets one).
  local function aap(argv, extra)
    local env = { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password }
    for k, v in pairs(extra or {}) do env[k] = v end
    return helper.run(argv, { env = env })
  end

  describe("usage errors", function()
    it("show the usage of the command that failed, not the top level's", function()
      for _, case in ipairs({ { { "token", "create", "--nope" }, "aap token create" },
                              { { "app", "list", "--format", "yaml" }, "aap app list" },
                              { { "token", "show" }, "aap token show" },
                              { { "token", "nope" }, "aap token" } }) do
        local r = aap(case[1])
        assert.equal(1, r.code, r.stderr)
        assert.equal("Usage: " .. case[2] .. " ", r.stderr:sub(1, #case[2] + 8), r.stderr)
        assert.matches("\n\naap: [^\n]+\n$", r.stderr)
      end
    end)

    it("a URL that cannot be used is a usage error: exit 1, one line, no internal error", function()
      for _, url in ipairs({ "https://", "https://gw.example:99999", "https://gw.example:abc", "https://[::1",
                             "http://" }) do
        for _, how in ipairs({ "env", "flag" }) do
          local r = how == "env" and aap({ "whoami" }, { AAP_HOSTNAME = url })
            or aap({ "whoami", "--url", url }, { AAP_HOSTNAME = false })
          assert.equal(1, r.code, url .. ": " .. r.stderr)
          assert.equal("", r.stdout)
          assert.matches("^aap: [^\n]+\n$", r.stderr, url)
          assert.is_nil(r.stderr:find("internal error", 1, true), r.stderr)
          assert.truthy(r.stderr:find((how == "env" and "AAP_HOSTNAME" or "--url") .. " is " .. ("%q"):format(url),
            1, true), r.stderr)
        end
      end
    end)
  end)

  describe("aap help", function()
    it("prints the top level's help, and a command's help as --help does", function()
      local top = aap({ "help" })
      assert.equal(0, top.code, top.stderr)
      assert.equal(aap({ "--help" }).stdout, top.stdout)
      for _, words in ipairs({ { "token" }, { "token", "create" }, { "app", "list" }, { "whoami" } }) do
        local h = aap({ "help", table.unpack(words) })
        assert.equal(0, h.code, h.stderr)
        local argv = table.move(words, 1, #words, 1, {})
        argv[#argv + 1] = "--help"
        local want = aap(argv)
        assert.equal(0, want.code)
        assert.equal(want.stdout, h.stdout)
        assert.matches("^Usage: aap " .. table.concat(words, " "), h.stdout)
      end
    end)

    it("refuses an unknown command with exit 1, naming it", function()
      for _, words in ipairs({ { "nope" }, { "token", "nope" } }) do
        local r = aap({ "help", table.unpack(words) })
        assert.equal(1, r.code)
        assert.equal("aap: unknown command 'nope' (aap help lists the commands)\n", r.stderr)
      end
    end)
  end)

  describe("connection flags", function()
    it("are taken before the command, between its words, and after it", function()
      local env = { AAP_HOSTNAME = "https://nowhere.invalid" }
      for _, argv in ipairs({
        { "--url", sim.url, "whoami" },
        { "--url=" .. sim.url, "--flavor", "gateway", "-q", "whoami" },
        { "--url", sim.url, "token", "list", "--kind", "personal" },
        { "token", "--url", sim.url, "--timeout", "5", "list" },
        { "token", "list", "--url", sim.url },
        { "--username", "admin", "--url", sim.url, "app", "show", "RHDH Integration" },
      }) do
        local r = aap(argv, env)
        assert.equal(0, r.code, table.concat(argv, " ") .. ": " .. r.stderr)
      end
      -- Proof that the flag is used, not ignored: a wrong one before the command fails.
      local r = aap({ "--flavor", "controller", "whoami" })
      assert.are_not.equal(0, r.code)
      r = aap({ "--url", "https://[::1", "token", "list" })
      assert.equal(1, r.code)
      assert.matches("^aap: %-%-url is", r.stderr)
    end)

    it("are moved after the command's words, before a --", function()
      local hoist = require("aap.cli").hoist
      assert.same({ "token", "list", "--kind", "x", "--url", "U", "-k" },
        hoist({ "--url", "U", "-k", "token", "list", "--kind", "x" }))
      assert.same({ "token", "revoke", "--timeout=3", "-q", "--", "--url" },
        hoist({ "--timeout=3", "token", "-q", "revoke", "--", "--url" }))
      -- nothing to move, or no command to move them to: as it was
      for _, argv in ipairs({ { "token", "list" }, { "--url", "U" }, { "--help" }, { "-k", "--help", "token" },
                              { "--url", "U", "sim" }, { "--url", "U", "help", "token" } }) do
        assert.equal(argv, hoist(argv))
      end
    end)

    it("--password and --token are refused anywhere, without echo", function()
      for _, argv in ipairs({ { "--password", "hunter2-secret", "whoami" },
                              { "--token=hunter2-secret", "token", "list" },
                              { "token", "list", "--password", "hunter2-secret" } }) do
        local r = aap(argv)
        assert.equal(1, r.code)
        assert.matches("^aap: secrets are not accepted on the command line", r.stderr)
        assert.is_nil(r.stderr:find("hunter2", 1, true))
      end
    end)
  end)

  describe("--quiet", function()
    it("is an option of every command", function()
      local cli = require("aap.cli")
      local n = 0
      local function walk(p)
        for _, c in ipairs(p._commands) do
          if #c._commands > 0 then
            walk(c)
          elseif not ({ sim = true, help = true, completion = true, man = true })[c._name] then
            n = n + 1
            local found = false
            for _, o in ipairs(c._options) do
              for _, a in ipairs(o._aliases) do found = found or a == "--quiet" end
            end
            assert(found, c:_get_fullname() .. " has no --quiet")
          end
        end
      end
      walk(cli.parser())
      assert.is_true(n >= 12)
    end)

    it("silences the diagnostics of list and show", function()
      local r = aap({ "app", "list", "-q" })
      assert.equal(0, r.code, r.stderr)
      assert.equal("", r.stderr)
      assert.matches("RHDH Integration", r.stdout)
    end)
  end)

  describe("applications and organizations", function()
    -- A second organization holding an application of the same name as the seeded one.
    local function second_app()
      local st, org = sim:control("POST", "/api/gateway/v1/organizations/", { name = "Engineering" })
      assert.equal(201, st)
      local r = aap({ "app", "create", "--name", "RHDH Integration", "--organization", "Engineering",
                      "--format", "json", "-q" })
      assert.equal(0, r.code, r.stderr)
      return org, cjson.decode(r.stdout)
    end

    it("an ambiguous name names the candidates, with their organizations (exit 2)", function()
      local _, app2 = second_app()
      for _, argv in ipairs({ { "app", "show", "RHDH Integration" },
                              { "token", "list", "--application", "RHDH Integration" },
                              { "token", "create", "--application", "RHDH Integration", "--format", "env" } }) do
        local r = aap(argv)
        assert.equal(2, r.code, r.stderr)
        assert.matches("^aap: [^\n]+\n$", r.stderr)
        assert.truthy(r.stderr:find(("candidates: id=%d (organization Default), id=%d (organization Engineering)")
          :format(sim.seed.application.id, app2.id), 1, true), r.stderr)
      end
    end)

    it("app list shows organization names; JSON has the id and the name", function()
      second_app()
      local r = aap({ "app", "list" })
      assert.equal(0, r.code, r.stderr)
      assert.matches("\n%d+%s+RHDH Integration%s+Default%s", r.stdout)
      assert.matches("\n%d+%s+RHDH Integration%s+Engineering%s", r.stdout)
      local j = aap({ "app", "list", "--format", "json" })
      local orgs = {}
      for _, a in ipairs(cjson.decode(j.stdout)) do orgs[a.organization_name] = a.organization end
      assert.is_number(orgs.Default)
      assert.is_number(orgs.Engineering)
    end)

    it("token list takes --organization (name or id) and shows application and organization names", function()
      local org, app2 = second_app()
      local dir = helper.tmpdir()
      local made = {}
      for _, o in ipairs({ "Default", "Engineering" }) do
        local r = aap({ "token", "create", "--application", "RHDH Integration", "--organization", o,
                        "--env-file", dir .. "/" .. o .. ".env", "-q" })
        assert.equal(0, r.code, r.stderr)
        made[o] = assert(cjson.decode(helper.readfile(dir .. "/" .. o .. ".env.aap-state.json"))).keys.AAP_TOKEN.id
      end
      assert.equal(0, aap({ "token", "create", "--env-file", dir .. "/pat.env", "-q" }).code)
      local function ids(argv)
        local r = aap(argv)
        assert.equal(0, r.code, r.stderr)
        local out = {}
        for _, t in ipairs(cjson.decode(r.stdout)) do out[#out + 1] = t end
        return out
      end
      for _, which in ipairs({ "Engineering", ("%d"):format(org.id) }) do
        local got = ids({ "token", "list", "--organization", which, "--format", "json" })
        assert.equal(1, #got)
        assert.equal(made.Engineering, got[1].id)
        assert.equal(app2.id, got[1].application)
        assert.equal("RHDH Integration", got[1].application_name)
        assert.equal("Engineering", got[1].organization_name)
      end
      local got = ids({ "token", "list", "--application", "RHDH Integration", "--organization", "Default",
                        "--format", "json" })
      assert.equal(1, #got)
      assert.equal(made.Default, got[1].id)
      local t = aap({ "token", "list" })
      assert.matches(("\n%d%%s+application%%s+%%d+%%s+RHDH Integration%%s+Engineering%%s"):format(made.Engineering),
        t.stdout)
      assert.equal(1, aap({ "token", "list", "--organization", "Default", "--kind", "personal" }).code)
    end)
  end)

  describe("completions and the manual page", function()
    local dir
    setup(function() dir = helper.tmpdir() end)

    local function generate(argv, file)
      local r = aap(argv)
      assert.equal(0, r.code, r.stderr)
      assert.equal("", r.stderr)
      helper.writefile(dir .. "/" .. file, r.stdout)
      return dir .. "/" .. file, r.stdout
    end

    it("bash: valid, and completes commands, flags and choices; never the refused --password/--token", function()
      local path, text = generate({ "completion", "bash" }, "aap.bash")
      assert.equal(0, (shell("bash -n " .. sh(path))))
      assert.is_nil(text:match("%-%-password[^-]"))
      assert.is_nil(text:match("%-%-token[^-]"))
      local function complete(words)
        local code, out = shell("bash -c " .. sh((". %s; COMP_WORDS=(%s); COMP_CWORD=%d; _aap; "
          .. "printf '%%s\\n' \"${COMPREPLY[@]}\""):format(sh(path), table.concat(words, " "), #words - 1)))
        assert.equal(0, code, out)
        return out
      end
      assert.equal("token\n", complete({ "aap", "to" }))
      assert.equal("create\n", complete({ "aap", "token", "cr" }))
      assert.equal("--scope\n", complete({ "aap", "token", "create", "--sc" }))
      assert.equal("read\nwrite\n", complete({ "aap", "token", "create", "--scope", "''" }))
      assert.matches("%-%-organization\n", complete({ "aap", "token", "list", "--org" }))
    end)

    it("fish: valid, and completes commands and flags", function()
      local path = generate({ "completion", "fish" }, "aap.fish")
      assert.equal(0, (shell("fish -n " .. sh(path))))
      local code, out = shell("fish -c " .. sh(
        ("source %s; complete -C 'aap token cr'; complete -C 'aap app list --ou'"):format(sh(path))))
      assert.equal(0, code, out)
      assert.matches("^create\t", out)
      assert.matches("\n%-%-output\t", out)
      assert.is_nil(out:find("-l password ", 1, true))
    end)

    it("zsh: valid", function()
      local path, text = generate({ "completion", "zsh" }, "_aap")
      assert.equal(0, (shell("zsh -n " .. sh(path))))
      assert.matches("^#compdef aap\n", text)
      assert.truthy(text:find("--organization", 1, true))
    end)

    it("the manual page: roff without warnings, every command and flag in it", function()
      local path, text = generate({ "man" }, "aap.1")
      local code, warnings = shell("groff -man -ww -z " .. sh(path))
      assert.equal(0, code)
      assert.equal("", warnings)
      local _, page = shell("MANWIDTH=100 MAN_KEEP_FORMATTING= man -l " .. sh(path) .. " | col -b")
      for _, s in ipairs({ "aap token create", "aap token prune", "aap app list", "aap whoami", "--password-stdin",
                           "--organization", "EXIT STATUS", "AAP_HOSTNAME", "4 network or TLS" }) do
        assert.truthy(page:find(s, 1, true), s)
      end
      assert.is_nil(page:find("--password ", 1, true))
      assert.matches("^%.TH AAP 1", text)
    end)
  end)

  describe("the password on a terminal", function()
    -- Runs bin/aap on a pseudo-terminal (python3's pty): at the prompt, records whether the
    -- terminal echoes, types the answer, and returns the terminal's output, whether it echoed,
    -- and the exit code.
    local PTY = [[
import os, pty, sys, termios
answers = sys.argv[1].encode().split(b"\x1e")   # one a prompt: the next after the next prompt
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
out, echo = b"", "no-prompt"
def read():
    try:
        return os.read(fd, 1024)
    except OSError:
        return b""
while b"Password for" not in out:
    chunk = read()
    if not chunk:
        break
    out += chunk
if b"Password for" in out:
    echo = "echo-on" if termios.tcgetattr(fd)[3] & termios.ECHO else "echo-off"
    os.write(fd, answers[0])
for i, answer in enumerate(answers[1:], 2):
    while out.count(b"Password for") < i:
        chunk = read()
        if not chunk:
            break
        out += chunk
    if out.count(b"Password for") >= i:
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            os.write(fd, answer)
        else:
            echo = "echo-on-again"
while True:
    chunk = read()
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
try:
    after = "echo-on" if termios.tcgetattr(fd)[3] & termios.ECHO else "echo-off"
except termios.error:
    after = "unknown"
sys.stdout.write(echo + " " + after + "\n" + str(os.waitstatus_to_exitcode(status)) + "\n"
                 + out.decode("utf-8", "replace"))
]]

    local function on_tty(answer, argv, env)
      local dir = helper.tmpdir()
      helper.writefile(dir .. "/on_tty.py", PTY)
      local vars = {}
      -- a sanitizer run keeps its settings in children, as helper.run does
      for _, k in ipairs({ "AAP_CPATH", "ASAN_OPTIONS", "UBSAN_OPTIONS" }) do
        if os.getenv(k) and env[k] == nil then vars[#vars + 1] = k .. "=" .. sh(os.getenv(k)) end
      end
      for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. sh(v) end
      local q = {}
      for i, a in ipairs(argv) do q[i] = sh(a) end
      local p = assert(io.popen(("env -i PATH=%s %s /usr/bin/python3 %s %s lua5.4 %s %s"):format(sh(os.getenv("PATH")),
        table.concat(vars, " "), sh(dir .. "/on_tty.py"), sh(answer), sh(helper.AAP), table.concat(q, " "))))
      local text = p:read("a")
      p:close()
      local echo, after, code, out = text:match("^(%S+) (%S+)\n([^\n]*)\n(.*)$")
      return echo, tonumber(code), out or text, after
    end

    it("is asked for without echo when none is set, and used", function()
      local echo, code, out, after = on_tty(sim.admin_password .. "\n", { "whoami" }, { AAP_HOSTNAME = sim.url })
      assert.equal("echo-off", echo, out)
      assert.equal("echo-on", after)
      assert.equal(0, code, out)
      assert.matches("^Password for admin at " .. sim.url:gsub("%p", "%%%0") .. ": ", out)
      assert.matches("admin %(id %d+, superuser%)", out)
      assert.is_nil(out:find(sim.admin_password, 1, true), "the password was echoed")
    end)

    it("a wrong answer is an authentication error (exit 3); Ctrl-C ends it with the echo restored", function()
      local echo, code, out = on_tty("wrong-password\n", { "whoami" }, { AAP_HOSTNAME = sim.url })
      assert.equal("echo-off", echo)
      assert.equal(3, code, out)
      assert.is_nil(out:find("wrong-password", 1, true))
      local after
      echo, code, out, after = on_tty("\3", { "whoami" }, { AAP_HOSTNAME = sim.url })
      assert.equal("echo-off", echo)
      assert.equal(1, code, out)
      assert.matches("\naap: interrupted\r?\n$", out)
      assert.equal("echo-on", after)     -- the terminal echoes again
    end)

    it("Ctrl-Z at the prompt gives the echo back, and the password is asked for again after", function()
      -- On this pseudo-terminal the command leads an orphaned process group, which the kernel does
      -- not stop: what is seen is the suspend's way back (in a shell: after `fg`).
      local echo, code, out, after = on_tty("\26\30" .. sim.admin_password .. "\n", { "whoami" },
        { AAP_HOSTNAME = sim.url })
      assert.equal("echo-off", echo)
      assert.equal(0, code, out)
      assert.equal("echo-on", after)
      local _, prompts = out:gsub("Password for admin at ", "")
      assert.equal(2, prompts, out)
      assert.matches("admin %(id %d+, superuser%)", out)
      assert.is_nil(out:find(sim.admin_password, 1, true), "the password was echoed")
    end)

    it("is not asked for when standard input is not a terminal, nor when a password is given", function()
      local r = aap({ "whoami" }, { AAP_PASSWORD = false })
      assert.equal(1, r.code)
      assert.matches("^aap: no credentials", r.stderr)
      local echo, code = on_tty("", { "whoami" }, { AAP_HOSTNAME = sim.url, AAP_PASSWORD = sim.admin_password })
      assert.equal("no-prompt", echo)
      assert.equal(0, code)
    end)
  end)
end)
