#!/usr/bin/env bash
# The whole test suite, after creating or refreshing .venv. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
# The labeling tool's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
# Without it (no root, no network) those tests skip and say so; the rest of the suite still runs.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
        || echo "warning: could not install Debian's chromium (needs root and the package mirror); the browser tests will skip" >&2
fi
cd "$root"
exec .venv/bin/python -m pytest "$@"
