#!/usr/bin/env bash
# Installs the Debian packages aap needs to build, test and demo, if any is missing.
# Extra package names given as arguments are checked too (bench/run.sh passes its own).
set -euo pipefail
pkgs=(cmake make gcc pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev
      lua-cjson lua-socket lua-sec lua-luaossl lua-argparse lua-busted lua-check
      luarocks curl jq openssl cppcheck strace lua-yaml python3-dotenv systemd util-linux valgrind sqlite3 clang
      libclang-rt-14-dev zsh fish groff-base man-db "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
