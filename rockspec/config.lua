-- LuaRocks configuration for offline installs on Debian: the Lua dependencies come from
-- Debian's packages (lua-cjson, lua-argparse for the aap rock; lua-socket, lua-sec, lua-luaossl
-- for aap-sim), so they are declared as provided, and no server is contacted.
rocks_servers = {}
rocks_provided = {
  ["lua-cjson"] = "2.1.0-1",
  luasocket = "3.0.0-1",
  luasec = "1.2.0-1",
  luaossl = "20220711-0",
  argparse = "0.7.1-1",
}
external_deps_dirs = { "/usr/local", "/usr" }
variables = {
  -- Debian keeps curl/curl.h in the multiarch include directory.
  CURL_INCDIR = "/usr/include/x86_64-linux-gnu",
}
