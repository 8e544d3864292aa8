#!/usr/bin/env bash
# bench/exact/run.sh — the exact tier against nginx proxy_cache, same run.
#
# What it measures (all on this machine, in this one run, same mock upstream):
#  1. Hit throughput and latency: wrk sends the same chat request over and
#     over to llmcached (answer X-LLM-Cache: HIT-EXACT) and to nginx
#     configured as an exact-match POST cache (X-Cache-Status: HIT). Prints
#     requests/s, p50, p99 of both, the server CPU time per request (wrk
#     shares the 2 cores, so throughput can be client-bound) and the
#     llmcached/nginx ratios. The mock's
#     call counter must not move during a run: every answer was a hit.
#  2. A 200 KB prompt, sent twice to each: llmcached hits it, nginx does not.
#  3. Hit latency at moderate load: wrk with few connections, each pausing
#     MOD_DELAY_MS between requests (an open, sub-saturating load; wrk2 is not
#     in Debian). Goal: p99 under 1 ms.
#  4. Miss overhead: every request a new prompt (UNIQUE=1), one connection,
#     straight to the mock vs through llmcached. Goal: p50 and p99 within
#     1 ms of the direct ones.
#  5. Memory per entry: ENTRIES distinct requests stored (fill.mjs); growth of
#     llmcached's RSS per entry, and that minus the response bytes.
#
# Knobs (environment): DURATION (s per hit run, 10), THREADS (2), CONNS (64),
# ROUNDS (2: alternate nginx/llmcached runs, report the mean), MOD_CONNS (8),
# MOD_DELAY_MS (4), MISS_DURATION (5 s per latency run), LAT_ROUNDS (2:
# parts 3 and 4 alternate the servers and report the best round, since one
# scheduling hiccup on a shared 2-core box decides a p99), ENTRIES (50000; 0 skips part 5), LLMCACHED (build/rel/llmcached, or
# "none" for the nginx baseline alone), SEMANTIC (off: --semantic no, the
# exact tier alone; on: the daemon's default, which embeds every miss when its
# model is installed), LLMCACHED_ARGS (extra daemon flags).
# Needs: nginx, wrk, node, curl (scripts/deps.d/bench.list and test.list).
# When run as root, nginx and llmcached run as nobody (setpriv), nginx with
# its own prefix, config and cache in a temp dir; nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/exact

DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-2}
MOD_CONNS=${MOD_CONNS:-8}
MOD_DELAY_MS=${MOD_DELAY_MS:-4}
MISS_DURATION=${MISS_DURATION:-5}
LAT_ROUNDS=${LAT_ROUNDS:-2}
ENTRIES=${ENTRIES:-50000}
LLMCACHED=${LLMCACHED:-build/rel/llmcached}
LLMCACHED_ARGS=${LLMCACHED_ARGS:-}
SEMANTIC=${SEMANTIC:-off}
WORKERS=$(nproc)

for tool in nginx wrk node curl; do
	command -v "$tool" >/dev/null || { echo "bench-exact: $tool not found (make bench installs it)"; exit 1; }
done

TMP=$(mktemp -d /tmp/llmc-bench-exact.XXXXXX)
chmod 755 "$TMP"
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RUNAS=()
if [ "$(id -u)" = 0 ]; then
	RUNAS=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi

# free_port: a port free on 127.0.0.1 a moment ago.
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# wait_health URL PID SECONDS: until URL answers 200; fails if PID died.
wait_health() {
	local url=$1 pid=$2 n=$(($3 * 20))
	while [ $n -gt 0 ]; do
		kill -0 "$pid" 2>/dev/null || return 1
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ] && return 0
		sleep 0.05
		n=$((n - 1))
	done
	return 1
}

mock_total() { curl -s "$MOCK_ORIGIN/__mock/stats" | grep -o '"total":[0-9]*' | cut -d: -f2; }

