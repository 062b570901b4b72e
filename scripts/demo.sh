#!/usr/bin/env bash
# The main job end to end on the embedded default: synthetic line data, training, bundle, verify, eval.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/inspection demo "$@"
