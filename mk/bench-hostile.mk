# mk/bench-hostile.mk — `make bench-hostile [SIZE_MB=64] [N=200] [SECONDS=30]
# [BASELINE=path/to/older/llmcached]`: a 64 MB header line and 200 slowloris
# connections against the daemon (bench/hostile/run.mjs); with BASELINE, the
# same cases against that binary in the same run.
BENCHES += bench-hostile
.PHONY: bench-hostile
bench-hostile: $(DAEMON)
	@scripts/deps.sh test
	LLMCACHED_BUILD=$(B) node bench/hostile/run.mjs
