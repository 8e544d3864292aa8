# mk/crash-loop.mk — `make crash-loop [CYCLES=10]`: kill -9 the daemon at
# random moments under write load, restart, count lost entries against the
# documented bound, in both persistence modes (tests/integration/crashloop.mjs;
# `make test` runs two cycles of each as crashloop.test.mjs).
.PHONY: crash-loop
crash-loop: $(DAEMON)
	@scripts/deps.sh test
	LLMCACHED_BUILD=$(B) node tests/integration/crashloop.mjs $(or $(CYCLES),10)
