#!/usr/bin/env bash
# Fails when a test that tests/expected-tests.txt names is no longer registered with ctest: a suite
# dropped by a renamed or broken library, or a folder CMake stopped adding, is caught here instead of
# leaving CI green. New tests are fine (--update records them).
# Usage: scripts/check-test-list.sh BUILD_DIR [--update]
# (Parameterised tests are named without their "# GetParam() = ..." note, which can hold addresses.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:?usage: check-test-list.sh BUILD_DIR [--update]}
expected="$root/tests/expected-tests.txt"
actual=$(cd "$build_dir" && ctest -N 2>&1 | sed -n 's/^ *Test *#[0-9]*: //p' | sed 's/  # GetParam() = .*//' | LC_ALL=C sort -u)
if [[ -z $actual ]]; then
  echo "check-test-list: ctest lists no tests in $build_dir" >&2
  exit 1
fi
if [[ ${2:-} == --update ]]; then
  printf '%s\n' "$actual" > "$expected"
  echo "check-test-list: recorded $(wc -l < "$expected") tests in tests/expected-tests.txt"
  exit 0
fi
if [[ ! -f $expected ]]; then
  echo "check-test-list: $expected is missing (scripts/check-test-list.sh $build_dir --update writes it)" >&2
  exit 1
fi
missing=$(LC_ALL=C comm -23 <(LC_ALL=C sort -u "$expected") <(printf '%s\n' "$actual"))
listed=$(wc -l <<< "$actual")
if [[ -n $missing ]]; then
  echo "check-test-list: $(wc -l <<< "$missing") of $(wc -l < "$expected") expected tests are gone ($listed listed):" >&2
  sed 's/^/  /' <<< "$missing" >&2
  echo "If that is intended, run scripts/check-test-list.sh $build_dir --update and commit the list." >&2
  exit 1
fi
echo "check-test-list: all $(wc -l < "$expected") expected tests are registered ($listed listed)"
