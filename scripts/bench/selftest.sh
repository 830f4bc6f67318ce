#!/usr/bin/env bash
# Self-tests of the benchmark harness (CPU only): workload, result writer, records, phase runner, the
# librosa shim and the checkpoint writer against the fixtures, and — where the fetched reference is
# present (PEER, default .bench/wav2lip-ref; scripts/bench/fetch-reference.sh) — the shim through the
# reference's audio.py and the checkpoints loaded strictly by its model classes (skipped otherwise).
# Needs a python3 with numpy (torch for the checkpoints, scipy for audio.py): Debian's /usr/bin/python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/tests"
peer=${PEER:-$(cd ../../.. && pwd)/.bench/wav2lip-ref}
[[ -f $peer/inference.py ]] ||
  echo "selftest: no reference at $peer: the tests through its code are skipped (scripts/bench/fetch-reference.sh)" >&2
export PYTHONDONTWRITEBYTECODE=1  # nothing left behind in the tree
exec "${PYTHON:-/usr/bin/python3}" -m unittest discover -s . -p 'test_*.py' "$@"
