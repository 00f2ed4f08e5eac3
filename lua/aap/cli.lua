--- The `aap` command. (Skeleton: the sub-commands land with the workflows.)
local M = {}

function M.main(argv)
  argv = argv or {}
  if argv[1] == "sim" then
    local rest = {}
    for i = 2, #argv do rest[#rest + 1] = argv[i] end
    return require("aap.sim").main(rest)
  end
  io.stderr:write("aap: the command-line interface is not built yet\n")
  return 1
end

return M
