#!/usr/bin/env bash
# Run the test suite against the binaries in build dir $1.
#   scripts/run-tests.sh BUILD_DIR [unit|integration]
# Unit tests: every executable $B/tests/test_*, run from the repo root.
# Integration tests: node's built-in runner over tests/integration/*.test.mjs,
# with LLMCACHED_BUILD pointing at the binaries under test.
# Ends with one line "tests: N passed, N failed" summing both; exits non-zero
# when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:?build dir}
what=${2:-all}
export LLMCACHED_BUILD="$PWD/$B"
export LLMC_SHARED_DATA="${LLMC_SHARED_DATA:-$PWD/../shared/data}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
pass=0
fail=0
status=0

if [ "$what" = all ] || [ "$what" = unit ]; then
	for t in "$B"/tests/test_*; do
		[ -x "$t" ] || continue
		out=$(timeout 300 "$t" 2>&1)
		rc=$?
		printf '%s\n' "$out" | grep -E '^(FAIL|unit )' || true
		line=$(printf '%s\n' "$out" | grep -E '^unit .*: [0-9]+ passed, [0-9]+ failed' | tail -1)
		if [ -n "$line" ]; then
			p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
			f=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
			pass=$((pass + p))
			fail=$((fail + f))
		fi
		if [ $rc -ne 0 ]; then
			status=1
			if [ -z "$line" ] || [ "${f:-0}" = 0 ]; then
				echo "FAIL $t exited with status $rc"
				printf '%s\n' "$out" | tail -40
				fail=$((fail + 1))
			fi
		fi
	done
fi

if [ "$what" = all ] || [ "$what" = integration ]; then
	shopt -s nullglob
	files=(tests/integration/*.test.mjs)
	if [ ${#files[@]} -gt 0 ]; then
		tap="$B/integration.tap"
		node --test --test-concurrency=1 --test-timeout=240000 \
			--test-reporter=spec --test-reporter-destination=stdout \
			--test-reporter=tap --test-reporter-destination="$tap" "${files[@]}"
		[ $? -eq 0 ] || status=1
		np=$(grep -E '^# pass ' "$tap" | awk '{print $3}' | tail -1)
		nf=$(grep -E '^# fail ' "$tap" | awk '{print $3}' | tail -1)
		pass=$((pass + ${np:-0}))
		fail=$((fail + ${nf:-0}))
		[ -n "$np" ] || { echo "FAIL node test runner produced no summary"; fail=$((fail + 1)); status=1; }
	fi
fi

echo "tests: $pass passed, $fail failed"
[ $status -eq 0 ] && [ $fail -eq 0 ]
