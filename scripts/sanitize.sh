#!/usr/bin/env bash
# An AddressSanitizer + UndefinedBehaviorSanitizer build (HEYGEM_SANITIZE=ON) in its own folder,
# running test suites under the sanitizers.
#
#   scripts/sanitize.sh          the full run: every unit suite plus the integration and hardening
#                                suites against an instrumented heygemd (long: all of libtorch's
#                                users are rebuilt)
#   scripts/sanitize.sh --ci     the CI subset: the suites without torch code of their own, i.e.
#                                test_common (protocol, framing, fd passing), test_daemon (config,
#                                job store, scheduler, socket server) and test_cli (heygemctl); their
#                                integration tests ServerTest.* (socket server + scheduler + spool)
#                                and ClientEndToEnd.* (heygemctl against that server) included
#   further arguments go to ctest (e.g. -R protocol)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mode=full
if [[ ${1:-} == --ci ]]; then mode=ci; shift; fi
build_dir=${HEYGEM_SANITIZE_BUILD_DIR:-build-asan}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo}

mkdir -p "$build_dir"
cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHEYGEM_SANITIZE=ON \
  >"$build_dir/configure.log" 2>&1 || { cat "$build_dir/configure.log" >&2; exit 1; }

ci_suites=(test_common test_daemon test_cli)
if [[ $mode == ci ]]; then
  targets=()
  for t in "${ci_suites[@]}"; do
    # A suite whose sources are not there yet is simply not part of the build.
    if ninja -C "$build_dir" -t targets all 2>/dev/null | grep -q "^$t:"; then targets+=("$t"); fi
  done
  cmake --build "$build_dir" --target "${targets[@]}" -j "${HEYGEM_JOBS:-$(nproc)}"
  pattern=$(IFS='|'; echo "^(${targets[*]})\\.")
  set -- -R "$pattern" "$@"
else
  cmake --build "$build_dir" -j "${HEYGEM_JOBS:-$(nproc)}"
  set -- -LE long "$@"  # the short versions of the hardening suites; the long ones add nothing here
fi

# halt_on_error: a UB report fails the test instead of scrolling past.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build_dir"
ctest --output-on-failure -j "${HEYGEM_TEST_JOBS:-2}" "$@"
