#!/usr/bin/env bash
# Run nlbpf's whole test suite: unit tests and the root integration tests that
# load the probes for real. Installs what is missing first (scripts/setup.sh).
#
#   sudo scripts/test.sh              everything
#   sudo scripts/test.sh -k errors    extra arguments go to pytest
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: run as root: the integration tests load eBPF probes" >&2
    exit 1
fi
"$root/scripts/setup.sh" --test --fleet --go
exec "$root/.venv/bin/python" -m pytest -ra "$@" tests
