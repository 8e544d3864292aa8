# mk/bench-prefix.mk — `make bench-prefix`: the prefix tier with the gateway
# in the path. bench/prefix/gateway.c starts 4 llmcached-engine processes
# and the daemon in front of them (--upstream x4 --route-policy P) for
# round-robin, least-loaded and prefix-affinity in the same run, replays one
# seeded multi-tenant workload through the daemon and prints the engines'
# prefix hit rate, TTFT p50/p99, throughput, the load split and the ratios
# of the issue's bar. Extra arguments: ARGS="REQUESTS CLIENTS NUM_BLOCKS
# BALANCE_ABS BALANCE_REL" (defaults 400 8 128 5 1.5).
BINS    += $(B)/bench/prefix-gateway
BENCHES += bench-prefix
all: $(B)/bench/prefix-gateway

$(B)/bench/prefix-gateway: $(B)/bench/prefix/gateway.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: bench-prefix
# (engine.mk is read after this file: name the engine by its path.)
bench-prefix: $(B)/bench/prefix-gateway $(B)/llmcached-engine $(DAEMON)
	$(B)/bench/prefix-gateway $(B)/llmcached-engine $(DAEMON) \
		$(or $(LLMC_SHARED_DATA),../shared/data)/models $(ARGS)

-include $(B)/bench/prefix/gateway.d
