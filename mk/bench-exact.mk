# mk/bench-exact.mk — `make bench-exact`: the exact tier against nginx.
#
# bench/exact/run.sh starts the mock upstream (tests/integration/
# mock-upstream.mjs, no delay), the daemon built here and nginx configured as
# an exact-match POST cache (bench/exact/nginx.conf.in), then runs wrk against
# both in the same run and prints requests/s, p50/p99 and the ratios, the
# 200 KB-prompt case, hit latency at moderate load and the miss overhead.
# Knobs: DURATION, THREADS, CONNS, ROUNDS, MOD_CONNS, MOD_DELAY_MS,
# MISS_DURATION, LAT_ROUNDS, ENTRIES, SEMANTIC, LLMCACHED_ARGS (see the script's header).
BENCHES += bench-exact
.PHONY: bench-exact
bench-exact: $(DAEMON)
	LLMCACHED=$(DAEMON) bench/exact/run.sh
