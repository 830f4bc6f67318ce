#!/usr/bin/env bash
# Files a gpu-bench run's results in the repo: bench/results/DATE-DEVICE.md (+ .json), DATE and DEVICE
# taken from the run's own results.json. Commit them afterwards.
# Usage: save-results.sh RESULTS_DIR   (the folder holding results.md and results.json, e.g. files_at)
set -euo pipefail
from=${1:?usage: save-results.sh RESULTS_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[[ -f $from/results.md && -f $from/results.json ]] || { echo "save-results: $from has no results.md/results.json" >&2; exit 1; }
name=$(python3 - "$from/results.json" <<'PY'
import json, re, sys
info = json.load(open(sys.argv[1])).get("info", {})
date = (info.get("date") or "unknown-date")[:10]
device = re.sub(r"[^a-z0-9]+", "-", (info.get("device") or "unknown-device").lower()).strip("-")
print(f"{date}-{device}")
PY
)
mkdir -p "$repo/bench/results"
target=$repo/bench/results/$name
n=1
while [[ -e $target.md ]]; do n=$((n + 1)); target=$repo/bench/results/$name-$n; done
cp "$from/results.md" "$target.md"
cp "$from/results.json" "$target.json"
echo "$target.md"
