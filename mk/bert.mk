# mk/bert.mk — the BERT embedder (src/embed_bert.c) and its benchmark.
#
# The backend needs ICU's common library for Unicode categories, case
# mapping and NFD (BERT's tokenizer). tests/unit/test_embed_bert.c builds its
# PyTorch reference itself (tests/embed_bert/make_ref.py) under $(B)/bert-ref.
# `make bench-bert` times the backend against PyTorch on a random-weight
# encoder of all-MiniLM-L6-v2's shape, in the same run, and prints ratios.
LDLIBS += -licuuc

BENCH_BERT := $(B)/bench_bert
BINS += $(BENCH_BERT)
all: $(BENCH_BERT)

$(BENCH_BERT): $(B)/tests/embed_bert/bench_bert.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: bench-bert
bench-bert: $(BENCH_BERT)
	@mkdir -p $(B)/bert-bench
	$(BENCH_BERT) $(B)/bert-bench

BENCHES += bench-bert

# `make bench-xlmr-tok`: XLM-R tokenisation, our tokenizer.json reader against
# libsentencepiece (the baseline) on make_xlmr_ref.py's model and texts.
BENCH_XLMR_TOK := $(B)/bench_xlmr_tok
BINS += $(BENCH_XLMR_TOK)
all: $(BENCH_XLMR_TOK)

$(BENCH_XLMR_TOK): $(B)/tests/embed_bert/bench_xlmr_tok.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: bench-xlmr-tok
bench-xlmr-tok: $(BENCH_XLMR_TOK)
	@scripts/deps.sh build bench
	@[ $(B)/xlmr-ref/ref.json -nt tests/embed_bert/make_xlmr_ref.py ] || \
		/usr/bin/python3 tests/embed_bert/make_xlmr_ref.py $(B)/xlmr-ref
	$(BENCH_XLMR_TOK) $(B)/xlmr-ref

BENCHES += bench-xlmr-tok

# XLM-RoBERTa models' sentencepiece.bpe.model is read by Debian's
# libsentencepiece (C++) through src/embed_spmlib.cc, the library's only C++
# file; the C++ runtime is linked for it.
LIB_OBJ += $(B)/src/embed_spmlib.o
LDLIBS += -lsentencepiece -lstdc++
CXXFLAGS_SPM := -std=c++17 -Wall -Wextra -Wno-unused-parameter -Werror $(OPT) -Iinclude -Isrc \
	-pthread

$(B)/src/%.o: src/%.cc
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_SPM) -MMD -MP -c $< -o $@
