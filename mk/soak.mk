# mk/soak.mk — `make soak [MINUTES=30]`: a mixed workload (hits, misses,
# streams, dropped streams, deletes, slow and idle clients) against a daemon
# with --memory 4mb, sampling RSS, fds, store bytes and latency; fails when
# RSS or fds grow past the stated bound after warm-up (bench/soak/run.mjs).
# It measures the release build (VARIANT=rel, the default): ASan's
# quarantine holds freed memory back and grows RSS by itself, so a soak of
# the san build measures the sanitizer, not the daemon. `make soak
# VARIANT=san` is allowed (to hunt a leak with ASan's reports), but its
# RSS bound is not meaningful.
.PHONY: soak
soak: $(DAEMON)
	@scripts/deps.sh test
	@echo "soak: VARIANT=$(VARIANT) ($(DAEMON))$(if $(filter san,$(VARIANT)), -- ASan quarantine grows RSS: the RSS bound is not meaningful)"
	LLMCACHED_BUILD=$(B) MINUTES=$(or $(MINUTES),30) node bench/soak/run.mjs
