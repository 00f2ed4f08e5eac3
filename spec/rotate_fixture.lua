--- The fixture the rotation specs share (rotate, rotate_crash, rotate_examples, prune): one
-- emulator for the file, reset before each test, with a fresh directory and env file path.
--
--     local fx = require("rotate_fixture").new({ "--access-lifetime", "31536000" })
--     setup(fx.start) teardown(fx.stop) before_each(fx.fresh) after_each(helper.cleanup)
--
-- `fx.sim`, `fx.dir` and `fx.env_path` (`fx.dir .. "/.env"`) are set by those hooks; the rest
-- are functions over them.
local helper = require("helper")
local envfile = require("aap.env")
local cjson = require("cjson.safe")

local M = {}

--- A fixture whose emulator starts with `sim_args` (a list of `aap sim` arguments, or nil).
function M.new(sim_args)
  local fx = {}

  function fx.start() fx.sim = helper.start_sim({ args = sim_args }) end
  function fx.stop() fx.sim:stop() end
  function fx.fresh()
    fx.sim:reset()
    fx.dir = helper.tmpdir()
    fx.env_path = fx.dir .. "/.env"
  end

  --- The admin's environment for bin/aap (AAP_HOSTNAME, AAP_PASSWORD), plus `extra`.
  function fx.admin_env(extra)
    local e = { AAP_HOSTNAME = fx.sim.url, AAP_PASSWORD = helper.ADMIN_PASSWORD }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end

  --- Runs bin/aap with `env` (default: the admin's) and `stdin`.
  function fx.aap(argv, env, stdin)
    return helper.run(argv, { env = env or fx.admin_env(), stdin = stdin })
  end

  --- `aap token rotate --env-file ENV_PATH` with `args` added.
  function fx.rotate(args, env)
    local argv = { "token", "rotate", "--env-file", fx.env_path }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return fx.aap(argv, env)
  end

  --- The value of `key` in the env file at `path` (default: ENV_PATH).
  function fx.get(key, path)
    return assert(envfile.read(path or fx.env_path)):get(key)
  end

  --- Writes a policy file into the test's directory (`name`, default policy.lua); returns its path.
  function fx.policy(text, name)
    local p = fx.dir .. "/" .. (name or "policy.lua")
    helper.writefile(p, text)
    return p
  end

  --- The env file's state file, decoded, and its text (nil when there is none).
  function fx.state()
    local text = helper.readfile(fx.env_path .. ".aap-state.json")
    return text and cjson.decode(text), text
  end

  --- The emulator's tokens (Sim:token_ids), whether a value works, and a value's token id.
  function fx.server_tokens(filter) return fx.sim:token_ids(filter) end
  function fx.works(value) return fx.sim:token_works(value) end
  function fx.token_id(value) return fx.sim:token_id(value) end

  return fx
end

return M
