# mk/semantic.mk — tools/llmcached-semantic-eval: replays a pairs file through
# the semantic tier and prints the threshold sweep (plain cosine vs the full
# decision); bench/semantic/everyday.mjs asks the team's everyday paraphrase
# set through the real daemon. `make eval-semantic` prints, in this order
# (issue 11's protocol: settings are chosen on the tune splits only):
#   GPTCache's mock pairs (999; used for tuning, no held-out part exists),
#   QQP dev pairs 20,001-40,258 (the tune split),
#   QQP dev pairs 1-20,000 (the held-out split: the figures to quote),
#   the everyday set: odd groups tune, even groups report.
# EMBED="--embed-backend bert --embed-model-path DIR" measures another embedder
# (the daemon's option names) against the same tables.
EMBED ?=
SEM_EVAL := $(B)/llmcached-semantic-eval
BINS += $(SEM_EVAL)
SEM_PAIRS := ../shared/data/pairs

$(SEM_EVAL): $(B)/tools/llmcached-semantic-eval.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: eval-semantic
eval-semantic: $(SEM_EVAL) $(DAEMON)
	@scripts/deps.sh build test
	@echo "== GPTCache mock data: 999 paraphrase pairs (tuned on) =="
	$(SEM_EVAL) --file $(SEM_PAIRS)/gptcache_mock_data.json $(EMBED)
	@echo "== QQP dev, TUNE split: pairs 20,001-40,258 (settings chosen here) =="
	$(SEM_EVAL) --file $(SEM_PAIRS)/qqp_dev.jsonl --offset 20000 $(EMBED)
	@echo "== QQP dev, HELD-OUT split: pairs 1-20,000 (reported; never tuned on) =="
	$(SEM_EVAL) --file $(SEM_PAIRS)/qqp_dev.jsonl --limit 20000 $(EMBED)
	@echo "== everyday set (tests/data/everyday.jsonl) through the daemon: tune = odd groups, report = even =="
	LLMCACHED_BUILD=$(B) node bench/semantic/everyday.mjs
