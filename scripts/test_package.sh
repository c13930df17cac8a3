#!/usr/bin/env bash
# Installed-package test: install PERSIST to a temporary prefix (configured like a user would,
# without tests), then configure, build and run the consumer project tests/package against it
# with CMAKE_PREFIX_PATH, once with the default Thrust device system (OMP) and once overriding
# it to CPP from the consumer. Also checks the installed CMake files are relocatable (no path
# into the source or build tree), that the consumer found the same Thrust as the build, and
# that the optional component `yaml` (persist::yaml, needs yaml-cpp) works.
#
#   ./scripts/test_package.sh [--keep]     --keep: leave the temporary directory behind
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=0
[[ "${1:-}" == --keep ]] && keep=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/persist-package.XXXXXX")
cleanup() {
    local rc=$?
    if ((rc == 0 && keep == 0)); then rm -rf "$tmp"; else echo "test_package: kept $tmp"; fi
}
trap cleanup EXIT

prefix="$tmp/prefix"
echo "test_package: installing PERSIST to $prefix"
cmake -S "$PERSIST_ROOT" -B "$tmp/persist-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPERSIST_BUILD_TESTS=OFF -DPERSIST_BUILD_EXAMPLES=OFF -DPERSIST_BUILD_BENCH=OFF \
    -DCMAKE_INSTALL_PREFIX="$prefix" >"$tmp/persist-configure.log" || {
    cat "$tmp/persist-configure.log"; exit 1; }
cmake --install "$tmp/persist-build" | tail -n 3
build_thrust_dir=$(sed -n 's/^Thrust_DIR:PATH=//p' "$tmp/persist-build/CMakeCache.txt")

config_dir="$prefix/share/cmake/persist"
for f in persistConfig.cmake persistConfigVersion.cmake persistTargets.cmake; do
    [[ -f "$config_dir/$f" ]] || { echo "test_package: $config_dir/$f not installed" >&2; exit 1; }
done
[[ -f "$prefix/include/persist/persist.hpp" ]] || { echo "test_package: headers not installed" >&2; exit 1; }
if grep -rn -e "$PERSIST_ROOT" -e "$tmp/persist-build" "$config_dir"; then
    echo "test_package: installed CMake files refer to the source/build tree (not relocatable)" >&2
    exit 1
fi

# consumer <name> <expected device system> [extra cmake args...]
consumer() {
    local name="$1" device="$2"
    shift 2
    local dir="$tmp/consumer-$name"
    echo "test_package: consumer '$name' (expects Thrust device system $device)"
    cmake -S "$PERSIST_ROOT/tests/package" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$prefix" "$@" >"$dir.configure.log" || { cat "$dir.configure.log"; exit 1; }
    grep -E '^-- consumer:' "$dir.configure.log"
    local found_dir thrust_dir
    found_dir=$(sed -n 's/^persist_DIR:PATH=//p' "$dir/CMakeCache.txt")
    if [[ "$found_dir" != "$config_dir" ]]; then
        echo "test_package: consumer found persist in '$found_dir', expected '$config_dir'" >&2
        exit 1
    fi
    thrust_dir=$(sed -n 's/^Thrust_DIR:PATH=//p' "$dir/CMakeCache.txt")
    if [[ "$thrust_dir" != "$build_thrust_dir" ]]; then
        echo "test_package: consumer uses Thrust from '$thrust_dir', the build used '$build_thrust_dir'" >&2
        exit 1
    fi
    cmake --build "$dir" -j "$PERSIST_JOBS"
    local out
    out=$("$dir/persist_consumer") || { echo "$out"; exit 1; }
    echo "$out"
    grep -q "device system $device:" <<<"$out" || {
        echo "test_package: consumer did not run on the $device device system" >&2; exit 1; }
    # The optional yaml component: install_deps.sh installs yaml-cpp, so it must be there.
    if [[ ! -x "$dir/persist_consumer_yaml" ]]; then
        echo "test_package: persist::yaml (component yaml) was not found by the consumer" >&2
        exit 1
    fi
    "$dir/persist_consumer_yaml"
}
consumer default OMP
consumer cpp CPP -DPERSIST_THRUST_DEVICE=CPP
echo "test_package: installed package OK"
