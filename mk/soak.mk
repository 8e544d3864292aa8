# mk/soak.mk — `make soak [MINUTES=30]`: a mixed workload (hits, misses,
# streams, dropped streams, deletes, slow and idle clients) against a daemon
# with --memory 4mb, sampling RSS, fds, store bytes and latency; fails when
# RSS or fds grow past the stated bound after warm-up (bench/soak/run.mjs).
.PHONY: soak
soak: $(DAEMON)
	@scripts/deps.sh test
	LLMCACHED_BUILD=$(B) MINUTES=$(or $(MINUTES),30) node bench/soak/run.mjs
