#!/usr/bin/env bash
# The two example workloads (examples/faq.jsonl, examples/creative.jsonl)
# replayed with llmcached-replay through a daemon in front of a real model:
# llmcached-engine with the shared test model (stories260K, CPU). Each
# workload is replayed at its recorded pace through the cache and straight
# to the engine (--direct). Run by `make replay-examples`; the README's
# figures come from it. Reports: build/$VARIANT/replay-*.{txt,html}.
#
#   scripts/replay-examples.sh BUILD_DIR
set -euo pipefail
B=${1:?build dir}
data=${LLMC_SHARED_DATA:-../shared/data}
tmp=$(mktemp -d /tmp/llmc-replay-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ep=$(free_port)
"$B/llmcached-engine" --model "$data/models/stories260K.bin" --tokenizer "$data/models/tok512.bin" \
	--listen "127.0.0.1:$ep" --workers 2 >"$tmp/engine.log" 2>&1 &
pids+=($!)
dp=$(free_port)
"$B/llmcached" --listen "127.0.0.1:$dp" --upstream "http://127.0.0.1:$ep/v1" --data-dir "$tmp/data" \
	--admin-token replay --verify-rate 0.2 --prices stories260K=0.15/0.60 >"$tmp/daemon.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$dp/health" >/dev/null && curl -sf "http://127.0.0.1:$ep/health" >/dev/null && break; sleep 0.1; done
for w in faq creative; do
	"$B/llmcached-replay" "examples/$w.jsonl" --target "http://127.0.0.1:$dp/v1" \
		--direct "http://127.0.0.1:$ep/v1" --prices stories260K=0.15/0.60 --admin-token replay \
		--html "$B/replay-$w.html" | tee "$B/replay-$w.txt"
done
