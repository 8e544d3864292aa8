# mk/fuzz.mk — libFuzzer targets (tests/fuzz/fuzz_*.c) for the parsers that
# take outside bytes (request canonicalisation, the answer assembler, the
# policy scanner and guard, the HNSW file loader, the SentencePiece and BERT
# tokenizer/safetensors/config.json loaders, the WordNet loader, the config
# file parser), built with Debian's clang 14 against a copy of the
# library compiled with -fsanitize=fuzzer-no-link,address,undefined
# (build/fuzz/, a variant of its own so it never mixes with rel or san).
#
#   make fuzz FUZZ_SECONDS=N   each target for N seconds (default 60) on its
#                              seed corpus (tests/fuzz/corpus/NAME) plus what
#                              earlier runs found (build/fuzz/corpus/NAME);
#                              a crash is written to tests/fuzz/regress/NAME/
#                              to be kept as a regression input
#   make test                  (VARIANT=san) builds build/san/tests/test_fuzz,
#                              which replays every regression input and runs
#                              each target for FUZZ_CHECK_SECONDS (3) seconds
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN   := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
FUZZ_CC    ?= clang
FUZZ_FLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BIN)

# The fuzz library: every module, built by a recursive make in
# VARIANT=fuzz with clang, so its objects land in build/fuzz/.
FUZZ_LIB_SRC := $(LIB_SRC) $(wildcard src/*.cc)
FUZZ_LIB     := build/fuzz/libfuzzllmc.a
ifneq ($(VARIANT),fuzz)
$(FUZZ_LIB): $(FUZZ_LIB_SRC) $(wildcard src/*.h) include/llmcache.h
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory VARIANT=fuzz CC=$(FUZZ_CC) EXTRA_CFLAGS="$(FUZZ_FLAGS)" $(FUZZ_LIB)
else
# Files whose CPU-dispatch builtins clang 14 does not know ("avxvnni",
# "avx512vnni") are compiled by gcc with ASan+UBSan but no coverage: the
# fuzzer is blind inside them, the sanitizers are not.
FUZZ_GCC_SRC := src/embed_q8.c
$(FUZZ_GCC_SRC:%.c=build/fuzz/%.o): override CC := gcc
$(FUZZ_GCC_SRC:%.c=build/fuzz/%.o): override CFLAGS := $(CSTD) $(WARN) -O1 -g -Iinclude -Isrc \
	-pthread -fsanitize=address,undefined -fno-sanitize-recover=undefined
# $(LIB_OBJ): every module's object, with what fragments added (the C++
# sentencepiece wrapper of mk/bert.mk, read before this file).
$(FUZZ_LIB): $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^
endif

# Targets that parse in the daemon link its file too.
FUZZ_EXTRA_config := server/config.c
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB) $(FUZZ_EXTRA_config)
	$(FUZZ_CC) $(CSTD) $(WARN) -Wno-unused-result -g -O1 -Iinclude -Isrc \
		-fsanitize=fuzzer,address,undefined -o $@ $< $(FUZZ_EXTRA_$*) $(FUZZ_LIB) $(LDLIBS) -pthread

fuzz: $(FUZZ_BIN)
	@for n in $(FUZZ_NAMES); do \
		mkdir -p build/fuzz/corpus/$$n tests/fuzz/regress/$$n; \
		echo "fuzz: $$n for $(or $(FUZZ_SECONDS),60) s"; \
		build/fuzz/fuzz_$$n -max_total_time=$(or $(FUZZ_SECONDS),60) -print_final_stats=1 \
			-artifact_prefix=tests/fuzz/regress/$$n/ -max_len=65536 \
			build/fuzz/corpus/$$n tests/fuzz/corpus/$$n 2>&1 | \
			grep -E '^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)' ; \
	done

ifeq ($(VARIANT),san)
$(B)/tests/test_fuzz: scripts/fuzz-check.sh $(FUZZ_BIN)
	@mkdir -p $(dir $@)
	cp scripts/fuzz-check.sh $@
	chmod +x $@
all: $(B)/tests/test_fuzz
endif
