#!/usr/bin/env bash
# The core specs (spec/core_*_spec.lua: the Lua API over aap.so, in-process) under valgrind
# memcheck, with an aggressive garbage collector, so that every __gc/__close path of
# sessions, tokens, errors and locks runs while memcheck watches.
#   scripts/valgrind.sh                  the core specs
#   scripts/valgrind.sh spec/x_spec.lua  other specs (in-process code only: see below)
# Errors and definite/indirect leaks fail the run (--error-exitcode=1). Only the busted
# process (lua5.4 + aap.so + libcurl + OpenSSL) runs under valgrind: the emulator and any
# `bin/aap` subprocess a spec starts are not traced (--trace-children=no).
# scripts/valgrind.supp holds the suppressions: only lua5.4, libcurl and OpenSSL internals,
# each documented there. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
specs=("$@")
[ ${#specs[@]} -eq 0 ] && specs=(spec/core_*_spec.lua spec/fault_bodies_spec.lua)
make --no-print-directory build >/dev/null || exit 1
log=$(mktemp)
vlog=$(mktemp)
trap 'rm -f "$log" "$vlog"' EXIT
# A GC cycle starts as soon as the previous one ends (pause 0), in large steps.
export LUA_INIT_5_4="${LUA_INIT_5_4:-collectgarbage('incremental', 0, 400)}"
# --ignore-lua: stay in this lua5.4 process (.busted would re-exec one valgrind cannot see).
valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
  --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --suppressions=scripts/valgrind.supp --num-callers=30 --log-file="$vlog" \
  lua5.4 /usr/bin/busted --ignore-lua -o TAP "${specs[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost" "$vlog"
passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^not ok ' "$log")
if [ "$rc" -ne 0 ]; then
  if grep -q "ERROR SUMMARY: [1-9]" "$vlog"; then
    echo "valgrind found errors:" >&2
    sed -n '/^==[0-9]*== [A-Z].*\(Invalid\|uninitialised\|Conditional\|definitely\|indirectly\|Mismatched\|free\)/,/^==[0-9]*== $/p' \
      "$vlog" | head -n 200 >&2
  fi
  [ "$failed" -eq 0 ] && failed=1
fi
[ "$passed" -eq 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "(under valgrind memcheck: ${specs[*]})"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
