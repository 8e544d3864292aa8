# mk/bench-prefix.mk — `make bench-prefix`: the prefix tier with the gateway
# in the path. bench/prefix/gateway.c starts 4 llmcached-engine processes
# and the daemon in front of them (--upstream x4 --route-policy P) for
# round-robin, least-loaded, approximate prefix affinity, precise affinity
# (engines publishing KV events, the daemon routing on them) and precise
# with two daemons, in the same run, over two workloads (engine pools that
# evict, and large ones); it replays one seeded multi-tenant workload and
# prints the engines' prefix hit rate, TTFT p50/p99, throughput, the load
# split and the ratios of the issue's bars. Extra arguments:
# ARGS="REQUESTS CLIENTS SMALL_POOL BALANCE_ABS BALANCE_REL LARGE_POOL"
# (defaults 800 8 48 5 1.5 512). KV_BENCH_REPEAT=R runs each mode R times
# and reports means (TTFT on this shared machine moves by +-10% run to
# run); KV_BENCH_MODES=DIGITS runs some modes only. It installs its
# packages first.
BINS    += $(B)/bench/prefix-gateway
BENCHES += bench-prefix
all: $(B)/bench/prefix-gateway

$(B)/bench/prefix-gateway: $(B)/bench/prefix/gateway.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: bench-prefix
# (engine.mk is read after this file: name the engine by its path.)
bench-prefix: $(B)/bench/prefix-gateway $(B)/llmcached-engine $(DAEMON)
	@scripts/deps.sh build bench
	$(B)/bench/prefix-gateway $(B)/llmcached-engine $(DAEMON) \
		$(or $(LLMC_SHARED_DATA),../shared/data)/models $(ARGS)

-include $(B)/bench/prefix/gateway.d
