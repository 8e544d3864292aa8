#!/usr/bin/env bash
# The fuzz check `make test` runs (installed as build/san/tests/test_fuzz by
# mk/fuzz.mk): replay every regression input in tests/fuzz/regress/NAME/
# through build/fuzz/fuzz_NAME, then fuzz each target briefly from its seed
# corpus. Prints "unit fuzz: N passed, N failed" like the unit tests.
set -uo pipefail
cd "$(dirname "$0")/../../.."
secs=${FUZZ_CHECK_SECONDS:-3}
pass=0
fail=0
for bin in build/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	n=${bin##*/fuzz_}
	inputs=(tests/fuzz/regress/"$n"/*)
	if [ -e "${inputs[0]}" ]; then
		if "$bin" "${inputs[@]}" >/dev/null 2>build/fuzz/replay-"$n".log; then
			pass=$((pass + 1))
		else
			echo "FAIL fuzz $n: a regression input crashes again (build/fuzz/replay-$n.log)"
			tail -20 build/fuzz/replay-"$n".log
			fail=$((fail + 1))
		fi
	fi
	work=$(mktemp -d)
	if "$bin" -max_total_time="$secs" -max_len=16384 -artifact_prefix="$work/" "$work" \
		tests/fuzz/corpus/"$n" >"$work/log" 2>&1; then
		pass=$((pass + 1))
	else
		echo "FAIL fuzz $n: crash in a ${secs}s run; input kept in tests/fuzz/regress/$n/"
		mkdir -p tests/fuzz/regress/"$n"
		cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* tests/fuzz/regress/"$n"/ 2>/dev/null
		grep -E 'ERROR|SUMMARY|#[0-9]+ ' "$work/log" | head -20
		fail=$((fail + 1))
	fi
	rm -rf "$work"
done
echo "unit fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
