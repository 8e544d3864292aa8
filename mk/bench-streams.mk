# mk/bench-streams.mk — `make bench-streams [N=5000]`: N concurrent slow
# streaming requests through one daemon, and straight to the mock as the
# baseline in the same run (bench/streams/run.mjs).
BENCHES += bench-streams
.PHONY: bench-streams
bench-streams: $(DAEMON)
	@scripts/deps.sh test
	LLMCACHED_BUILD=$(B) node bench/streams/run.mjs $(or $(N),5000)
