#!/usr/bin/env bash
# Runs every spec under Lua 5.4 and ends with one line: "N passed, N failed".
# Extra arguments go to busted (e.g. a spec file, or --filter).
set -uo pipefail
cd "$(dirname "$0")/.."
san=0
if [ "${1:-}" = "--sanitize" ]; then
  san=1; shift
  # The host lua5.4 is not instrumented: preload the runtime so aap.so can use it.
  export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
busted --lua=lua5.4 -o TAP "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^not ok ' "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # busted died before reporting (a spec that failed to load, a crash): count it.
  failed=1
fi
[ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && failed=1
[ $san -eq 1 ] && echo "(under ASan/UBSan)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
