# Thin wrapper over CMake and the scripts: the commands the README and CI use.
BUILD    ?= build
CMAKE_FLAGS ?=
LUA      ?= lua5.4

.PHONY: all deps build test demo bench sanitize lint clean rock dist docs reliability

all: build

# Every tier of scripts/deps.sh (run, build, sim, test, dev); `make test` and `make demo` install theirs.
deps:
	@scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -- --no-print-directory

test:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory build
	@scripts/test.sh

# The demo builds aap and runs the emulator (`aap sim`): the build and sim tiers, no test tools.
demo:
	@scripts/deps.sh build sim
	@$(MAKE) --no-print-directory build
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

# build/aap-VERSION.tar.gz (CMakeLists.txt's AAP_VERSION): every file git tracks, as it is in
# the working tree, under aap-VERSION/ - the source of both rocks - and the rockspecs that
# `luarocks pack` uses (build/*.rockspec). Same bytes for the same tree.
dist:
	@scripts/dist.sh

# Packs both rocks from that tarball and installs them offline into a throwaway tree.
rock:
	@scripts/rock.sh

# LDoc HTML of the Lua modules and the C core's API (config.ld) in build/docs; any warning fails.
docs:
	@scripts/deps.sh lua-ldoc lua-discount run
	@rm -rf $(BUILD)/docs
	@ldoc --fatalwarnings -q -d $(BUILD)/docs . && echo "docs: $(BUILD)/docs/index.html"

# docs/reliability.md's fault matrix, rewritten from a complete run of the fault matrix spec
# (a plain `make test` only leaves the observed matrix in build/fault-matrix.md).
reliability: build
	@AAP_UPDATE_DOCS=1 AAP_REFERENCE=0 scripts/test.sh spec/fault_matrix_spec.lua

clean:
	rm -rf build build-asan

# Issue #6: the C parsers fuzzed (bounded: FUZZ_SECONDS each, default 30), and the core
# specs under valgrind memcheck. The fault matrix, hygiene and load specs run in `make test`.
.PHONY: fuzz valgrind
fuzz:
	@scripts/fuzz.sh

valgrind: build
	@scripts/valgrind.sh
