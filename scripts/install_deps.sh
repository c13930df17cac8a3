#!/usr/bin/env bash
# Install the Debian/Ubuntu packages PERSIST needs to build and test. Idempotent: packages
# already installed are skipped, and apt is only touched when something is missing.
#
#   ./scripts/install_deps.sh            build + test dependencies (what run.sh/test.sh need)
#   ./scripts/install_deps.sh --python   also the optional Python reference checks (PyTorch)
#   ./scripts/install_deps.sh --list     print the package list and exit
#
# Runs apt as root, or through sudo when not root. PERSIST_SKIP_DEPS=1 skips everything
# (e.g. on a machine whose packages are managed otherwise).
set -euo pipefail

packages=(
    cmake ninja-build g++                      # toolchain (CMake >= 3.25: Debian 12 / Ubuntu 23.04+)
    libeigen3-dev                              # dense linear algebra (networks, optimizers)
    xtl-dev xtensor-dev libxtensor-blas-dev    # N-d arrays (grids, replay, small solves)
    libopenblas-dev                            # BLAS/LAPACK for xtensor-blas
    libboost-dev                               # Boost.Hana (header-only)
    nlohmann-json3-dev libyaml-cpp-dev         # configs, metrics, checkpoint headers
    libthrust-dev                              # batched rollouts (Thrust 1.17, CPP/OMP backends)
    catch2 libbenchmark-dev                    # tests, benchmarks
    python3                                    # scripts
)
python_packages=(
    python3-torch python3-numpy                # reference values for optimizer/layer checks
)

with_python=0
for arg in "$@"; do
    case "$arg" in
        --python) with_python=1 ;;
        --list) printf '%s\n' "${packages[@]}" "${python_packages[@]/#/(--python) }"; exit 0 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "install_deps.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
    esac
done
((with_python)) && packages+=("${python_packages[@]}")

if [[ "${PERSIST_SKIP_DEPS:-0}" == 1 ]]; then
    echo "install_deps: PERSIST_SKIP_DEPS=1, not checking packages"
    exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install_deps: not a Debian-based system (no dpkg-query); install the equivalents of:" >&2
    printf '  %s\n' "${packages[@]}" >&2
    echo "install_deps: continuing; CMake will report anything still missing." >&2
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "install_deps: all ${#packages[@]} packages already installed"
    exit 0
fi

echo "install_deps: installing ${missing[*]}"
if ((EUID == 0)); then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "install_deps: not root and no sudo; as root, run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update
"${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
