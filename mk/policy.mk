# mk/policy.mk — the guard evaluation tool (tools/llmcached-guard-eval.c).
# `make` builds it; run it as:
#   build/rel/llmcached-guard-eval [--sweep] [--examples N]
# (reads $LLMC_SHARED_DATA/pairs or ../shared/data/pairs).
GUARD_EVAL := $(B)/llmcached-guard-eval
BINS += $(GUARD_EVAL)

$(GUARD_EVAL): $(B)/tools/llmcached-guard-eval.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# `all:` in the Makefile is read before this fragment, so its prerequisite
# list has already been expanded without our BINS entry: add it directly.
all: $(GUARD_EVAL)
