#!/usr/bin/env bash
# Install what the project needs and is missing, on Debian 12.
#
#   scripts/deps.sh [GROUP ...]     GROUP: build (default), test, run, bench
#
# Each group's Debian packages are listed in scripts/deps.d/GROUP*.list: one
# package a line, optionally followed by a command that, when already on PATH,
# means the package is not needed (node and npm may come from elsewhere);
# '#' starts a comment. A module adds its own file there instead of editing
# this script. The `test` group also installs the npm packages of
# tests/integration (the official `openai` client) from its lockfile.
# Idempotent and quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(build)

want=()
for g in "${groups[@]}"; do
	for f in scripts/deps.d/"$g"*.list; do
		[ -f "$f" ] || continue
		while read -r pkg cmd _; do
			case "$pkg" in ''|'#'*) continue ;; esac
			if [ -n "${cmd:-}" ] && [ "${cmd#\#}" = "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then
				continue
			fi
			want+=("$pkg")
		done < "$f"
	done
done

missing=()
for p in "${want[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for g in "${groups[@]}"; do
	if [ "$g" = test ] && [ -f tests/integration/package.json ]; then
		# every dependency of package.json present, or npm ci (a new one
		# added by a merge is installed on the next run)
		if ! node -e 'const p=require("./tests/integration/package.json");
			for (const d of Object.keys(p.dependencies||{}))
				require("fs").statSync("tests/integration/node_modules/"+d);' 2>/dev/null; then
			echo "deps: npm ci in tests/integration" >&2
			(cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
		fi
	fi
	# A group may ship a hook script for things apt cannot do (model weights).
	if [ -x "scripts/deps.d/$g.sh" ]; then "scripts/deps.d/$g.sh"; fi
done
exit 0
