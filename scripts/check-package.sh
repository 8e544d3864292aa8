#!/usr/bin/env bash
# Check the Debian package that `make deb` built (run by `make check-package`).
#
#   scripts/check-package.sh PKG_DIR
#
# 1. lintian: prints every tag; fails on an error tag other than the two
#    explained in README ("Install as a service": the maintainer address is
#    a placeholder until the project has one).
# 2. Unpacks the .deb into a scratch root (dpkg-deb -x: nothing is
#    installed on this machine) and checks the tree: binaries, unit,
#    conffile, man page, the encoder's weights.
# 3. Starts the packaged daemon from the scratch root on its packaged
#    configuration (the demo upstream, a free port, a scratch data dir)
#    and checks a miss, a hit and a clean stop.
set -euo pipefail
pkgdir=${1:?PKG_DIR}
deb=$(ls "$pkgdir"/llmcached_*_*.deb | grep -v dbgsym | head -1)
echo "check-package: $deb"

echo "== lintian"
tags=$(lintian "$deb" 2>&1 | grep -v 'running with root privileges' || true)
printf '%s\n' "${tags:-(no tags)}"
unexpected=$(printf '%s\n' "$tags" | grep '^E:' | grep -v -E 'bogus-mail-host(-in-debian-changelog)? ' || true)
if [ -n "$unexpected" ]; then
	echo "check-package: unexpected lintian errors:"; printf '%s\n' "$unexpected"; exit 1
fi

echo "== contents"
root=$(mktemp -d /tmp/llmc-pkg-XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$root"' EXIT
pid=
dpkg-deb -x "$deb" "$root"
dpkg-deb -f "$deb" Depends
for f in usr/bin/llmcached usr/bin/llmcached-replay usr/bin/llmcached-embed; do
	[ -x "$root/$f" ] || { echo "missing $f"; exit 1; }
done
for f in lib/systemd/system/llmcached.service etc/llmcached/llmcached.conf \
	usr/share/man/man8/llmcached.8.gz usr/share/man/man1/llmcached-replay.1.gz \
	usr/share/man/man1/llmcached-embed.1.gz usr/share/llmcached/models/use-lite/model.json \
	usr/share/llmcached/contrib/llmcached.json usr/share/llmcached/contrib/llmcached.rules.yml; do
	[ -f "$root/$f" ] || { echo "missing $f"; exit 1; }
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/llmcached/llmcached.conf
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst | grep -q 'llmcached.service'
echo "tree ok: $(find "$root" -type f | wc -l) files, conffile and unit registered"

echo "== run"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$root/usr/bin/llmcached" --config "$root/etc/llmcached/llmcached.conf" \
	--listen "127.0.0.1:$port" --data-dir "$root/var" --admin-token pkg --demo-delay 50 \
	--embed-model-path "$root/usr/share/llmcached/models/use-lite" >"$root/log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
req='{"model":"demo","messages":[{"role":"user","content":"is the package alive?"}]}'
a=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/v1/chat/completions" -d "$req" | grep -i '^x-llm-cache:' | tr -d '\r')
b=$(curl -s -D - -o /dev/null "http://127.0.0.1:$port/v1/chat/completions" -d "$req" | grep -i '^x-llm-cache:' | tr -d '\r')
echo "first: $a; second: $b"
[ "$a" = "X-LLM-Cache: MISS" ] && [ "$b" = "X-LLM-Cache: HIT-EXACT" ] || { cat "$root/log"; exit 1; }
kill -TERM "$pid"
wait "$pid" && rc=0 || rc=$?
pid=
[ "$rc" -eq 0 ] || { echo "exit status $rc"; cat "$root/log"; exit 1; }
echo "check-package: ok"
