#!/usr/bin/env bash
# bench/embed/run.sh BUILD_DIR — `make bench-embed`.
#
# The built-in USE lite encoder (bench_embed, C) against its reference
# TensorFlow.js run (tfjs_bench.mjs, wasm backend), same model files, same
# texts, same measurements, in this one run:
#   single   one short query (<= 16 tokens) per call: p50/p99 ms, sentences/s
#   batch32  32 texts per call: p50/p99 ms per call, sentences/s
# on one thread, then the C encoder with one embedder per core. Texts: the
# first $BENCH_EMBED_N (default 1024) "a" questions of
# $LLMC_SHARED_DATA/pairs/qqp_dev.jsonl (a built-in list when absent).
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
else
	printf '%s\n' "How do I reset my password?" "What is the capital of France?" \
		"Why is the sky blue?" "How does a cache work?" > "$texts"
fi

echo "== bench-embed: USE lite, C (llmcached) vs TensorFlow.js wasm, same run"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: make bench-embed  (bench/embed/run.sh $B; texts: $(wc -l < "$texts") QQP questions)"

export OPENBLAS_NUM_THREADS=1
c_out=$("$B/bench/embed/bench_embed" --model-path "$MODEL" --texts "$texts" --n "$N" --threads "$(nproc)")
echo "$c_out"

js_out=""
if [ ! -d bench/embed/node_modules/@tensorflow/tfjs-backend-wasm ]; then
	(cd bench/embed && npm ci --no-audit --no-fund --loglevel=error) || true
fi
if [ -d bench/embed/node_modules/@tensorflow/tfjs-backend-wasm ]; then
	js_out=$(cd bench/embed && node tfjs_bench.mjs "$PWD/../../$MODEL" "$texts" --backend wasm --threads 1) || js_out=""
	echo "$js_out"
else
	echo "baseline: TensorFlow.js packages not installed (npm ci in bench/embed failed); no ratio"
fi

get() { # get RESULT-name key
	printf '%s\n' "$1" | awk -v n="$2" -v k="$3" '$1=="RESULT" && $2==n { for (i=3;i<=NF;i++) { split($i,a,"="); if (a[1]==k) print a[2] } }'
}
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
fi
