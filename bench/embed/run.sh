#!/usr/bin/env bash
# bench/embed/run.sh BUILD_DIR — `make bench-embed`.
#
# The built-in USE lite encoder (bench_embed, C) against its reference
# TensorFlow.js run (tfjs_bench.mjs, wasm backend), same model files, same
# texts, same measurements, in this one run:
#   single   one short query (<= 16 tokens) per call: p50/p99 ms, sentences/s
#   long     one 25-35-word text per call: p50/p99 ms
#   batch32  32 texts per call: p50/p99 ms per call, sentences/s; for C also
#            seq32, the same texts one per call, so the batch's gain per
#            text is measured on the same texts
# on one thread, for the C encoder in each precision (int8 = the default on
# a VNNI CPU, fp16, fp32 = the reference), then the default C encoder with
# one embedder per core. Texts: the first $BENCH_EMBED_N (default 1024) "a"
# questions of $LLMC_SHARED_DATA/pairs/qqp_dev.jsonl (a built-in list when
# absent); long texts: the first 200 questions of 25-35 words in that file.
# Needs the model (scripts/fetch-use-model.sh) and, for the baseline, the
# npm packages of bench/embed/package.json (installed here on first run).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:?build dir}
N=${BENCH_EMBED_N:-1024}
SD=${LLMC_SHARED_DATA:-$PWD/../shared/data}
MODEL=${LLMC_USE_MODEL:-data/models/use-lite}
scripts/fetch-use-model.sh "$MODEL"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
texts="$tmp/texts.txt"
if [ -f "$SD/pairs/qqp_dev.jsonl" ]; then
	node -e '
const fs = require("fs");
const n = Number(process.argv[2]);
const out = [];
for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
  if (out.length >= n) break;
  if (!l) continue;
  const a = JSON.parse(l).a.replace(/[\r\n]+/g, " ");
  if (a.trim()) out.push(a);
}
fs.writeFileSync(process.argv[3], out.join("\n") + "\n");' "$SD/pairs/qqp_dev.jsonl" "$N" "$texts"
	node -e '
const fs = require("fs");
const out = [];
for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n")) {
  if (out.length >= 200) break;
  if (!l) continue;
  const o = JSON.parse(l);
  for (const t of [o.a, o.b]) {
    const a = t.replace(/[\r\n]+/g, " ").trim();
    const w = a.split(/\s+/).length;
    if (w >= 25 && w <= 35 && out.length < 200) out.push(a);
  }
}
fs.writeFileSync(process.argv[2], out.join("\n") + "\n");' "$SD/pairs/qqp_dev.jsonl" "$tmp/long.txt"
else
	printf '%s\n' "How do I reset my password?" "What is the capital of France?" \
		"Why is the sky blue?" "How does a cache work?" > "$texts"
	printf '%s\n' "I have been trying for a week to reset the administrator password of my home wifi router to the factory default and nothing I found online works, what should I do next?" > "$tmp/long.txt"
fi

echo "== bench-embed: USE lite, C (llmcached) vs TensorFlow.js wasm, same run"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: make bench-embed  (bench/embed/run.sh $B; texts: $(wc -l < "$texts") QQP questions)"

export OPENBLAS_NUM_THREADS=1
c_out=$("$B/bench/embed/bench_embed" --model-path "$MODEL" --texts "$texts" --long "$tmp/long.txt" --n "$N" --threads "$(nproc)")
echo "$c_out"
c16=$("$B/bench/embed/bench_embed" --model-path "$MODEL" --texts "$texts" --long "$tmp/long.txt" --n "$N" --precision fp16)
echo "$c16"
c32=$("$B/bench/embed/bench_embed" --model-path "$MODEL" --texts "$texts" --long "$tmp/long.txt" --n "$N" --precision fp32)
echo "$c32"

js_out=""
if [ ! -d bench/embed/node_modules/@tensorflow/tfjs-backend-wasm ]; then
	(cd bench/embed && npm ci --no-audit --no-fund --loglevel=error) || true
