# Backflow build. `make` builds build/backflow; `make test` runs every test;
# `make demo` runs the example; `make asan` runs the unit tests under
# AddressSanitizer + UBSan; `make bench` prints the speed figures.

CC      ?= cc
BUILD   ?= build
PKGS    := sqlite3 libcurl jansson libsodium yaml-0.1 libpq hiredis libmicrohttpd
OPT     ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -Wshadow \
           -Wno-unused-parameter -Isrc -pthread $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -pthread -lm
SAN     ?=
CFLAGS  += $(SAN)
LDFLAGS += $(SAN)

LIB_SRC := $(wildcard src/core/*.c src/sources/*.c src/destinations/*.c src/server/*.c) \
           $(filter-out src/cli/main.c,$(wildcard src/cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c bench/*.c)
TOOL_BIN := $(patsubst %.c,$(BUILD)/tools/%,$(notdir $(TOOL_SRC)))

.PHONY: all deps test unit integration asan demo bench clean format check-format
all: $(BUILD)/backflow $(TOOL_BIN)

deps:
	@scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libbackflow.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/backflow: $(BUILD)/obj/src/cli/main.o $(BUILD)/libbackflow.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libbackflow.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libbackflow.a $(LDFLAGS) $(LDLIBS) -lcriterion

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libbackflow.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libbackflow.a $(LDFLAGS) $(LDLIBS)
$(BUILD)/tools/%: bench/%.c $(BUILD)/libbackflow.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libbackflow.a $(LDFLAGS) $(LDLIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t --jobs 2 --timeout 60; done

integration: $(BUILD)/backflow $(TOOL_BIN)
	python3 tests/integration/run.py --binary $(BUILD)/backflow

test: deps all unit integration
	@echo "all tests passed"

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" unit

demo: deps $(BUILD)/backflow
	@scripts/demo.sh $(BUILD)/backflow

bench: $(BUILD)/backflow $(TOOL_BIN)
	python3 bench/run.py --binary $(BUILD)/backflow $(BENCH_ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
