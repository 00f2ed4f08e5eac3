rockspec_format = "3.0"
package = "aap"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout: `luarocks --lua-version=5.4 make rockspec/aap-scm-1.rockspec`
}
description = {
  summary = "Token lifecycle automation for the Ansible Automation Platform gateway API",
  detailed = [[
    Create, look up, refresh, revoke and rotate AAP gateway tokens (personal access tokens and
    OAuth application tokens) and export them to .env files and Kubernetes Secrets. A C core
    (libcurl) under Lua workflows, rotation policies written in Lua, the `aap` command, and a
    local gateway emulator (`aap sim`).
  ]],
  license = "Apache-2.0",
  labels = { "ansible", "aap", "oauth2", "tokens", "libcurl" },
}
dependencies = {
  "lua >= 5.4",
  "lua-cjson >= 2.1",
  "luasocket >= 3.0",
  "luasec >= 1.0",
  "luaossl >= 20161208",
  "argparse >= 0.7",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    CURL_INCLUDE_DIR = "$(CURL_INCDIR)",
  },
  install = {
    bin = { aap = "bin/aap" },
  },
  copy_directories = { "docs", "examples" },
}
