# mk/replay.mk — tools/llmcached-replay.c: replays a workload (JSON Lines)
# through the cache, and optionally straight to the upstream, and prints the
# KPIs (hit rate by tier and kind, p50/p99 with and without the cache, share
# not sent to inference, tokens and money saved, staleness) as text, JSON or
# a self-contained HTML report. libcurl multi and jansson only: it links
# nothing of libllmcache, so it runs against any llmcached.
#   make replay-examples   the two example workloads (examples/) against a
#                          daemon and an engine started for the purpose
REPLAY := $(B)/llmcached-replay
BINS   += $(REPLAY)
all: $(REPLAY)

$(REPLAY): $(B)/tools/llmcached-replay.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -lcurl -ljansson -lm

-include $(B)/tools/llmcached-replay.d

.PHONY: replay-examples
# (engine.mk is read after this file: name the engine by its path.)
replay-examples: $(REPLAY) $(DAEMON) $(B)/llmcached-engine
	@scripts/deps.sh build test
	scripts/replay-examples.sh $(B)
