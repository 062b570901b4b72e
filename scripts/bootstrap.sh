#!/usr/bin/env bash
# Create or refresh .venv at the repository root and install the project into it (editable).
# Re-running is cheap: pip skips what is already satisfied.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
# A fresh install of torch (a CUDA build from the machine's wheel cache) and the project takes about
# 7 GiB; a disk that fills half-way leaves a broken .venv and pip's bare "No space left on device".
if ! compgen -G ".venv/lib/python3*/site-packages/torch" >/dev/null; then
    free_kib="$(df -Pk "$root" | awk 'NR == 2 {print $4}')"
    if [ "$free_kib" -lt $((8 * 1024 * 1024)) ]; then
        echo "error: only $((free_kib / 1024)) MiB free on the disk of $root; installing the project into .venv needs about 8 GiB. Free some space (old clones, /tmp) and run again." >&2
        exit 2
    fi
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
