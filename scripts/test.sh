#!/usr/bin/env bash
# Runs every spec under Lua 5.4 and ends with one line: "N passed, N failed".
# Extra arguments go to busted (e.g. a spec file, or --filter).
set -uo pipefail
cd "$(dirname "$0")/.."
san=0
log=$(mktemp)
wrap=""
trap 'rm -f "$log"; [ -n "$wrap" ] && rm -rf "$wrap"' EXIT
if [ "${1:-}" = "--sanitize" ]; then
  san=1; shift
  # The host lua5.4 is not instrumented: it must load the sanitizer runtime first.
  # Only lua5.4 gets it (busted, bin/aap, the emulator - all found through PATH), by
  # running it through the dynamic loader's --preload: an LD_PRELOAD variable would be
  # inherited by every child, and the curl binary hangs with ASan preloaded.
  # Absolute AAP_CPATH: children may run from another directory.
  real=$(command -v lua5.4)
  interp=$(readelf -l "$real" 2>/dev/null | sed -n 's/.*interpreter: \(.*\)]$/\1/p')
  preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  wrap=$(mktemp -d)
  chmod 755 "$wrap"   # specs run some commands as nobody
  printf '#!/bin/sh\nexec "%s" --preload "%s" "%s" "$@"\n' \
    "${interp:-/lib64/ld-linux-x86-64.so.2}" "$preload" "$real" > "$wrap/lua5.4"
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  chmod 755 "$wrap/lua5.4"
  export PATH="$wrap:$PATH"
  case "${AAP_CPATH:-}" in /*) ;; ?*) export AAP_CPATH="$PWD/$AAP_CPATH" ;; esac
fi
# The reference gateway (../shared/reference-gateway: the real token API code), started once for
# the whole run; spec/reference.lua attaches to it. Absent (someone else's clone): the reference
# specs say they are skipped; under CI=true that is a failure. AAP_REFERENCE=0 leaves it and its
# specs out on purpose.
ref_pid=""
REF_UP=${AAP_REFERENCE_GATEWAY:-$PWD/../shared/reference-gateway}/up.sh
if [ -z "${AAP_REFERENCE_URL:-}" ] && [ -f "$REF_UP" ] && [ "${AAP_REFERENCE:-1}" != 0 ]; then
  if read -r ref_url ref_pid ref_dir < <(bash "$REF_UP"); then
    cp "$ref_dir/gateway.sqlite3" "$ref_dir/pristine.sqlite3"
    export AAP_REFERENCE_URL=$ref_url AAP_REFERENCE_DIR=$ref_dir
    echo "reference gateway: $ref_url (pid $ref_pid)"
  else
    echo "reference gateway: up.sh failed" >&2
    ref_pid=""
    [ "${CI:-}" = true ] && { echo "0 passed, 1 failed"; exit 1; }
  fi
fi
stop_ref() { [ -n "$ref_pid" ] && kill "$ref_pid" 2>/dev/null && rm -rf "$ref_dir"; ref_pid=""; }
trap 'stop_ref; rm -f "$log"; [ -n "$wrap" ] && rm -rf "$wrap"' EXIT
exclude=()
if [ "${AAP_REFERENCE:-1}" = 0 ]; then
  # Left out on purpose: the specs that need the reference gateway are not run at all.
  exclude=(--exclude-pattern=reference_ --exclude-pattern=differential_)
  echo "reference gateway: left out (AAP_REFERENCE=0); its specs are not run"
fi
busted --lua=lua5.4 -o TAP "${exclude[@]}" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep '^ok ' "$log" | grep -vc '# SKIP')
skipped=$(grep '^ok ' "$log" | grep -c '# SKIP')
failed=$(grep -c '^not ok ' "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # busted died before reporting (a spec that failed to load, a crash): count it.
  failed=1
fi
[ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && failed=1
if [ "$skipped" -gt 0 ]; then
  echo "skipped (pending):"
  grep '^ok .*# SKIP' "$log" | sed 's/^ok [0-9]* - /  /'
fi
[ $san -eq 1 ] && echo "(under ASan/UBSan)"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
