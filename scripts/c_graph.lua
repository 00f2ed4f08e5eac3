-- The C core's file graph from its object files: which file calls (or reads) what another
-- defines, by the symbols `nm` lists (a file's undefined globals against the others' defined
-- ones). Issue #14: no cycle - a part never calls back into what calls it (docs/design.md draws
-- the graph). Prints one line a file ("a.c -> b.c, c.c"), then the verdict; exits 1 on a cycle.
--
--   lua5.4 scripts/c_graph.lua [OBJDIR [SRCDIR]]   (default build/CMakeFiles/aap.dir/csrc, csrc)
-- Objects whose source is no longer in SRCDIR (left by an earlier build) are not read.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local dir, src = arg[1] or "build/CMakeFiles/aap.dir/csrc", arg[2] or (arg[1] == nil and "csrc" or nil)

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local files, defined, uses = {}, {}, {}
for _, path in ipairs(lines("ls " .. q(dir) .. "/*.o 2>/dev/null | LC_ALL=C sort")) do
  local name = path:match("([^/]+)%.o$")
  local f = src and io.open(src .. "/" .. name) or nil
  if f then f:close() end
  if src and not f then goto next end
  files[#files + 1] = name
  uses[name] = {}
  for _, l in ipairs(lines("nm -g --defined-only " .. q(path))) do
    local sym = l:match("^%x+ %a (%S+)$")
    if sym then defined[sym] = name end
  end
  for _, l in ipairs(lines("nm -u " .. q(path))) do
    local sym = l:match("^%s+U (%S+)$")
    if sym then uses[name][#uses[name] + 1] = sym end
  end
  ::next::
end
if #files == 0 then
  print("no object files in " .. dir .. ": build first (make build)")
  os.exit(2)
end

local edges = {}
for _, f in ipairs(files) do
  local seen, list = {}, {}
  for _, sym in ipairs(uses[f]) do
    local to = defined[sym]
    if to and to ~= f and not seen[to] then seen[to], list[#list + 1] = true, to end
  end
  table.sort(list)
  edges[f] = list
  print(("%s -> %s"):format(f, #list > 0 and table.concat(list, ", ") or "(none)"))
end

local cycles = {}
for _, c in ipairs(require("graph").cycles(files, edges)) do cycles[#cycles + 1] = table.concat(c, ", ") end
if #cycles == 0 then
  print(("ok: %d files, no cycle"):format(#files))
  os.exit(0)
end
for _, c in ipairs(cycles) do print("BROKEN: cycle: " .. c) end
os.exit(1)
