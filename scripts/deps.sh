#!/usr/bin/env bash
# Installs the Debian packages aap needs, by tier, if any is missing:
#   run    running aap from a built checkout or a rock: Lua 5.4, libcurl (with libcrypto),
#          lua-cjson, argparse
#   build  run + the compiler, CMake and headers that build aap.so
#   sim    the emulator (`aap sim`, the demo): LuaSocket, LuaSec, luaossl
#   test   build + sim + what the specs use (busted, curl, jq, openssl, strace, util-linux's
#          setpriv/flock/prlimit, lua-yaml, python3-dotenv, sqlite3 for the reference gateway,
#          systemd-analyze and shellcheck for deploy/, zsh/fish/groff/man for the completions and
#          manual)
#   dev    test + lint, docs, rocks, sanitizers, fuzzing and valgrind (everything .ci/run does)
# `scripts/deps.sh build sim` installs those tiers; no tier named means every tier (.ci/run).
# Other arguments are package names, checked too (bench/run.sh passes its own).
set -euo pipefail
run=(lua5.4 lua-cjson lua-argparse libcurl4 libssl3)
build=(cmake make gcc pkg-config liblua5.4-dev libcurl4-openssl-dev libssl-dev)
sim=(lua-socket lua-sec lua-luaossl)
test=(lua-busted curl jq openssl strace util-linux lua-yaml python3-dotenv sqlite3 systemd
      zsh fish groff-base man-db shellcheck)
dev=(lua-check cppcheck lua-ldoc lua-discount luarocks zip unzip valgrind clang libclang-rt-14-dev)
pkgs=()
tiers=0
for a in "$@"; do
  case "$a" in
    run) pkgs+=("${run[@]}"); tiers=1 ;;
    build) pkgs+=("${run[@]}" "${build[@]}"); tiers=1 ;;
    sim) pkgs+=("${run[@]}" "${sim[@]}"); tiers=1 ;;
    test) pkgs+=("${run[@]}" "${build[@]}" "${sim[@]}" "${test[@]}"); tiers=1 ;;
    dev | all) pkgs+=("${run[@]}" "${build[@]}" "${sim[@]}" "${test[@]}" "${dev[@]}"); tiers=1 ;;
    -*) echo "deps: unknown option $a (tiers: run build sim test dev)" >&2; exit 1 ;;
    *) pkgs+=("$a") ;;
  esac
done
[ "$tiers" -eq 1 ] || pkgs+=("${run[@]}" "${build[@]}" "${sim[@]}" "${test[@]}" "${dev[@]}")
missing=()
for p in $(printf '%s\n' "${pkgs[@]}" | sort -u); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
