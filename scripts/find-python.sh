#!/usr/bin/env bash
# Print the path of a Python that EmoCare supports (3.11, 3.12 or 3.13) and that really runs;
# the Makefile makes .venv with it. With an argument (make PYTHON=...), check that one only:
# a command or path (python3.13, /usr/bin/python3), or a version (3.13: python3.13 on PATH or
# pyenv's install of it).
#
# Order: 3.11 first, because PyTorch's CPU wheel for the training extra lies on our machines
# for 3.11 only and it is the version CI runs the whole suite on; then 3.12 (Ubuntu 24.04's),
# then 3.13 (Debian 13's). Each candidate is run, not just looked up: a pyenv shim exists for
# every version pyenv knows and refuses the ones not selected ("pyenv: python3.12: command not
# found"), so pyenv's own installs are tried after the commands on PATH.
set -euo pipefail

SUPPORTED="3.11 3.12 3.13"
HOW="install one (Debian 13 and Ubuntu 24.04: sudo apt install python3 python3-venv; elsewhere https://www.python.org/downloads/ or pyenv install 3.11) and run make again, or name it with make PYTHON=/path/to/python3.12."

version_of() {  # "3.12 /abs/path" when "$1" runs; nothing otherwise
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2], sys.executable)' 2>/dev/null </dev/null || true
}

supported() { [[ " $SUPPORTED " == *" $1 "* ]]; }

# Debian and Ubuntu ship venv (ensurepip) apart from their python3.X: without python3.X-venv,
# `python3 -m venv` stops half-way. Install it the way the other Debian packages are.
debian_venv() {  # $1 version, $2 interpreter
  if [[ "$(readlink -f "$2")" == /usr/bin/* ]] && command -v dpkg-query >/dev/null 2>&1; then
    "$(dirname "$0")/debian-deps.sh" "python$1-venv" >&2
  fi
}

choose() {  # $1 candidate; prints the path and returns 0 when it is a supported Python
  local found version path
  found=$(version_of "$1")
  [ -n "$found" ] || return 1
  version=${found%% *}
  path=${found#* }
  supported "$version" || return 2
  debian_venv "$version" "$path"
  echo "Using Python $version ($path)" >&2
  echo "$path"
}

pyenv_pythons() {  # pyenv's own installs of the versions given, newest patch last
  local root v dir
  command -v pyenv >/dev/null 2>&1 || return 0
  root=$(pyenv root 2>/dev/null) || return 0
  for v in "$@"; do
    for dir in "$root"/versions/"$v".*; do
      [ -x "$dir/bin/python$v" ] && echo "$dir/bin/python$v"
    done
  done
}

if [ $# -gt 0 ] && [ -n "$1" ]; then
  if [[ "$1" =~ ^[0-9]+\.[0-9]+$ ]]; then  # a version
    if ! supported "$1"; then
      echo "PYTHON=$1 is not a version EmoCare runs on; it needs Python 3.11, 3.12 or 3.13: $HOW" >&2
      exit 1
    fi
    mapfile -t candidates < <(echo "python$1"; pyenv_pythons "$1")
    for c in "${candidates[@]}"; do
      found=$(version_of "$c")
      [ "${found%% *}" = "$1" ] && choose "$c" && exit 0
    done
    echo "PYTHON=$1: no Python $1 runs here, and EmoCare needs Python 3.11, 3.12 or 3.13: $HOW" >&2
    exit 1
  fi
  rc=0
  choose "$1" || rc=$?
  [ "$rc" -eq 0 ] && exit 0
  if [ "$rc" -eq 2 ]; then
    found=$(version_of "$1")
    echo "PYTHON=$1 is Python ${found%% *}, but EmoCare needs Python 3.11, 3.12 or 3.13: $HOW" >&2
  else
    echo "PYTHON=$1 does not run here, and EmoCare needs Python 3.11, 3.12 or 3.13: $HOW" >&2
  fi
  exit 1
fi

mapfile -t candidates < <(printf '%s\n' python3.11 python3.12 python3.13 python3 python; pyenv_pythons $SUPPORTED)
for c in "${candidates[@]}"; do
  choose "$c" && exit 0
done
echo "EmoCare needs Python 3.11, 3.12 or 3.13 and found none that runs here: $HOW" >&2
exit 1
