#!/usr/bin/env bash
# Install the Debian packages named as arguments if any is missing. Elsewhere (macOS,
# Windows, other distributions) print what to install by hand and carry on.
#
# A fresh Debian or Ubuntu machine often has its package manager busy for minutes after boot
# (unattended upgrades): apt-get then fails at once with "Could not get lock". So this waits
# for the package manager's locks first, for at most EMOCARE_APT_WAIT seconds (600 unless
# set), saying who holds them, and only then runs apt-get.
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

# The files apt and dpkg lock. They take fcntl locks, which flock(1) cannot test and which an
# unprivileged user cannot try to take; /proc/locks lists every lock by inode, for anyone.
# EMOCARE_APT_LOCKS replaces the list (the tests point it at files of their own).
read -r -a lock_files <<<"${EMOCARE_APT_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"
max_wait=${EMOCARE_APT_WAIT:-600}
poll=${EMOCARE_APT_POLL:-2}

# Prints "PID FILE" for the first lock file some process holds; nothing when all are free.
lock_holder() {
  local file inode pid
  for file in "${lock_files[@]}"; do
    inode=$(stat -L -c %i "$file" 2>/dev/null) || continue
    # /proc/locks: "1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (PID, then MAJ:MIN:INODE)
    pid=$(awk -v inode="$inode" '{ n = split($6, dev, ":"); if (dev[n] == inode) { print $5; exit } }' /proc/locks 2>/dev/null)
    if [ -n "$pid" ]; then
      echo "$pid $file"
      return
    fi
  done
}

describe() {  # "process 1234 (apt-get)"
  local comm
  comm=$(cat "/proc/$1/comm" 2>/dev/null || echo "gone")
  echo "process $1 ($comm)"
}

# milliseconds since the start; EPOCHREALTIME (bash 5) has a locale's decimal point
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((t / 1000)); }
start=$(now_ms)
waited_s() { echo $((($(now_ms) - start) / 1000)); }
said=""
while holder=$(lock_holder) && [ -n "$holder" ]; do
  waited=$(waited_s)
  if [ "$waited" -ge "$max_wait" ]; then
    echo "The package manager is still busy after ${max_wait} s: $(describe "${holder%% *}") holds ${holder#* }." \
      "Run this again once it has finished, or install by hand: sudo apt-get install -y ${missing[*]}" \
      "(EMOCARE_APT_WAIT=SECONDS waits longer)." >&2
    exit 1
  fi
  if [ "$holder" != "$said" ]; then
    echo "Waiting for the package manager to finish before installing ${missing[*]}:" \
      "$(describe "${holder%% *}") holds ${holder#* }; waiting up to $((max_wait - waited)) s more." >&2
    said=$holder
  fi
  sleep "$poll"
done
[ -n "$said" ] && echo "The package manager is free after $(waited_s) s." >&2

echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another process can take a lock between the check above and apt-get: `apt-get install` then
# waits for what is left of the bound (DPkg::Lock::Timeout, apt 1.9.11 and later), but
# `apt-get update` does not (apt 2.6 fails at once on the lists lock), hence the loop above.
left=$((max_wait - $(waited_s)))
[ "$left" -gt 0 ] || left=1
$sudo apt-get -o DPkg::Lock::Timeout="$left" update -qq
$sudo apt-get -o DPkg::Lock::Timeout="$left" install -y -qq "${missing[@]}" >/dev/null
