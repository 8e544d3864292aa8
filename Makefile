# llmcached — build, test, run, bench.
#
# Two build variants share one rule set:
#   VARIANT=rel  (default)  -O2, for `make`, `make run`, `make bench*`
#   VARIANT=san             ASan + UBSan, for `make test` (what CI runs)
# Objects go to build/$(VARIANT)/, so the variants never mix.
#
# Every src/*.c is part of libllmcache; every server/*.c is part of the
# daemon; every tests/unit/test_*.c is a unit-test program that links the
# library. Modules that need more (a tool, a benchmark, an extra binary)
# add a fragment mk/<module>.mk, included below, so that independent
# modules never edit the same lines of this file.

VARIANT ?= rel
B       := build/$(VARIANT)

CC      ?= cc
CXX     ?= c++
WARN    := -Wall -Wextra -Wstrict-prototypes -Wshadow -Wno-unused-parameter -Werror
CSTD    := -std=c11 -D_GNU_SOURCE
ifeq ($(VARIANT),san)
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDSAN   := -fsanitize=address,undefined
else
OPT     := -O2 -g
LDSAN   :=
endif
CFLAGS  := $(CSTD) $(WARN) $(OPT) -Iinclude -Isrc -pthread $(EXTRA_CFLAGS)
LDFLAGS := $(LDSAN) -pthread $(EXTRA_LDFLAGS)
# Only what the library and every binary use; a binary that needs more
# (hiredis for a Redis store backend, say) adds it in its own rule.
LDLIBS  := -levent -levent_pthreads -lcurl -ljansson -lcrypto -lxxhash \
           -lsqlite3 -lopenblas -lm

LIB_SRC    := $(wildcard src/*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
LIB        := $(B)/libllmcache.a
SERVER_SRC := $(wildcard server/*.c)
SERVER_OBJ := $(SERVER_SRC:%.c=$(B)/%.o)
DAEMON     := $(B)/llmcached
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

# Fragments append to these.
BINS       := $(DAEMON)
CHECKS     :=

.DEFAULT_GOAL := all
# Fragments come before `all`, whose prerequisites are expanded when read.
-include mk/*.mk

.SECONDARY:
.PHONY: all deps test check unit integration run bench clean format check-format
all: $(LIB) $(BINS) $(UNIT_BIN)

deps:
	@scripts/deps.sh build

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(DAEMON): $(SERVER_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(SERVER_OBJ) $(LIB) $(LDLIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# `make test`: install what is missing, then build and run everything under
# ASan/UBSan. This is the command CI runs (.ci/run) and the README gives.
test:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory check-format
	@$(MAKE) --no-print-directory VARIANT=san check

check: all
	@scripts/run-tests.sh $(B)

unit: all
	@scripts/run-tests.sh $(B) unit

integration: all
	@scripts/run-tests.sh $(B) integration

# `make run`: the daemon on its embedded defaults (demo upstream unless one
# is configured with LLMCACHED_UPSTREAM or in llmcached.conf).
run:
	@scripts/deps.sh build run
	@$(MAKE) --no-print-directory VARIANT=rel all
	$(DAEMON) $(if $(wildcard llmcached.conf),--config llmcached.conf) $(ARGS)

bench:
	@scripts/deps.sh build bench
	@$(MAKE) --no-print-directory VARIANT=rel all
	@for t in $(BENCHES); do $(MAKE) --no-print-directory $$t || exit 1; done

# Every C file the project owns (generated and third-party files are not in
# git). `make format` rewrites them; `make check-format` fails on the first
# file that differs, and exits non-zero when clang-format itself fails.
C_FILES = $(shell git ls-files '*.c' '*.h' '*.cc')
format:
	clang-format -i $(C_FILES)

check-format:
	@clang-format --dry-run --Werror $(C_FILES) || \
		{ echo "check-format: run 'make format' and commit the result" >&2; exit 1; }

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(UNIT_SRC:%.c=$(B)/%.d)
# Every other object (tools, benchmarks, engine, fuzz harnesses) too, so a
# header change rebuilds what includes it (a stale tool object once read an
# old llmc_cache layout).
-include $(shell find $(B) -name '*.d' 2>/dev/null)
