#!/usr/bin/env bash
# build.sh -- configure and build outbox-relay with CMake.  One build command for
# people, scripts and docker/Dockerfile alike, so the container image is built exactly
# as a developer or CI builds.  It installs nothing: run scripts/deps.sh first.
#
#   scripts/build.sh                            build/, RelWithDebInfo, every target
#   scripts/build.sh -B build-asan -DRELAY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
#                                               another directory, more cmake arguments
#   scripts/build.sh --target outbox-relay      only the daemon (repeatable)
#   scripts/build.sh --install /usr/local       also install the daemon, stripped, as
#                                               /usr/local/bin/outbox-relay
#
# Every argument that is not one of the options above is passed to cmake's configure
# step, after the default -DCMAKE_BUILD_TYPE=RelWithDebInfo, so it can override it.
# CC picks the compiler as usual (CC=clang scripts/build.sh -B build-clang); CMake
# remembers the compiler of an existing build directory, so use a new directory to
# change it.  JOBS bounds the parallel compile jobs (default: the number of CPUs).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

dir=build
install_prefix=
targets=()
cmake_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    -B | --build-dir)
        [ $# -ge 2 ] || usage
        dir=$2
        shift 2
        ;;
    -t | --target)
        [ $# -ge 2 ] || usage
        targets+=(--target "$2")
        shift 2
        ;;
    --install)
        [ $# -ge 2 ] || usage
        install_prefix=$2
        shift 2
        ;;
    -h | --help)
        usage
        ;;
    *)
        cmake_args+=("$1")
        shift
        ;;
    esac
done

if ! command -v cmake >/dev/null 2>&1; then
    echo "build.sh: cmake not found: run scripts/deps.sh first" >&2
    exit 1
fi
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo ${cmake_args[@]+"${cmake_args[@]}"} >/dev/null
cmake --build "$dir" -j"$jobs" ${targets[@]+"${targets[@]}"}

if [ -n "$install_prefix" ]; then
    # Stripped: the image and an installed copy need no debug information; the build
    # directory keeps the unstripped binary for debugging.
    install -D -m 0755 -s "$dir/outbox-relay" "$install_prefix/bin/outbox-relay"
    echo "installed $install_prefix/bin/outbox-relay"
fi
