#!/usr/bin/env bash
# make bench: installs what the benchmarks need (if missing), builds bench/rawcurl, runs every
# benchmark against loopback servers it starts itself, and rewrites docs/benchmarks.md and
# docs/benchmarks.png. `bench/run.sh --quick` does fewer repetitions (for trying the harness;
# its figures are not for the docs, so it writes build/bench/benchmarks.md instead).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD:-build}

# What the benchmarks need beyond the project's own packages (scripts/deps.sh checks both).
scripts/deps.sh nginx libnginx-mod-http-echo gnuplot-nox hyperfine time valgrind linux-perf
[ -f "$build/aap.so" ] || { echo "bench: $build/aap.so missing: run make bench (it builds first)" >&2; exit 1; }

mkdir -p "$build/bench"
# shellcheck disable=SC2046
cc -std=c99 -O2 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
  -o "$build/bench/rawcurl" bench/rawcurl.c $(pkg-config --cflags --libs libcurl)
# The delaying proxy of the remote-gateway benchmark (no libraries: poll() and a timed queue).
cc -std=c99 -O2 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
  -o "$build/bench/delayproxy" bench/delayproxy.c

export AAP_ROOT=$root AAP_BUILD=$root/$build
exec lua5.4 bench/run.lua "$@"
