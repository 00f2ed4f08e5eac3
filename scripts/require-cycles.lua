-- Finds require() circles among the Lua modules under a directory (default: lua, whose
-- lua/aap/sim/init.lua is the module aap.sim): a module that requires one that requires it,
-- directly or through others. Every require("name") outside a comment counts, at the top or
-- inside a function; modules not under the directory (or, given PREFIX, not named PREFIX or
-- PREFIX.*) are left out. Prints each circle as `a -> b -> a` and exits 1 if there is one,
-- else prints how many modules and requires it read and exits 0.
-- Usage: lua5.4 scripts/require-cycles.lua [DIR [PREFIX]]    (e.g. lua aap.sim)
local dir, prefix = arg[1] or "lua", arg[2]

local files = {}
local p = assert(io.popen("find '" .. dir:gsub("'", "'\\''") .. "' -name '*.lua' -type f | LC_ALL=C sort"))
for f in p:lines() do files[#files + 1] = f end
p:close()

-- lua/aap/sim/views/tokens.lua -> aap.sim.views.tokens; lua/aap/sim/init.lua -> aap.sim
local function module_name(path)
  local rel = path:sub(#dir + 2):gsub("%.lua$", ""):gsub("/init$", "")
  return (rel:gsub("/", "."))
end

local edges, names, count = {}, {}, 0
for _, f in ipairs(files) do
  local m = module_name(f)
  if not prefix or m == prefix or m:sub(1, #prefix + 1) == prefix .. "." then names[m] = f end
end
for from, f in pairs(names) do
  local h = assert(io.open(f, "rb"))
  -- comments out (a usage example may name the module itself): block comments, then the
  -- rest of a line from `--` (a string holding `--` may hide a require after it: none do)
  local src = h:read("a"):gsub("%-%-%[(=*)%[.-%]%1%]", ""):gsub("%-%-[^\n]*", "")
  h:close()
  local seen = {}
  edges[from] = {}
  -- require("x"), require 'x', require [[x]] are what the modules use: the first two
  for to in src:gmatch("require%s*%(?%s*[\"']([%w_%.%-]+)[\"']") do
    if names[to] and not seen[to] then
      seen[to] = true
      edges[from][#edges[from] + 1] = to
      count = count + 1
    end
  end
end

-- Depth-first search; a module met again while still on the path closes a circle.
local state, path, circles = {}, {}, {}
local function visit(m)
  state[m] = "open"
  path[#path + 1] = m
  for _, to in ipairs(edges[m]) do
    if state[to] == "open" then
      local from
      for i = #path, 1, -1 do if path[i] == to then from = i break end end
      circles[#circles + 1] = table.concat(path, " -> ", from) .. " -> " .. to
    elseif not state[to] then
      visit(to)
    end
  end
  path[#path] = nil
  state[m] = "done"
end
local order = {}
for m in pairs(edges) do order[#order + 1] = m end
table.sort(order)
for _, m in ipairs(order) do
  if not state[m] then visit(m) end
end

if #circles > 0 then
  for _, c in ipairs(circles) do print("require circle: " .. c) end
  os.exit(1)
end
print(string.format("no require circle: %d modules, %d requires under %s", #order, count, dir))
