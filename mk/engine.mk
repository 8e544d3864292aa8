# engine.mk — llmcached-engine, the reference llama2.c-format engine with
# prefix caching (engine/), its unit tests' extra objects, the prefill
# measurement (bench-prefill) and the routing-policy benchmark
# (bench-prefix-router).
#
# engine/main.c and engine/server.c make the binary; the other engine/*.c
# (model, tokenizer, runner) are shared with tests/unit/test_engine*.c,
# which therefore get an explicit link rule here (the generic one links the
# library only).

ENGINE_CORE_SRC := engine/model.c engine/tok.c engine/runner.c
ENGINE_CORE_OBJ := $(ENGINE_CORE_SRC:%.c=$(B)/%.o)
ENGINE_SRV_OBJ  := $(B)/engine/server.o $(B)/engine/main.o $(B)/engine/kvpub.o
# KV events (engine/kvpub.c publishes, server/ subscribes): ZeroMQ + msgpack-c
LDLIBS          += -lzmq -lmsgpackc
ENGINE          := $(B)/llmcached-engine
ENGINE_TESTS    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_engine*.c))

BINS    += $(ENGINE) $(B)/bench/prefill $(B)/bench/prefix-route
BENCHES += bench-prefill bench-prefix-router
# The Makefile's `all:` line is read before the fragments, so its $(BINS)
# is already expanded: name our binaries as prerequisites of all here too.
all: $(ENGINE) $(B)/bench/prefill $(B)/bench/prefix-route

$(ENGINE): $(ENGINE_SRV_OBJ) $(ENGINE_CORE_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(ENGINE_SRV_OBJ) $(ENGINE_CORE_OBJ) $(LIB) $(LDLIBS)

$(ENGINE_TESTS): $(B)/tests/%: $(B)/tests/unit/%.o $(ENGINE_CORE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(ENGINE_CORE_OBJ) $(LIB) $(LDLIBS)

$(B)/bench/prefill: $(B)/bench/prefix/prefill.o $(ENGINE_CORE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(ENGINE_CORE_OBJ) $(LIB) $(LDLIBS)

$(B)/bench/prefix-route: $(B)/bench/prefix/route.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

.PHONY: bench-prefill bench-prefix-router
# Round-robin, least-loaded and prefix-affinity over 4 real engines, the
# routing decided by src/prefix.c in the client (as the gateway calls it).
bench-prefix-router: $(B)/bench/prefix-route $(ENGINE)
	$(B)/bench/prefix-route $(ENGINE) $(or $(LLMC_SHARED_DATA),../shared/data)/models $(ARGS)

# A prefix hit of P tokens must remove >= 90% of the prefill time of those
# P tokens: cold vs. warm prefill of the same prompt in one run.
bench-prefill: $(B)/bench/prefill
	$(B)/bench/prefill $(or $(LLMC_SHARED_DATA),../shared/data)/models

-include $(ENGINE_CORE_OBJ:.o=.d) $(ENGINE_SRV_OBJ:.o=.d) $(B)/bench/prefix/prefill.d \
         $(B)/bench/prefix/route.d
