#!/usr/bin/env bash
# Installs the rock offline into a throwaway tree (or $1) and checks that it loads from there.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-$(mktemp -d /tmp/aap-rock.XXXXXX)}
mkdir -p "$tree"
arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
cfg=$(mktemp /tmp/aap-luarocks.XXXXXX.lua)
sed "s#/usr/include/x86_64-linux-gnu#/usr/include/$arch#" rockspec/config.lua > "$cfg"
export LUAROCKS_CONFIG="$cfg"
luarocks --lua-version=5.4 --tree="$tree" make rockspec/aap-scm-1.rockspec >"$tree/.build.log" 2>&1 ||
  { cat "$tree/.build.log" >&2; exit 1; }
eval "$(luarocks --lua-version=5.4 --tree="$tree" path)"
cd /
lua5.4 -e 'local aap = require("aap"); assert(aap.connect, "aap.connect missing"); print("require(\"aap\") " .. aap._VERSION .. " from " .. package.searchpath("aap", package.cpath))'
"$tree/bin/aap" --version
rm -f "$cfg"
echo "rock installed in $tree"
