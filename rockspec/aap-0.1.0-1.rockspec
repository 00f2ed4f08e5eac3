-- The library and the `aap` command. The source is the tarball `make dist` writes
-- (build/aap-0.1.0.tar.gz: the files git tracks, under aap-0.1.0/). The URL below is relative
-- to the checkout, which is enough for `luarocks make` here; `make dist` also writes
-- build/aap-0.1.0-1.rockspec with the tarball's absolute URL and MD5, which `luarocks pack`
-- turns into build/aap-0.1.0-1.src.rock (tarball inside) that installs anywhere, offline
-- (`make rock`: scripts/rock.sh). A release publishes that .src.rock, or this file with
-- url = "<release URL>/aap-0.1.0.tar.gz". The emulator (`aap sim`) is the aap-sim rock.
rockspec_format = "3.0"
package = "aap"
version = "0.1.0-1"
source = {
  url = "file://build/aap-0.1.0.tar.gz",
  dir = "aap-0.1.0",
}
description = {
  summary = "Token lifecycle automation for the Ansible Automation Platform gateway API",
  detailed = [[
    Create, look up, refresh, revoke and rotate AAP gateway tokens (personal access tokens and
    OAuth application tokens) and export them to .env files and Kubernetes Secrets. A C core
    (libcurl, libcrypto) under Lua workflows, rotation policies written in Lua, and the `aap`
    command. The local gateway emulator (`aap sim`) is the separate rock aap-sim.
  ]],
  license = "Apache-2.0",
  labels = { "ansible", "aap", "oauth2", "tokens", "libcurl" },
}
dependencies = {
  "lua >= 5.4",
  "lua-cjson >= 2.1",
  "argparse >= 0.7",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    CURL_INCLUDE_DIR = "$(CURL_INCDIR)",
    AAP_INSTALL_SIM = "OFF",
  },
  install = {
    bin = { aap = "bin/aap" },
  },
  copy_directories = { "docs", "examples" },
}
