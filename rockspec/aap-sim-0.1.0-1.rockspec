-- The gateway emulator, `aap sim` (lua/aap/sim): from the same tarball as the aap rock (see
-- rockspec/aap-0.1.0-1.rockspec for how the source is found and packed). Only the emulator needs
-- LuaSocket, LuaSec and luaossl, so the library rock does not.
rockspec_format = "3.0"
package = "aap-sim"
version = "0.1.0-1"
source = {
  url = "file://build/aap-0.1.0.tar.gz",
  dir = "aap-0.1.0",
}
description = {
  summary = "A local emulator of the AAP gateway's token API, for `aap sim`",
  detailed = [[
    The gateway emulator the aap tests, benchmarks and demo run against: routes, error bodies,
    OAuth2 refresh and revocation, pagination, a clock that jumps, injected faults. Run it as
    `aap sim` (the aap rock's command) or require("aap.sim").main{...}.
  ]],
  license = "Apache-2.0",
  labels = { "ansible", "aap", "emulator", "testing" },
}
dependencies = {
  "lua >= 5.4",
  "aap == 0.1.0",
  "lua-cjson >= 2.1",
  "argparse >= 0.7",
  "luasocket >= 3.0",
  "luasec >= 1.0",
  "luaossl >= 20161208",
}
build = {
  type = "builtin",
  modules = {
    ["aap.sim"] = "lua/aap/sim/init.lua",
    ["aap.sim.auth"] = "lua/aap/sim/auth.lua",
    ["aap.sim.codec"] = "lua/aap/sim/codec.lua",
    ["aap.sim.controls"] = "lua/aap/sim/controls.lua",
    ["aap.sim.fields"] = "lua/aap/sim/fields.lua",
    ["aap.sim.gateway"] = "lua/aap/sim/gateway.lua",
    ["aap.sim.json"] = "lua/aap/sim/json.lua",
    ["aap.sim.lists"] = "lua/aap/sim/lists.lua",
    ["aap.sim.oauth"] = "lua/aap/sim/oauth.lua",
    ["aap.sim.request"] = "lua/aap/sim/request.lua",
    ["aap.sim.respond"] = "lua/aap/sim/respond.lua",
    ["aap.sim.routes"] = "lua/aap/sim/routes.lua",
    ["aap.sim.server"] = "lua/aap/sim/server.lua",
    ["aap.sim.store"] = "lua/aap/sim/store.lua",
    ["aap.sim.views.applications"] = "lua/aap/sim/views/applications.lua",
    ["aap.sim.views.common"] = "lua/aap/sim/views/common.lua",
    ["aap.sim.views.organizations"] = "lua/aap/sim/views/organizations.lua",
    ["aap.sim.views.roots"] = "lua/aap/sim/views/roots.lua",
    ["aap.sim.views.tokens"] = "lua/aap/sim/views/tokens.lua",
    ["aap.sim.views.users"] = "lua/aap/sim/views/users.lua",
  },
}
