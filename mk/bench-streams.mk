# mk/bench-streams.mk — `make bench-streams [N=5000]`: N concurrent slow
# streaming requests (all new questions) through the default daemon (semantic
# tier on), through one started with --semantic no, and straight to the mock,
# in one run; prints first-byte p50/p99 of each and the on/off ratio
# (bench/streams/run.mjs).
BENCHES += bench-streams
.PHONY: bench-streams
bench-streams: $(DAEMON)
	@scripts/deps.sh test
	LLMCACHED_BUILD=$(B) node bench/streams/run.mjs $(or $(N),5000)
