#!/usr/bin/env bash
# Copy onnxruntime-web's wasm runtime from npm into static/vendor/, for analysis in the page.
#
# Why fetched here and not committed: the runtime's wasm is 14 MB (the house rule keeps files
# over 1 MB out of git), and npm is one of the registries every install can reach. Why no
# node_modules: only three files of the 33 MB package are served (the wasm-only ES module, its
# Emscripten glue and the SIMD+threads wasm, the one wasm build 1.30.0 ships), and the
# bundled module carries its own dependencies. The tarball is checked against the digest
# pinned below, so a re-published or tampered package stops the install instead of being
# served. The licence (MIT, Microsoft) is committed beside the folder: the package has no file
# of its own for it.
#
# Usage: scripts/vendor-onnxruntime-web.sh [DEST]   (DEST: static/vendor/onnxruntime-web-VERSION)
set -euo pipefail

VERSION=1.30.0
SHA256=d2228df7e4616bc3348bf504ee888f3bec43789a273f0a63f3e68d203ce3bf71
FILES=(ort.wasm.min.mjs ort-wasm-simd-threaded.mjs ort-wasm-simd-threaded.wasm)

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/static/vendor/onnxruntime-web-$VERSION}

if ! command -v npm >/dev/null 2>&1; then
  "$root/scripts/debian-deps.sh" npm
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "onnxruntime-web@$VERSION" >/dev/null)
tarball=$work/onnxruntime-web-$VERSION.tgz
actual=$(sha256sum "$tarball" | cut -d' ' -f1)
if [ "$actual" != "$SHA256" ]; then
  echo "onnxruntime-web $VERSION from npm has sha256 $actual, not the pinned $SHA256: not vendored" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" "${FILES[@]/#/package/dist/}"
mkdir -p "$dest"
for file in "${FILES[@]}"; do
  cp "$work/package/dist/$file" "$dest/$file"
done
echo "$VERSION $SHA256" >"$dest/VERSION"
echo "onnxruntime-web $VERSION vendored into ${dest#"$root"/}"
