# Thin wrapper over CMake and the scripts: the commands the README and CI use.
BUILD    ?= build
CMAKE_FLAGS ?=
LUA      ?= lua5.4

.PHONY: all deps build test demo bench sanitize lint clean rock

all: build

deps:
	@scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -- --no-print-directory

test: deps build
	@scripts/test.sh

demo: deps build
	@scripts/demo.sh

bench: build
	@bench/run.sh

# The same specs against an ASan/UBSan build of aap.so.
sanitize:
	@$(MAKE) --no-print-directory BUILD=build-asan CMAKE_FLAGS="-DAAP_SANITIZE=ON" build
	@AAP_CPATH=build-asan scripts/test.sh --sanitize

lint:
	@luacheck -q lua bin spec
	@cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --std=c99 --inline-suppr -I csrc csrc

rock:
	@scripts/rock.sh

clean:
	rm -rf build build-asan

# Issue #6: the C parsers fuzzed (bounded: FUZZ_SECONDS each, default 30), and the core
# specs under valgrind memcheck. The fault matrix, hygiene and load specs run in `make test`.
.PHONY: fuzz valgrind
fuzz:
	@scripts/fuzz.sh

valgrind: build
	@scripts/valgrind.sh
