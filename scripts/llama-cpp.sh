#!/usr/bin/env bash
# Builds llama.cpp's CPU tools from the copy vendored in PyPI's
# llama-cpp-python sdist, as the outside speed and perplexity baseline of
# the `vs_llama_cpp` benchmark (tests/benches/vs_llama_cpp.rs). Nothing of
# llama.cpp is committed here: the sdist is downloaded (pinned version,
# checked by SHA-256), unpacked and built under .cache/llama-cpp/.
#
#   bash scripts/llama-cpp.sh        # prints the folder holding the binaries
#
# Needs cmake, g++ and make (installed with apt-get when run as root).
# Built once; a later call only checks that the binaries are there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/tools.sh"

VERSION=0.3.36
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
TOOLS=(llama-bench llama-completion llama-perplexity llama-quantize)

dir=$root/.cache/llama-cpp
src=$dir/llama_cpp_python-$VERSION
bin=$dir/build-$VERSION/bin
done_all=1
for t in "${TOOLS[@]}"; do [ -x "$bin/$t" ] || done_all=0; done
if [ $done_all = 1 ]; then
  echo "$bin"
  exit 0
fi

need_tools cmake g++ make
mkdir -p "$dir"
tarball=$dir/llama_cpp_python-$VERSION.tar.gz
if [ ! -f "$tarball" ] || ! echo "$SHA256  $tarball" | sha256sum -c --quiet - 2>/dev/null; then
  echo "llama-cpp.sh: downloading llama-cpp-python $VERSION (sdist) from PyPI" >&2
  rm -f "$tarball"
  python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
    "llama-cpp-python==$VERSION" -d "$dir" >&2 ||
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$dir" >&2
fi
echo "$SHA256  $tarball" | sha256sum -c --quiet - || {
  echo "llama-cpp.sh: $tarball does not have the pinned SHA-256 $SHA256" >&2
  exit 1
}
rm -rf "$src"
tar -xzf "$tarball" -C "$dir"
[ -f "$src/vendor/llama.cpp/CMakeLists.txt" ] || {
  echo "llama-cpp.sh: $tarball holds no vendor/llama.cpp" >&2
  exit 1
}
echo "llama-cpp.sh: building ${TOOLS[*]} (CPU only, Release) into $bin" >&2
cmake -S "$src/vendor/llama.cpp" -B "$dir/build-$VERSION" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$dir/build-$VERSION" -j "$(nproc)" --target "${TOOLS[@]}" >&2
for t in "${TOOLS[@]}"; do
  [ -x "$bin/$t" ] || { echo "llama-cpp.sh: $bin/$t was not built" >&2; exit 1; }
done
echo "$bin"
