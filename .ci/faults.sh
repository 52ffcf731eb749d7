#!/usr/bin/env bash
# What tests/faults needs beyond Python: strace (syscall fault injection).
# The tmpfs cases also need root (mount); without it they skip and say why.
# Called from .ci/run before the test command.
set -euo pipefail
if ! command -v strace >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq strace >/dev/null
  else
    sudo apt-get update -qq && sudo apt-get install -y -qq strace >/dev/null
  fi
fi
strace -V | sed -n 1p
