-- Issue #14, the modules' graph: scripts/require_graph.lua walks every require (top-level and
-- inside functions) and every module named in a string under lua/: no circle, and the command
-- modules name neither aap.cli nor each other (what they share is aap.commands.common).
local helper = require("helper")

-- Runs the script on a tree; returns its exit code and output.
local function graph(root)
  local p = assert(io.popen(("lua5.4 '%s/scripts/require_graph.lua' '%s' 2>&1"):format(helper.ROOT, root)))
  local out = "\n" .. p:read("a")   -- every line after a newline, the first too
  local _, _, code = p:close()
  return code, out
end

describe("the module graph", function()
  teardown(helper.cleanup)

  it("has no circle, and no command module names aap.cli or another command module", function()
    local code, out = graph(helper.ROOT)
    assert.equal(0, code, out)
    assert.matches("\nok: %d+ modules, no circle; .*every module names only its own layer or those below", out)
    -- What the command modules share is reached through aap.commands.common.
    assert.matches("\naap%.commands%.token %-> [^\n]*aap%.commands%.common", out)
    assert.matches("\naap%.cli %-> [^\n]*aap%.commands%.token", out)   -- the list cli loads them from
  end)

  it("finds a circle made through a require inside a function, and a command module naming aap.cli", function()
    local root = helper.tmpdir()
    assert(os.execute(("mkdir -p '%s/lua/aap/commands'"):format(root)))
    helper.writefile(root .. "/lua/aap/cli.lua",
      'local M = {}\n-- require("aap.nothing") in a comment is no edge\n'
      .. 'local MODULES = { "aap.commands.x" }\nreturn M\n')
    helper.writefile(root .. "/lua/aap/commands/x.lua",
      'local M = {}\nfunction M.f() return require("aap.cli").message("--x") end\nreturn M\n')
    local code, out = graph(root)
    assert.equal(1, code, out)
    assert.matches("BROKEN: circle: aap%.cli, aap%.commands%.x", out)
    assert.matches("BROKEN: aap%.commands%.x names aap%.cli", out)
    assert.is_nil(out:find("aap.nothing", 1, true))
  end)

  it("finds a module that names a layer above its own, and an emulator module that names aap's", function()
    local root = helper.tmpdir()
    assert(os.execute(("mkdir -p '%s/lua/aap/sim'"):format(root)))
    helper.writefile(root .. "/lua/aap/env.lua", 'local M = {}\nfunction M.f() return require("aap.workflow") end\n'
      .. 'return M\n')
    helper.writefile(root .. "/lua/aap/workflow.lua", 'return {}\n')
    helper.writefile(root .. "/lua/aap/sim/init.lua", 'local env = require("aap.env")\nreturn {}\n')
    helper.writefile(root .. "/lua/aap/stray.lua", 'return {}\n')
    local code, out = graph(root)
    assert.equal(1, code, out)
    assert.matches("BROKEN: aap%.env %(base layer%) names aap%.workflow, of the workflow layer above it", out)
    assert.matches("BROKEN: aap%.sim %(the emulator%) names aap%.env", out)
    assert.matches("BROKEN: aap%.stray is in no layer", out)
    assert.is_nil(out:find("aap.workflow (workflow layer)", 1, true))
  end)
end)

-- The C core's files (scripts/c_graph.lua, from the object files' symbols): no cycle.
describe("the C core's file graph", function()
  local function c_graph(dir, src)
    local p = assert(io.popen(("lua5.4 '%s/scripts/c_graph.lua' '%s' '%s' 2>&1"):format(helper.ROOT, dir,
      src or dir)))
    local out = "\n" .. p:read("a")
    local _, _, code = p:close()
    return code, out
  end
  local build = os.getenv("AAP_CPATH") or "build"
  if build:sub(1, 1) ~= "/" then build = helper.ROOT .. "/" .. build end
  local objdir = build .. "/CMakeFiles/aap.dir/csrc"

  it("has no cycle: a part never calls back into what calls it", function()
    local code, out = c_graph(objdir, helper.ROOT .. "/csrc")
    assert.equal(0, code, out)
    assert.matches("\nok: %d+ files, no cycle", out)
    assert.matches("\naap%.c %-> [^\n]*session%.c", out)
    assert.matches("\nsession%.c %-> [^\n]*call%.c", out)
    assert.is_nil(out:find("\ncall.c -> [^\n]*session.c"), out)
  end)

  it("finds a cycle between two object files", function()
    local dir = helper.tmpdir()
    helper.writefile(dir .. "/a.c", "int b(void); int a(void) { return b(); }\n")
    helper.writefile(dir .. "/b.c", "int a(void); int b(void) { return a() + 1; }\n")
    assert(os.execute(("cd '%s' && cc -c a.c -o a.c.o && cc -c b.c -o b.c.o"):format(dir)))
    local code, out = c_graph(dir)
    assert.equal(1, code, out)
    assert.matches("BROKEN: cycle: a%.c, b%.c", out)
  end)
end)

