# mk/semantic.mk — tools/llmcached-semantic-eval: replays a pairs file through
# the semantic tier and prints the threshold sweep (plain cosine vs the full
# decision). `make eval-semantic` runs it on GPTCache's mock data and on a
# 2,000-pair sample of QQP. EMBED="--embed-backend bert --embed-model-path DIR"
# measures another embedder (the daemon's option names) against the same tables.
EMBED ?=
SEM_EVAL := $(B)/llmcached-semantic-eval
BINS += $(SEM_EVAL)

$(SEM_EVAL): $(B)/tools/llmcached-semantic-eval.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: eval-semantic
eval-semantic: $(SEM_EVAL)
	@scripts/deps.sh build test
	$(SEM_EVAL) --file ../shared/data/pairs/gptcache_mock_data.json $(EMBED)
	$(SEM_EVAL) --file ../shared/data/pairs/qqp_dev.jsonl --limit 2000 $(EMBED)
