#!/usr/bin/env bash
# Builds the libFuzzer harnesses in fuzz/ (clang, ASan + UBSan, csrc/*.c compiled in) and runs
# each for a bounded time over its committed corpus, then the Lua-level .env fuzz.
#   scripts/fuzz.sh                 every harness, FUZZ_SECONDS (default 30) each
#   scripts/fuzz.sh time            one harness
#   scripts/fuzz.sh --merge [name]  also fold new coverage back into fuzz/corpus/ (minimised)
# New inputs go to a scratch directory, so a plain run never touches the committed corpus.
# FUZZ_SEED=N fixes the mutation sequence (CI: a regression-and-smoke run that does not turn
# red at random on a new finding; `make fuzz` explores with a fresh seed each time).
# A crash leaves its input as build-fuzz/crash-* and the script fails.
set -uo pipefail
cd "$(dirname "$0")/.."
merge=0
if [ "${1:-}" = "--merge" ]; then merge=1; shift; fi
secs=${FUZZ_SECONDS:-30}
out=build-fuzz
mkdir -p "$out"
harnesses=("$@")
[ ${#harnesses[@]} -eq 0 ] && harnesses=(time headers token error url)

CC=${CC_FUZZ:-clang}
flags=(-g -O1 -std=c99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -DAAP_VERSION='"0.1.0"'
       -Icsrc -I/usr/include/lua5.4 -I/usr/include/x86_64-linux-gnu)
libs=(-llua5.4 -lcurl -lcrypto -lm)

status=0
for h in "${harnesses[@]}"; do
  src=fuzz/fuzz_$h.c
  [ -f "$src" ] || { echo "fuzz: no harness $src" >&2; exit 1; }
  echo "::: fuzz $h: build"
  if ! "$CC" "${flags[@]}" "$src" csrc/*.c "${libs[@]}" -o "$out/fuzz_$h"; then status=1; continue; fi
  corpus=fuzz/corpus/$h
  scratch=$(mktemp -d)
  mkdir -p "$corpus"
  echo "::: fuzz $h: ${secs}s"
  # -rss_limit_mb: Lua and libcurl are in the process; -timeout: one input, seconds.
  if ! ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
      "$out/fuzz_$h" -max_total_time="$secs" ${FUZZ_SEED:+-seed="$FUZZ_SEED"} -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -print_final_stats=1 -artifact_prefix="$out/crash-$h-" "$scratch" "$corpus" 2>"$out/fuzz_$h.log"; then
    tail -n 60 "$out/fuzz_$h.log" >&2
    echo "::: fuzz $h: FAILED (see $out/fuzz_$h.log; the input is $out/crash-$h-*)" >&2
    status=1
  else
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added)' "$out/fuzz_$h.log" || true
    if [ $merge -eq 1 ]; then
      merged=$(mktemp -d)
      "$out/fuzz_$h" -merge=1 -max_len=4096 "$merged" "$corpus" "$scratch" 2>/dev/null
      rm -rf "$corpus" && mv "$merged" "$corpus"
      echo "::: fuzz $h: corpus now $(ls "$corpus" | wc -l) files"
    fi
  fi
  rm -rf "$scratch"
done

if [ ${#@} -eq 0 ] || printf '%s\n' "$@" | grep -qx env; then
  echo "::: fuzz env (Lua: .env read/edit/write round trip): ${secs}s"
  lua5.4 fuzz/env_fuzz.lua "$secs" ${FUZZ_SEED:+"$FUZZ_SEED"} || status=1
fi
exit $status
