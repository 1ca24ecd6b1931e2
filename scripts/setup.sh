#!/usr/bin/env bash
# setup.sh — install what is missing (Debian 12), then configure and build nnc.
#
#   scripts/setup.sh                  install build deps, build into build/
#   scripts/setup.sh --sanitize       same, but build into build-asan/ with -DNNC_SANITIZE=ON
#   scripts/setup.sh --bench          also install PyTorch and matplotlib (bench/, regenerating goldens)
#   scripts/setup.sh --no-build       only install packages
#   scripts/setup.sh --no-install     only configure and build
#
# Idempotent: packages are checked with dpkg-query first, and apt-get (update + install) runs
# only when something is missing.  Installing needs root (or sudo).  Environment:
#   NNC_JOBS      parallel build jobs (default: nproc)
#   NNC_BUILD_DIR build directory (default: build, or build-asan with --sanitize)
set -euo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

want_bench=0 sanitize=0 do_build=1 do_install=1
for arg in "$@"; do
  case "$arg" in
    --bench) want_bench=1 ;;
    --sanitize) sanitize=1 ;;
    --no-build) do_build=0 ;;
    --no-install) do_install=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: error: %s\n' "$*" >&2; exit 1; }

# --- packages ----------------------------------------------------------------------------------
PACKAGES=(llvm-19-dev clang-19 libclang-rt-19-dev flex bison libopenblas-dev libcmocka-dev
          libprotobuf-c-dev protobuf-c-compiler  # the ONNX reader (compiler/onnx/)
          cmake make gcc libc6-dev pkg-config python3 python3-numpy graphviz
          python3-dask python3-distributed python3-pandas)  # Dask: tests/python/test_dask.py
if [ "$want_bench" = 1 ]; then
  PACKAGES+=(python3-torch python3-torchvision python3-onnx libonnx-testdata python3-matplotlib)
fi

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null || true)" = "ii " ]
}

install_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    log "not a Debian system (no dpkg-query/apt-get): skipping package installation."
    log "make sure these (or their equivalents) are installed: ${PACKAGES[*]}"
    return 0
  fi
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "all required packages are installed"
    return 0
  fi
  log "missing packages: ${missing[*]}"

  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      die "installing packages needs root. Run this script as root, or install them first:
  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    fi
  fi

  export DEBIAN_FRONTEND=noninteractive
  # Wait for a dpkg lock held by e.g. unattended-upgrades on a freshly booted machine.
  local apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
  local try
  for try in 1 2 3; do
    if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "${apt_opts[@]}" update; then
      break
    fi
    [ "$try" -lt 3 ] || die "apt-get update failed"
    log "apt-get update failed; retrying in $((try * 10)) s"
    sleep $((try * 10))
  done
  for try in 1 2 3; do
    if "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "${apt_opts[@]}" install -y \
         --no-install-recommends "${missing[@]}" </dev/null; then
      break
    fi
    [ "$try" -lt 3 ] || die "apt-get install failed for: ${missing[*]}"
    log "apt-get install failed; retrying in $((try * 10)) s"
    sleep $((try * 10))
  done
  for p in "${missing[@]}"; do
    is_installed "$p" || die "package $p is still not installed after apt-get install"
  done
  log "installed: ${missing[*]}"
}

# --- build -------------------------------------------------------------------------------------
build() {
  local dir cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  if [ "$sanitize" = 1 ]; then
    dir="${NNC_BUILD_DIR:-build-asan}"
    cmake_args+=(-DNNC_SANITIZE=ON)
  else
    dir="${NNC_BUILD_DIR:-build}"
    cmake_args+=(-DNNC_SANITIZE=OFF)
  fi
  local jobs="${NNC_JOBS:-$(nproc 2>/dev/null || echo 2)}"
  command -v cmake >/dev/null 2>&1 || die "cmake not found (run without --no-install?)"
  log "configuring $dir (${cmake_args[*]})"
  cmake -S . -B "$dir" "${cmake_args[@]}"
  log "building $dir with $jobs jobs"
  cmake --build "$dir" -j "$jobs"
  [ -x "$dir/nnc" ] || die "build finished but $dir/nnc is missing"
  log "built $dir/nnc"
}

[ "$do_install" = 1 ] && install_packages
[ "$do_build" = 1 ] && build
exit 0
