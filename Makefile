# The two commands a newcomer types: `make run` and `make test`.
# Both install missing apt/npm packages first (scripts/deps.sh).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc)
LISTEN     ?= 127.0.0.1:3000
DATA       ?= .tabsync
FUZZ_SECONDS ?= 300

.PHONY: all deps build run test test-unit test-asan test-fuzz fuzz bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Starts tabsyncd with the demo page on the embedded store (memory + the
# SQLite file $(DATA)/tabsync.db, so session histories survive a restart).
# /session is on with a development secret kept in $(BUILD)/dev-secret and
# --dev (tokens from /api/dev/token and `tabsyncd token`): for a machine of
# your own, never for a deployment. scripts/run.sh prints the commands.
run: build
	@BUILD=$(BUILD) LISTEN=$(LISTEN) DATA=$(DATA) scripts/run.sh

# Everything: unit + integration tests on the normal build, the same again
# under ASan+UBSan, then a short bounded fuzz pass of every parser.
test: deps
	@scripts/test.sh

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

fuzz: deps
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DTS_FUZZ=ON -DTS_TESTS=OFF \
	    -DTS_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	@cmake --build $(BUILD_FUZZ) -j$(JOBS)
	cd $(BUILD_FUZZ) && ctest --output-on-failure -L fuzz

# Benchmarks side by side with the Node Socket.IO server; writes docs/BENCHMARKS.md.
bench: deps
	@scripts/bench.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