fi
if [ -d bench/embed/node_modules/@tensorflow/tfjs-backend-wasm ]; then
	js_out=$(cd bench/embed && node tfjs_bench.mjs "$PWD/../../$MODEL" "$texts" --backend wasm --threads 1 --long "$tmp/long.txt") || js_out=""
	echo "$js_out"
else
	echo "baseline: TensorFlow.js packages not installed (npm ci in bench/embed failed); no ratio"
fi

get() { # get OUTPUT RESULT-name key
	printf '%s\n' "$1" | awk -v n="$2" -v k="$3" '$1=="RESULT" && $2==n { for (i=3;i<=NF;i++) { split($i,a,"="); if (a[1]==k) print a[2] } }'
}
prec=$(printf '%s\n' "$c_out" | awk '$1=="RESULT" && $2=="precision" { sub(/.*name=/, ""); print }')
echo
echo "one thread; ms (wall; the machine may be shared, cpu_p50 in the lines above)"
printf '%-26s %9s %9s %9s %9s %11s %11s %7s\n' encoder short_p50 short_p99 long_p50 long_p99 seq_ms/text batch_ms/txt gain
row() { # row LABEL OUTPUT PREFIX
	local o=$2 p=$3 seq bat gain
	seq=$(get "$o" seq32 per_text_cpu_ms); bat=$(get "$o" "${p}batch32" per_text_cpu_ms)
	[ -n "$bat" ] || bat=$(awk -v s="$(get "$o" "${p}batch32" per_cpu_s)" 'BEGIN { if (s > 0) printf "%.4f", 1000 / s }')
	gain=$(awk -v a="$seq" -v b="$bat" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }')
	printf '%-26s %9s %9s %9s %9s %11s %11s %7s\n' "$1" "$(get "$o" "${p}single" p50_ms)" "$(get "$o" "${p}single" p99_ms)" \
		"$(get "$o" "${p}long" p50_ms)" "$(get "$o" "${p}long" p99_ms)" "${seq:--}" "${bat:--}" "$gain"
}
row "C $prec" "$c_out" ""
row "C fp16" "$c16" ""
row "C fp32 (reference)" "$c32" ""
[ -z "$js_out" ] || row "TF.js wasm" "$js_out" tfjs_
echo "(seq/batch ms per text are CPU time: the same 32-text groups one per call vs one call)"
if [ -n "$js_out" ]; then
	for m in single batch32; do
		c=$(get "$c_out" "$m" per_s); j=$(get "$js_out" "tfjs_$m" per_s)
		cp=$(get "$c_out" "$m" p50_ms); jp=$(get "$js_out" "tfjs_$m" p50_ms)
		cc=$(get "$c_out" "$m" per_cpu_s); jc=$(get "$js_out" "tfjs_$m" per_cpu_s)
		ccp=$(get "$c_out" "$m" cpu_p50_ms); jcp=$(get "$js_out" "tfjs_$m" cpu_p50_ms)
		awk -v m="$m" -v c="$c" -v j="$j" -v cp="$cp" -v jp="$jp" -v cc="$cc" -v jc="$jc" \
			-v ccp="$ccp" -v jcp="$jcp" 'BEGIN {
			printf "ratio %-8s wall: C %.1f/s vs tfjs-wasm %.1f/s = %.2fx, p50 %.3f vs %.3f ms\n", m, c, j, c / j, cp, jp
			printf "ratio %-8s cpu:  C %.1f/s vs tfjs-wasm %.1f/s = %.2fx, p50 %.3f vs %.3f ms\n", m, cc, jc, cc / jc, ccp, jcp }'
	done
	awk -v c="$(get "$c_out" long p50_ms)" -v j="$(get "$js_out" tfjs_long p50_ms)" \
		-v cc="$(get "$c_out" long cpu_p50_ms)" -v jc="$(get "$js_out" tfjs_long cpu_p50_ms)" 'BEGIN {
		if (c > 0 && j > 0) printf "ratio long     p50 wall %.3f vs %.3f ms = %.2fx; cpu %.3f vs %.3f ms = %.2fx\n", c, j, j / c, cc, jc, (cc > 0 ? jc / cc : 0) }'
fi
