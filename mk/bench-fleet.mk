# mk/bench-fleet.mk — `make bench-fleet`: one llmcached with the embedded
# store vs llmcached instances sharing one Redis, same run (bench/fleet/run.mjs:
# hit throughput and p50/p99 from the near cache and from Redis, Redis's own
# GET p50, B's first semantic hit on A's entry, Redis killed under load).
# Knobs: DURATION, CONNS, THREADS, ENTRIES, NEAR_MEMORY, SEM_ROUNDS, ROUNDS (see the script).
BENCHES += bench-fleet
.PHONY: bench-fleet
bench-fleet:
	@scripts/deps.sh build bench
	@$(MAKE) --no-print-directory VARIANT=rel all
	LLMCACHED=build/rel/llmcached node bench/fleet/run.mjs
