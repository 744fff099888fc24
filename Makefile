# Backflow build. `make` builds build/backflow; `make test` runs every test;
# `make demo` runs the example; `make asan` runs the unit tests under
# AddressSanitizer + UBSan; `make bench` prints the speed figures.
# `make fuzz-smoke` runs each libFuzzer target briefly and replays the
# regression inputs; `make fuzz` runs each for FUZZ_TIME seconds; `make
# valgrind` runs the unit tests and integration scenarios under valgrind.
# `make install` installs the binary, man page and bash/zsh completions under
# $(DESTDIR)$(PREFIX). CPPFLAGS, CFLAGS and LDFLAGS from the environment or
# the command line are added to Backflow's own (a distribution's hardening
# flags apply); WERROR=1 makes warnings errors (CI sets it).

CC      ?= cc
BUILD   ?= build
PKGS    := sqlite3 libcurl jansson libsodium yaml-0.1 libpq hiredis libmicrohttpd libxxhash libcrypto
OPT     ?= -O2 -g
SAN     ?=
WERROR  ?=
# The version is defined once, in src/cli/version.h.
VERSION := $(shell sed -n 's/^\#define BF_VERSION "\(.*\)"/\1/p' src/cli/version.h)
# Backflow's flags come first so that the user's (later) win where they
# conflict, e.g. CFLAGS=-O3; the user's never replace the required ones.
BF_CFLAGS := -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) \
           -Wshadow -Wno-unused-parameter -Isrc -pthread $(shell pkg-config --cflags $(PKGS)) \
           $(SAN)
ALL_CFLAGS = $(BF_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)
# libunistring (Unicode case mapping, NFC, character properties for the
# identifier normalisers) ships no pkg-config file on Debian, so it is
# named here rather than in PKGS; its headers are in /usr/include.
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lunistring -pthread -lm

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
GENERATED := $(BUILD)/backflow.1 $(BUILD)/completion/backflow.bash $(BUILD)/completion/_backflow

