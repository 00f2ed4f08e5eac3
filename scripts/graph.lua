-- What scripts/require_graph.lua and scripts/c_graph.lua share: the cycles of a directed graph
-- (Tarjan's strongly connected components; one of more than one node is a cycle).
local M = {}

--- The cycles among `nodes` (a sorted list) by `edges` (node -> list of nodes): a list of
-- sorted lists of nodes.
function M.cycles(nodes, edges)
  local index, low, onstack, stack, counter, out = {}, {}, {}, {}, 0, {}
  local function strong(v)
    counter = counter + 1
    index[v], low[v] = counter, counter
    stack[#stack + 1], onstack[v] = v, true
    for _, w in ipairs(edges[v] or {}) do
      if not index[w] then
        strong(w)
        low[v] = math.min(low[v], low[w])
      elseif onstack[w] then
        low[v] = math.min(low[v], index[w])
      end
    end
    if low[v] == index[v] then
      local comp = {}
      repeat
        local w = table.remove(stack)
        onstack[w] = nil
        comp[#comp + 1] = w
      until w == v
      if #comp > 1 then
        table.sort(comp)
        out[#out + 1] = comp
      end
    end
  end
  for _, v in ipairs(nodes) do
    if not index[v] then strong(v) end
  end
  return out
end

return M
