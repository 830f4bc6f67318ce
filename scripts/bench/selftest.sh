#!/usr/bin/env bash
# Self-tests of the benchmark harness (CPU only): workload, result writer, records, phase runner, and
# — where the ignored .bench folder is present — the peer's librosa shim and checkpoint writer.
# Needs a python3 with numpy (and torch for the checkpoint round trip): Debian's /usr/bin/python3 here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/tests"
export PYTHONDONTWRITEBYTECODE=1  # nothing left behind in the tree
exec "${PYTHON:-/usr/bin/python3}" -m unittest discover -s . -p 'test_*.py' "$@"
