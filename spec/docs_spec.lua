-- `make docs` documents the C core from docs/api/aap.luadoc, a stub LDoc reads (the functions
-- are C): every function aap.so registers, and every Session method, must be in it, so a new
-- C function cannot go undocumented.
local aap = require("aap")
local helper = require("helper")

local function documented()
  local text = assert(helper.readfile("docs/api/aap.luadoc"))
  local names = {}
  for name in text:gmatch("\n%-%- @function ([%w_:%.]+)") do names[name] = true end
  for name in text:gmatch("\n%-%- @field ([%w_]+)") do names[name] = true end
  return names
end

describe("docs/api/aap.luadoc (the C core's API for LDoc)", function()
  local names = documented()

  it("documents every field of require('aap')", function()
    local n = 0
    for k in pairs(aap) do
      n = n + 1
      assert.is_true(names[k] ~= nil, "aap." .. k .. " is not documented in docs/api/aap.luadoc")
    end
    assert.is_true(n >= 10, "too few fields in require('aap'): " .. n)
  end)

  it("documents every Session method", function()
    local s <close> = aap.connect{ url = "http://127.0.0.1:9" }   -- connect does no I/O
    local methods = getmetatable(s).__index
    assert.equals("table", type(methods))
    local n = 0
    for k, v in pairs(methods) do
      if type(v) == "function" and not k:match("^_") then
        n = n + 1
        assert.is_true(names["Session:" .. k] ~= nil, "Session:" .. k .. " is not documented in docs/api/aap.luadoc")
      end
    end
    assert.is_true(n >= 15, "too few Session methods: " .. n)
  end)

  it("documents nothing the core does not have", function()
    local s <close> = aap.connect{ url = "http://127.0.0.1:9" }
    local methods = getmetatable(s).__index
    for name in pairs(names) do
      local m = name:match("^Session:(.+)$")
      if m then assert.is_function(methods[m], name)
      else assert.is_not_nil(aap[name], "aap." .. name) end
    end
  end)
end)
