# mk/embed.mk — the embedders' extra pieces: ICU for the USE tokenizer's
# NFKC, the llmcached-embed tool, and the bench-embed benchmark.
LDLIBS += -licuuc

EMBED_TOOL := $(B)/llmcached-embed
BINS += $(EMBED_TOOL)
# `all:` is read before the fragments, so BINS += alone does not reach it.
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
