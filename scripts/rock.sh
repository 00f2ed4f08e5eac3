#!/usr/bin/env bash
# Packs the two rocks from `make dist`'s tarball and rockspecs (luarocks pack:
# build/aap-VERSION-1.src.rock, build/aap-sim-VERSION-1.src.rock), installs them offline into a throwaway tree (or $1) and
# checks what each brings: the aap rock installs with only Lua, libcurl, libcrypto, lua-cjson
# and argparse provided (no LuaSocket, LuaSec or luaossl), loads, and its `aap sim` says the
# emulator is not installed; with aap-sim, `aap sim` serves.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*AAP_VERSION="\([^"]*\)".*/\1/p' CMakeLists.txt)
tarball=$(scripts/dist.sh)
tree=${1:-$(mktemp -d /tmp/aap-rock.XXXXXX)}
mkdir -p "$tree"
tree=$(cd "$tree" && pwd)
arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
work=$(mktemp -d /tmp/aap-rockcfg.XXXXXX)
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ]; then kill -TERM "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "rock: $*" >&2; exit 1; }
run() { # log name, command...: quiet unless it fails
  local log=$work/$1.log; shift
  "$@" >"$log" 2>&1 || { cat "$log" >&2; fail "failed: $*"; }
}

# Every emulator module is in the aap-sim rock (a new file there, views/ included, must be added to it).
while IFS= read -r f; do
  grep -q "\"$f\"" "rockspec/aap-sim-$version-1.rockspec" || fail "$f is not in rockspec/aap-sim-$version-1.rockspec"
done < <(find lua/aap/sim -name '*.lua' | LC_ALL=C sort)

# Two configurations: the library's (only lua-cjson and argparse provided by Debian) and the
# emulator's (rockspec/config.lua: LuaSocket, LuaSec and luaossl too).
sed "s#/usr/include/x86_64-linux-gnu#/usr/include/$arch#" rockspec/config.lua > "$work/full.lua"
lua5.4 -e '
  local src = io.read("a")
  for _, m in ipairs({ "luasocket", "luasec", "luaossl" }) do
    src = assert(src:gsub("\n%s*" .. m .. " = [^\n]*", "", 1))
  end
  io.write(src)' <"$work/full.lua" >"$work/lib.lua"
! grep -Eq '^ *(luasocket|luasec|luaossl) =' "$work/lib.lua" || fail "could not drop the emulator's rocks from the library config"

# luarocks pack fetches source.url: the rockspecs dist.sh wrote, whose URL is absolute.
for r in aap aap-sim; do
  (cd build && LUAROCKS_CONFIG=$work/full.lua run "pack-$r" luarocks --lua-version=5.4 pack "$r-$version-1.rockspec")
  unzip -l "build/$r-$version-1.src.rock" | grep -q "$(basename "$tarball")" || fail "$r's src.rock lacks the tarball"
done
echo "packed build/aap-$version-1.src.rock and build/aap-sim-$version-1.src.rock from $tarball"

# The library rock, with none of the emulator's dependencies available.
LUAROCKS_CONFIG=$work/lib.lua run install-aap \
  luarocks --lua-version=5.4 --tree="$tree" install "build/aap-$version-1.src.rock"
[ ! -e "$tree/share/lua/5.4/aap/sim" ] || fail "the aap rock installed the emulator's modules"
eval "$(LUAROCKS_CONFIG=$work/lib.lua luarocks --lua-version=5.4 --tree="$tree" path)"
(
  cd /
  lua5.4 -e 'local aap = require("aap"); assert(aap.connect and aap.sha256, "aap.connect/aap.sha256 missing")
    assert(require("aap.state").fingerprint("abc") == "ba7816bf8f01cfea")
    print("require(\"aap\") " .. aap._VERSION .. " from " .. package.searchpath("aap", package.cpath))'
  "$tree/bin/aap" --version
  set +e
  msg=$("$tree/bin/aap" sim 2>&1 </dev/null); rc=$?
  set -e
  [ "$rc" -eq 1 ] || fail "aap sim without aap-sim exited $rc, not 1: $msg"
  case "$msg" in "aap: "*aap-sim*) echo "without aap-sim: $msg" ;; *) fail "aap sim without aap-sim said: $msg" ;; esac
)

# The emulator rock on top: `aap sim` serves on loopback.
LUAROCKS_CONFIG=$work/full.lua run install-aap-sim \
  luarocks --lua-version=5.4 --tree="$tree" install "build/aap-sim-$version-1.src.rock"
mkfifo "$work/url"
(cd / && exec "$tree/bin/aap" sim --port 0 --admin-password rock-check >"$work/url" 2>"$work/sim.log") &
sim_pid=$!
read -r url <"$work/url" || fail "aap sim printed no URL: $(cat "$work/sim.log")"
code=$(curl -s -o /dev/null -w '%{http_code}' -u admin:rock-check "$url/api/gateway/v1/me/")
[ "$code" = 200 ] || fail "aap sim from the rock answered $code on me/"
echo "aap sim from the aap-sim rock serves at $url"
echo "rocks installed in $tree"
