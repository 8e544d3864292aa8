# mk/bench-deps.mk — every `make bench-*` (and `make eval-*`) installs the
# packages it needs first, as `make bench` does: on a fresh clone
# `make bench-hnsw` otherwise fails on hnswlib's missing header.
#
# It runs while the Makefile is read, before any rule, so that no object of
# a benchmark can be compiled ahead of the install even under -j, and no
# other fragment has to name a dependency of its own. scripts/deps.sh is
# idempotent and quiet when everything is present.
ifneq ($(filter bench-% eval-%,$(MAKECMDGOALS)),)
BENCH_DEPS_OUT := $(shell scripts/deps.sh build test bench >&2; echo $$?)
ifneq ($(BENCH_DEPS_OUT),0)
$(error scripts/deps.sh build test bench failed (status $(BENCH_DEPS_OUT)); see above)
endif
endif
