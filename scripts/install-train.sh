#!/usr/bin/env bash
# Install the training extra (requirements-train.txt: PyTorch and onnx) into a venv:
#   scripts/install-train.sh VENV_PYTHON [TORCH]
# Exit 0 installed, 3 left out on purpose (said why), anything else a failure.
#
# PyTorch's CPU build is all training needs. pip takes it where a CPU wheel is at hand (our
# machines keep torch 2.13.0+cpu for Python 3.11 in pip's find-links); elsewhere, including
# every Python 3.12 and 3.13 here, PyPI's torch 2.13.0 is the CUDA build: measured December
# 2026, 24 packages (torch, triton, nvidia-*), 2.75 GB to download, 4.8 GB installed, against
# 192 MB and 0.7 GB for the CPU wheel. So by default that build is not installed (onnx is) and
# the training tests are skipped; TORCH=pypi installs it anyway (it trains on the CPU too).
set -euo pipefail

py=$1
torch=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
req=("-r" "$here/requirements-train.txt" "-c" "$here/requirements.txt")

case "$torch" in
  pypi) exec "$py" -m pip install "${req[@]}" ;;
  "") ;;
  *)
    echo "TORCH=$torch: use TORCH=pypi (PyPI's build, CUDA on Linux), or leave it empty" >&2
    exit 2
    ;;
esac

report=$(mktemp)
log=$(mktemp)
trap 'rm -f "$report" "$log"' EXIT
"$py" -m pip install --quiet --dry-run --report "$report" "${req[@]}" 2>"$log" || { cat "$log" >&2; exit 1; }
cuda=$("$py" - "$report" <<'EOF'
import json, sys

names = [item["metadata"]["name"] for item in json.load(open(sys.argv[1]))["install"]]
print(" ".join(sorted(n for n in names if n.startswith("nvidia-") or n == "triton")))
EOF
)
if [ -z "$cuda" ]; then
  exec "$py" -m pip install "${req[@]}"
fi
# The rest of the extra (onnx: small, with wheels for every version) is installed all the same.
rest=$(mktemp)
trap 'rm -f "$report" "$log" "$rest"' EXIT
grep -v -i '^torch==' "$here/requirements-train.txt" >"$rest"
"$py" -m pip install -r "$rest" -c "$here/requirements.txt"
version=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
echo "PyTorch left out: for Python $version pip offers only its CUDA build (with its CUDA libraries" \
  "about 2.75 GB to download and 4.8 GB installed), so the training tests are skipped; to train," \
  "run make with TORCH=pypi to install that build, use Python 3.11 where a CPU wheel is at hand," \
  "or see docs/install.md." >&2
exit 3