# header_of URL BODYFILE HEADER: one POST, prints the header's value ("-" if absent).
header_of() {
	local v
	v=$(curl -s -o /dev/null -D - -H 'Content-Type: application/json' -H 'Authorization: Bearer bench-key' \
		--data-binary "@$2" "$1" | tr -d '\r' | awk -v h="$(echo "$3" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1)==h {print $2}')
	echo "${v:--}"
}

# run_wrk NAME URL [ENV=VAL ...] -- WRK_ARGS...: sets R_rps R_p50 R_p99 ... from the RESULT line.
run_wrk() {
	local name=$1 url=$2
	shift 2
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	local cmd=(wrk "$@" --latency -s "$HERE/wrk.lua" "$url")
	echo "  \$ ${envs[*]} ${cmd[*]}"
	local out
	out=$(env "${envs[@]}" "${cmd[@]}" 2>&1) || { echo "$out"; return 1; }
	local line
	line=$(grep '^RESULT ' <<<"$out") || { echo "$out"; return 1; }
	for kv in ${line#RESULT }; do
		printf -v "R_${kv%%=*}" '%s' "${kv#*=}"
	done
	printf '  %-28s %9s req/s   p50 %7s   p99 %7s   max %8s   errors %s  non-2xx %s\n' "$name" "$R_rps" \
		"$(us "$R_p50_us")" "$(us "$R_p99_us")" "$(us "$R_max_us")" "$R_errors" "$R_non2xx"
}

us() { awk -v u="$1" 'BEGIN { if (u >= 1000 || u <= -1000) printf "%.2fms", u / 1000; else printf "%dus", u }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

echo "== bench/exact: llmcached exact tier vs nginx proxy_cache (POST) =="
echo "command: $0 (DURATION=$DURATION THREADS=$THREADS CONNS=$CONNS ROUNDS=$ROUNDS MOD_CONNS=$MOD_CONNS MOD_DELAY_MS=$MOD_DELAY_MS MISS_DURATION=$MISS_DURATION LAT_ROUNDS=$LAT_ROUNDS ENTRIES=$ENTRIES SEMANTIC=$SEMANTIC LLMCACHED=$LLMCACHED)"
echo "machine: nproc=$(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools:   $(nginx -v 2>&1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), node $(node --version)"
[ ${#RUNAS[@]} -gt 0 ] && echo "servers run as nobody (${RUNAS[*]})"

# --- the mock upstream (zero delay) -------------------------------------------
MOCK_PORT=$(free_port)
node tests/integration/mock-upstream.mjs --port "$MOCK_PORT" >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
MOCK_ORIGIN=http://127.0.0.1:$MOCK_PORT
wait_health "$MOCK_ORIGIN/health" "${PIDS[-1]}" 10 || { echo "mock upstream did not start:"; cat "$TMP/mock.log"; exit 1; }
echo "mock upstream: $MOCK_ORIGIN/v1 (node, no delay)"

# --- nginx -------------------------------------------------------------------
NGX_PORT=$(free_port)
mkdir -p "$TMP/nginx/cache"
sed -e "s#@TMP@#$TMP/nginx#g" -e "s#@PORT@#$NGX_PORT#g" -e "s#@UPSTREAM_PORT@#$MOCK_PORT#g" \
	-e "s#@WORKERS@#$WORKERS#g" "$HERE/nginx.conf.in" >"$TMP/nginx/nginx.conf"
[ ${#RUNAS[@]} -gt 0 ] && chown -R nobody:nogroup "$TMP/nginx"
"${RUNAS[@]}" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;' >"$TMP/nginx.out" 2>&1 &
PIDS+=($!)
NGX_PID=$!
NGX=http://127.0.0.1:$NGX_PORT/v1/chat/completions
# nginx proxies /v1/ only; a 404 from the mock through it proves it is up.
n=100
until [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$NGX_PORT/v1/none")" = 404 ]; do
	kill -0 "$NGX_PID" 2>/dev/null && [ $n -gt 0 ] || { echo "nginx did not start:"; cat "$TMP/nginx.out" "$TMP/nginx/error.log" 2>/dev/null; exit 1; }
	sleep 0.05
	n=$((n - 1))
done
echo "nginx: 127.0.0.1:$NGX_PORT, worker_processes $WORKERS (= nproc), config $HERE/nginx.conf.in"

# --- llmcached ---------------------------------------------------------------
HAVE_LLMC=0
if [ "$LLMCACHED" != none ]; then
	LLMC_PORT=$(free_port)
	mkdir -p "$TMP/data"
	[ ${#RUNAS[@]} -gt 0 ] && chown nobody:nogroup "$TMP/data"
	# shellcheck disable=SC2086
	LLMC_CMD=("$LLMCACHED" --listen "127.0.0.1:$LLMC_PORT" --upstream "$MOCK_ORIGIN/v1" --data-dir "$TMP/data" --admin-token bench)
	# The exact tier alone by default: a semantic tier would embed every miss.
	[ "$SEMANTIC" = on ] || LLMC_CMD+=(--semantic no)
	LLMC_CMD+=($LLMCACHED_ARGS)
	if [ -x "$LLMCACHED" ]; then
		"${RUNAS[@]}" "${LLMC_CMD[@]}" >"$TMP/llmcached.log" 2>&1 &
		PIDS+=($!)
		LLMC_PID=$!
		if wait_health "http://127.0.0.1:$LLMC_PORT/health" "$LLMC_PID" 20; then
			HAVE_LLMC=1
			echo "llmcached: ${LLMC_CMD[*]}"
			# Its own start line says how many event-loop threads it runs.
			grep -m1 -i 'listening' "$TMP/llmcached.log" | sed 's/^/  log: /' | cut -c1-200 || true
			grep -m1 -i 'semantic tier' "$TMP/llmcached.log" | sed 's/^/  log: /' | cut -c1-200 ||
				echo "  semantic tier: off (SEMANTIC=$SEMANTIC)"
		else
			echo "llmcached did not become healthy (${LLMC_CMD[*]}); its output:"
			tail -20 "$TMP/llmcached.log"
		fi
	else
		echo "llmcached: $LLMCACHED not built"
	fi
	[ $HAVE_LLMC = 1 ] || echo "!! continuing with the nginx baseline only; the comparison is INCOMPLETE"
fi
LLMC=http://127.0.0.1:${LLMC_PORT:-0}/v1/chat/completions

# --- the request --------------------------------------------------------------
BODY=$TMP/body.json
printf '%s' '{"model":"bench-model","temperature":0,"max_tokens":64,"messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"What is the capital of France, and what river runs through it?"}]}' >"$BODY"
echo "request: POST /v1/chat/completions, $(wc -c <"$BODY") byte body, Authorization: Bearer bench-key"

echo
echo "-- warm-up: one request each, then the second must be a hit --"
fail=0
check_warm() { # name url header want
	local first second
	first=$(header_of "$2" "$BODY" "$3")
	local before
	before=$(mock_total)
	second=$(header_of "$2" "$BODY" "$3")
	local after
	after=$(mock_total)
	echo "  $1: first $3: $first, second: $second (upstream calls during the second: $((after - before)))"
	[ "$second" = "$4" ] && [ "$after" = "$before" ] || { echo "  !! $1 does not hit"; fail=1; }
}
check_warm nginx "$NGX" X-Cache-Status HIT
[ $HAVE_LLMC = 1 ] && check_warm llmcached "$LLMC" X-LLM-Cache HIT-EXACT
[ $fail = 0 ] || { echo "warm-up failed; not benchmarking"; exit 1; }

echo
echo "-- 1. hit throughput: wrk -t$THREADS -c$CONNS -d${DURATION}s, same request, each server in turn --"
# With the client on the same 2 cores, both servers may be held back by wrk
# itself; the CPU each server used per request (utime+stime of its processes
# over the run) compares their cost independently of that.
# cpu_ticks PID...: summed utime+stime, in clock ticks, of those processes (all threads).
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
server_pids() { if [ "$1" = nginx ]; then pgrep -P "$NGX_PID" | tr '\n' ' '; echo "$NGX_PID"; else echo "$LLMC_PID"; fi; }
TCK=$(getconf CLK_TCK)
declare -A SUM_RPS=() SUM_P50=() SUM_P99=() SUM_CPU=() SUM_REQ=()
for ((r = 1; r <= ROUNDS; r++)); do
	for who in nginx llmcached; do
		if [ $who = nginx ]; then url=$NGX; else [ $HAVE_LLMC = 1 ] || continue; url=$LLMC; fi
		before=$(mock_total)
		# shellcheck disable=SC2046
		c0=$(cpu_ticks $(server_pids $who))
		run_wrk "$who (round $r)" "$url" BODY_FILE="$BODY" -- -t"$THREADS" -c"$CONNS" -d"${DURATION}s"
		# shellcheck disable=SC2046
		c1=$(cpu_ticks $(server_pids $who))
		SUM_CPU[$who]=$(( ${SUM_CPU[$who]:-0} + c1 - c0 ))
		SUM_REQ[$who]=$(( ${SUM_REQ[$who]:-0} + R_requests ))
		after=$(mock_total)
		[ "$after" = "$before" ] || { echo "  !! $who made $((after - before)) upstream calls: not all hits"; fail=1; }
		[ "$R_errors" = 0 ] && [ "$R_non2xx" = 0 ] || { echo "  !! $who had errors"; fail=1; }
		SUM_RPS[$who]=$(( ${SUM_RPS[$who]:-0} + R_rps ))
		SUM_P50[$who]=$(( ${SUM_P50[$who]:-0} + R_p50_us ))
		SUM_P99[$who]=$(( ${SUM_P99[$who]:-0} + R_p99_us ))
	done
done
# cpu_per_req WHO: server CPU microseconds per request over all rounds.
cpu_per_req() { awk -v t="${SUM_CPU[$1]}" -v n="${SUM_REQ[$1]}" -v hz="$TCK" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print 0 }'; }
printf '  %-10s %12s %10s %10s %16s\n' "" "req/s" "p50" "p99" "server CPU/req"
for who in nginx llmcached; do
	[ -n "${SUM_RPS[$who]:-}" ] || continue
	printf '  %-10s %12d %10s %10s %14sus\n' "$who" $((SUM_RPS[$who] / ROUNDS)) "$(us $((SUM_P50[$who] / ROUNDS)))" \
		"$(us $((SUM_P99[$who] / ROUNDS)))" "$(cpu_per_req $who)"
done
if [ $HAVE_LLMC = 1 ]; then
	echo "  ratio llmcached/nginx: throughput $(ratio "${SUM_RPS[llmcached]}" "${SUM_RPS[nginx]}")x (bar >= 1.0, goal 1.5)," \
		"p99 $(ratio "${SUM_P99[llmcached]}" "${SUM_P99[nginx]}")x (bar <= 1.0), p50 $(ratio "${SUM_P50[llmcached]}" "${SUM_P50[nginx]}")x," \
		"server CPU per request $(ratio "$(cpu_per_req llmcached)" "$(cpu_per_req nginx)")x (lower is cheaper)"
fi

echo
echo "-- 2. a 200 KB prompt, sent twice to each --"
BIG=$TMP/big.json
node -e 'const t="Summarise this document. "+"The quick brown fox jumps over the lazy dog. ".repeat(4600);
process.stdout.write(JSON.stringify({model:"bench-model",temperature:0,messages:[{role:"user",content:t.slice(0,200*1024)}]}))' >"$BIG"
echo "  body: $(wc -c <"$BIG") bytes"
big_case() { # name url header
	local b a s1 s2
	b=$(mock_total)
	s1=$(header_of "$2" "$BIG" "$3")
	s2=$(header_of "$2" "$BIG" "$3")
	a=$(mock_total)
	echo "  $1: first $3: $s1, second: $s2; upstream calls: $((a - b))"
}
big_case nginx "$NGX" X-Cache-Status
[ $HAVE_LLMC = 1 ] && big_case llmcached "$LLMC" X-LLM-Cache
grep -m1 'too small' "$TMP/nginx/error.log" 2>/dev/null | sed 's/^.*\[crit\]/  nginx error.log: [crit]/' | cut -c1-160 || true

echo
echo "-- 3. hit latency at moderate load: wrk -t1 -c$MOD_CONNS, each connection pausing ${MOD_DELAY_MS} ms between requests, ${MISS_DURATION}s, $LAT_ROUNDS rounds --"
# min_into VAR VALUE: VAR = min(VAR, VALUE), VAR unset counts as +inf.
min_into() { if [ -z "${!1:-}" ] || [ "$2" -lt "${!1}" ]; then printf -v "$1" '%s' "$2"; fi; }
for ((r = 1; r <= LAT_ROUNDS; r++)); do
	for who in nginx llmcached; do
		if [ $who = nginx ]; then url=$NGX; else [ $HAVE_LLMC = 1 ] || continue; url=$LLMC; fi
		run_wrk "$who (round $r)" "$url" BODY_FILE="$BODY" DELAY_MS="$MOD_DELAY_MS" -- -t1 -c"$MOD_CONNS" -d"${MISS_DURATION}s"
		min_into "MOD_P50_$who" "$R_p50_us"
		min_into "MOD_P99_$who" "$R_p99_us"
	done
done
echo "  best of $LAT_ROUNDS: nginx p50 $(us "$MOD_P50_nginx") p99 $(us "$MOD_P99_nginx")"
if [ $HAVE_LLMC = 1 ]; then
	echo "  best of $LAT_ROUNDS: llmcached p50 $(us "$MOD_P50_llmcached") p99 $(us "$MOD_P99_llmcached")" \
		"(goal: a hit adds < 1 ms p99: $([ "$MOD_P99_llmcached" -lt 1000 ] && echo met || echo NOT met))"
fi

echo
echo "-- 4. miss overhead: a new prompt every request, one connection, ${MISS_DURATION}s each, $LAT_ROUNDS rounds --"
NONCE=$(date +%s%N)
for ((r = 1; r <= LAT_ROUNDS; r++)); do
	run_wrk "mock directly (round $r)" "$MOCK_ORIGIN/v1/chat/completions" UNIQUE=1 NONCE="d$r$NONCE" -- -t1 -c1 -d"${MISS_DURATION}s"
	min_into D50 "$R_p50_us"
	min_into D99 "$R_p99_us"
	[ $HAVE_LLMC = 1 ] || continue
	b=$(mock_total)
	run_wrk "via llmcached (round $r)" "$LLMC" UNIQUE=1 NONCE="l$r$NONCE" -- -t1 -c1 -d"${MISS_DURATION}s"
	a=$(mock_total)
	[ "$((a - b))" -ge "$R_requests" ] || { echo "  !! only $((a - b)) upstream calls for $R_requests requests: not all misses"; fail=1; }
	min_into L50 "$R_p50_us"
	min_into L99 "$R_p99_us"
done
echo "  best of $LAT_ROUNDS: direct p50 $(us "$D50") p99 $(us "$D99")${L50:+; via llmcached p50 $(us "$L50") p99 $(us "$L99")}"
if [ $HAVE_LLMC = 1 ]; then
	echo "  a miss adds: p50 $(us $((L50 - D50))), p99 $(us $((L99 - D99))) over the upstream's own latency" \
		"(goal < 1 ms: $([ $((L50 - D50)) -lt 1000 ] && [ $((L99 - D99)) -lt 1000 ] && echo met || echo NOT met))"
fi

if [ $HAVE_LLMC = 1 ] && [ "$ENTRIES" -gt 0 ]; then
	echo
	echo "-- 5. memory per cached entry: $ENTRIES distinct requests stored, RSS of llmcached before and after --"
	rss() { awk -v k="$1:" '$1 == k { print $2 * 1024 }' "/proc/$LLMC_PID/status"; }
	r0=$(rss VmRSS)
	line=$(node "$HERE/fill.mjs" "$LLMC" "$ENTRIES" 16 "m$NONCE")
	echo "  $line"
	sleep 1
	r1=$(rss VmRSS)
	hwm=$(rss VmHWM)
	resp=$(sed -E 's/.* resp_bytes=([0-9]+).*/\1/' <<<"$line")
	okn=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<<"$line")
	echo "  RSS before $((r0 / 1024)) KiB, after $((r1 / 1024)) KiB (peak $((hwm / 1024)) KiB); response bodies $((resp / 1024)) KiB"
	if [ "$okn" -gt 0 ]; then
		echo "  per entry: $(((r1 - r0) / okn)) bytes of RSS, of which $((resp / okn)) the response body;" \
			"overhead beyond the response: $(((r1 - r0 - resp) / okn)) bytes/entry (includes key, request-side state, allocator slack)"
	fi
fi

echo
if [ $HAVE_LLMC = 1 ] && [ $fail = 0 ]; then
	echo "bench-exact: done"
else
	echo "bench-exact: INCOMPLETE (see !! above)"
	exit 1
fi
