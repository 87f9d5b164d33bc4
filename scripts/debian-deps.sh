#!/usr/bin/env bash
# Install the Debian packages named as arguments if any is missing. Elsewhere (macOS,
# Windows, other distributions) print what to install by hand and carry on.
set -euo pipefail

missing=()
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "Not a Debian-like system: install these yourself if you need them: $*" >&2
  exit 0
fi
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "Missing Debian packages (run as root): apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