LIB_SRC := $(wildcard src/util/*.c src/spec/*.c src/clients/*.c src/engine/*.c src/sources/*.c src/destinations/*.c src/server/*.c) \
           $(filter-out src/cli/main.c,$(wildcard src/cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c bench/*.c)
TOOL_BIN := $(patsubst %.c,$(BUILD)/tools/%,$(notdir $(TOOL_SRC)))

.PHONY: all deps test unit integration asan integration-asan demo bench clean format check-format check-layers docs \
        fuzz fuzz-smoke fuzz-bins valgrind install uninstall version
all: $(BUILD)/backflow $(GENERATED) $(TOOL_BIN)

version:
	@echo $(VERSION)

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libbackflow.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/backflow: $(BUILD)/obj/src/cli/main.o $(BUILD)/libbackflow.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# The man page and completions are printed by the binary from its command
# table (src/cli/commands.c), so they always match it.
$(BUILD)/backflow.1: $(BUILD)/backflow
	$(BUILD)/backflow --help-man > $@.tmp && mv $@.tmp $@
$(BUILD)/completion/backflow.bash: $(BUILD)/backflow
	@mkdir -p $(dir $@)
	$(BUILD)/backflow --completion bash > $@.tmp && mv $@.tmp $@
$(BUILD)/completion/_backflow: $(BUILD)/backflow
	@mkdir -p $(dir $@)
	$(BUILD)/backflow --completion zsh > $@.tmp && mv $@.tmp $@

install: $(BUILD)/backflow $(GENERATED)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(BASHCOMPDIR) \
	  $(DESTDIR)$(ZSHCOMPDIR)
	install -m 755 $(BUILD)/backflow $(DESTDIR)$(BINDIR)/backflow
	install -m 644 $(BUILD)/backflow.1 $(DESTDIR)$(MANDIR)/man1/backflow.1
	install -m 644 $(BUILD)/completion/backflow.bash $(DESTDIR)$(BASHCOMPDIR)/backflow
	install -m 644 $(BUILD)/completion/_backflow $(DESTDIR)$(ZSHCOMPDIR)/_backflow

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/backflow $(DESTDIR)$(MANDIR)/man1/backflow.1 \
	  $(DESTDIR)$(BASHCOMPDIR)/backflow $(DESTDIR)$(ZSHCOMPDIR)/_backflow

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libbackflow.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libbackflow.a $(ALL_LDFLAGS) $(LDLIBS) -lcriterion

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libbackflow.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libbackflow.a $(ALL_LDFLAGS) $(LDLIBS)
$(BUILD)/tools/%: bench/%.c $(BUILD)/libbackflow.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libbackflow.a $(ALL_LDFLAGS) $(LDLIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t --jobs 2 --timeout 60; done

integration: $(BUILD)/backflow $(TOOL_BIN)
	python3 tests/integration/run.py --binary $(BUILD)/backflow
	BACKFLOW_BIN=$(abspath $(BUILD)/backflow) tests/browser/run.sh

# Expects the packages installed (`make deps`, which .ci/run calls first).
test: check-format check-layers all unit integration asan integration-asan fuzz-smoke
	@echo "all tests passed"

ASAN_MAKE = $(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"

# Unit tests under AddressSanitizer + UBSan + LeakSanitizer. Criterion reports
# a test by its assertions, not by its process's exit status, so a report in
# the output fails the target.
asan:
	@mkdir -p build-asan
	@$(ASAN_MAKE) unit > build-asan/unit.log 2>&1; rc=$$?; cat build-asan/unit.log; \
	if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" build-asan/unit.log; then \
	  echo "asan: sanitizer reports above"; exit 1; fi; exit $$rc

# Every integration, crash and contract test again, with an ASan + UBSan +
# LeakSanitizer backflow: any memory error or leak makes the process exit
# non-zero, which the tests' exit-status assertions catch.
integration-asan:
	$(ASAN_MAKE) build-asan/backflow build-asan/tools/pii_norm
	ASAN_OPTIONS=detect_leaks=1 python3 tests/integration/run.py --binary build-asan/backflow

# libFuzzer targets (tests/fuzz/fuzz_<name>.c), built with clang into
# build-fuzz against the engine compiled with the same sanitizers.
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TIME ?= 600
FUZZ_SMOKE_TIME ?= 20
FUZZ_MAKE = $(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
  OPT="-O1 -g -fno-omit-frame-pointer" \
  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" fuzz-bins

$(BUILD)/fuzz/%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(BUILD)/libbackflow.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/fuzz -fsanitize=fuzzer -o $@ $< $(BUILD)/libbackflow.a $(ALL_LDFLAGS) $(LDLIBS)

fuzz-bins: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)

fuzz:
	@$(FUZZ_MAKE)
	tests/fuzz/run.sh build-fuzz $(FUZZ_TIME) $(FUZZ_TARGETS)

fuzz-smoke:
	@$(FUZZ_MAKE)
	@tests/fuzz/run.sh --smoke build-fuzz $(FUZZ_SMOKE_TIME) $(FUZZ_TARGETS)

# Unit tests and integration scenarios under valgrind memcheck. Criterion
# runs each test in a child whose exit status it does not pass on, so every
# process logs to $(BUILD)/valgrind/ and any non-empty log (a memory error or
# a definite leak) fails the target; integration runs also exit 99 on one.
# bfhelp.Project.run prefixes each backflow command with $$BACKFLOW_VALGRIND.
VALGRIND_OPTS = --quiet --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --error-exitcode=99 --num-callers=30
VALGRIND_SCENARIOS ?= test_core_faults test_core_accounting test_core_privacy_and_errors \
  test_security_ test_core_pushdown
valgrind: $(BUILD)/backflow $(TOOL_BIN) $(UNIT_BIN)
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind
	@for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	  valgrind $(VALGRIND_OPTS) --trace-children=yes \
	    --log-file=$(BUILD)/valgrind/$$(basename $$t).%p.log $$t --jobs 1 --timeout 900 \
	    || echo "FAIL $$t" >>$(BUILD)/valgrind/failures; done
	@for s in $(VALGRIND_SCENARIOS); do echo "== valgrind integration: $$s"; \
	  BACKFLOW_VALGRIND="valgrind $(VALGRIND_OPTS) --log-file=$(abspath $(BUILD))/valgrind/$$s.%p.log" \
	    python3 tests/integration/run.py --binary $(BUILD)/backflow -k $$s \
	    || echo "FAIL $$s" >>$(BUILD)/valgrind/failures; done
	@bad=$$(find $(BUILD)/valgrind -name '*.log' -size +0); \
	for f in $$bad; do echo "== $$f"; cat $$f; done; \
	if [ -n "$$bad" ] || [ -s $(BUILD)/valgrind/failures ]; then \
	  cat $(BUILD)/valgrind/failures 2>/dev/null; echo "valgrind: FAILED"; exit 1; fi; \
	echo "valgrind: no memory errors, no definite leaks ($$(ls $(BUILD)/valgrind | wc -l) processes)"

demo: deps $(BUILD)/backflow
	@scripts/demo.sh $(BUILD)/backflow

# Each script prints its own table; the README quotes them.
bench: $(BUILD)/backflow $(TOOL_BIN)
	python3 bench/run.py --binary $(BUILD)/backflow $(BENCH_ARGS)
	python3 bench/pg_bench.py --binary $(BUILD)/backflow
	python3 bench/crm_bench.py --binary $(BUILD)/backflow
	python3 bench/meta_bench.py --binary $(BUILD)/backflow
	python3 bench/live_bench.py --binary $(BUILD)/backflow
	python3 bench/hooks_bench.py --binary $(BUILD)/backflow
	python3 bench/cloud_bench.py --binary $(BUILD)/backflow
	python3 bench/forget_bench.py --binary $(BUILD)/backflow
	python3 bench/warehouse_diff_bench.py --binary $(BUILD)/backflow

docs: $(BUILD)/backflow
	python3 scripts/gen_docs.py $(BUILD)/backflow

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
# Layers point one way (docs/architecture.md): util < spec < clients <
# sources, destinations < engine < server < cli.
check-layers:
	scripts/check_layers.sh

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-*

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
