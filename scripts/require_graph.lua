-- The graph of the modules under lua/ as their code names each other, and the rules it keeps
-- (issue #14): no circle at all; no command module (aap.commands.*) names aap.cli or another
-- command module but aap.commands.common; a module names only its own layer or those below
-- (LAYERS), and the emulator only itself.
--
-- Every `require` counts, top-level or inside a function (a lazy require is an edge too), and
-- so does any other string literal that is exactly a module's name (aap.cli's list of the
-- command modules it loads with pcall(require, name)). Comments are not code: a module named
-- in one is no edge. Prints one line a module ("M -> A, B"), then the verdict; exits 1 when a
-- rule is broken.
--
--   lua5.4 scripts/require_graph.lua [ROOT]        (ROOT: the checkout, default .)
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local root = arg[1] or "."

-- The string literals of Lua source, comments and long strings understood (a `--` inside a
-- string is not a comment; a module name inside a comment is not a literal).
local function literals(src)
  local out, i, n = {}, 1, #src
  local function long_bracket(at)
    local eq = src:match("^%[(=*)%[", at)
    if not eq then return nil end
    local close = "]" .. eq .. "]"
    local s = at + #eq + 2
    local e = src:find(close, s, true)
    if not e then return n + 1, src:sub(s) end
    return e + #close, src:sub(s, e - 1)
  end
  while i <= n do
    local c = src:sub(i, i)
    if src:sub(i, i + 1) == "--" then
      local nxt = long_bracket(i + 2)
      if nxt then i = nxt else i = (src:find("\n", i, true) or n) + 1 end
    elseif c == '"' or c == "'" then
      local j, buf = i + 1, {}
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then buf[#buf + 1] = src:sub(j, j + 1); j = j + 2
        elseif d == c then break
        else buf[#buf + 1] = d; j = j + 1 end
      end
      out[#out + 1] = table.concat(buf)
      i = j + 1
    elseif c == "[" and src:match("^%[=*%[", i) then
      local nxt, text = long_bracket(i)
      out[#out + 1] = text
      i = nxt
    else
      i = i + 1
    end
  end
  return out
end

-- The modules: name -> path.
local modules, names = {}, {}
local p = assert(io.popen("cd '" .. root .. "' && find lua -name '*.lua' | LC_ALL=C sort"))
for path in p:lines() do
  local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
  modules[name] = path
  names[#names + 1] = name
end
p:close()
table.sort(names)

-- The edges: name -> sorted list of the modules it names.
local edges = {}
for _, name in ipairs(names) do
  local f = assert(io.open(root .. "/" .. modules[name]))
  local src = f:read("a")
  f:close()
  local seen, list = {}, {}
  for _, s in ipairs(literals(src)) do
    if modules[s] and s ~= name and not seen[s] then
      seen[s] = true
      list[#list + 1] = s
    end
  end
  table.sort(list)
  edges[name] = list
end

for _, name in ipairs(names) do
  print(("%s -> %s"):format(name, #edges[name] > 0 and table.concat(edges[name], ", ") or "(none)"))
end

local broken = {}

-- Circles.
for _, c in ipairs(require("graph").cycles(names, edges)) do
  broken[#broken + 1] = "circle: " .. table.concat(c, ", ")
end

-- The command modules: the library and aap.commands.common, nothing of the CLI's.
for _, name in ipairs(names) do
  if name:match("^aap%.commands%.") then
    for _, dep in ipairs(edges[name]) do
      if dep == "aap.cli" or (dep:match("^aap%.commands%.") and dep ~= "aap.commands.common") then
        broken[#broken + 1] = ("%s names %s"):format(name, dep)
      end
    end
  end
end

-- The layers (docs/design.md, "Layers"), top to bottom: a module names only modules of its own
-- layer or below. The emulator is beside them: it names nothing of aap's but itself.
local LAYERS = {
  { "command", { "^aap%.cli$", "^aap%.clidoc$", "^aap%.commands%." } },
  { "workflow", { "^aap%.rotate$", "^aap%.rotate%.", "^aap%.policy$", "^aap%.sandbox$", "^aap%.workflow$",
                  "^aap%.apps$", "^aap%.export$", "^aap%.report$", "^aap%.duration$" } },
  { "base", { "^aap%.env$", "^aap%.state$", "^aap%.trust$", "^aap%.config$", "^aap%.errors$" } },
}
local function layer_of(name)
  for i, l in ipairs(LAYERS) do
    for _, pat in ipairs(l[2]) do
      if name:match(pat) then return i end
    end
  end
end
for _, name in ipairs(names) do
  local sim = name == "aap.sim" or name:match("^aap%.sim%.") ~= nil
  local li = layer_of(name)
  if not sim and not li then broken[#broken + 1] = ("%s is in no layer (add it to LAYERS)"):format(name) end
  for _, dep in ipairs(edges[name]) do
    local dsim = dep == "aap.sim" or dep:match("^aap%.sim%.") ~= nil
    if sim and not dsim then
      broken[#broken + 1] = ("%s (the emulator) names %s"):format(name, dep)
    elseif li and not dsim then
      local dl = layer_of(dep)
      if dl and dl < li then
        broken[#broken + 1] = ("%s (%s layer) names %s, of the %s layer above it"):format(name, LAYERS[li][1], dep,
          LAYERS[dl][1])
      end
    end
  end
end

if #broken == 0 then
  print(("ok: %d modules, no circle; the command modules name neither aap.cli nor each other; every module "
    .. "names only its own layer or those below"):format(#names))
  os.exit(0)
end
for _, b in ipairs(broken) do print("BROKEN: " .. b) end
os.exit(1)
