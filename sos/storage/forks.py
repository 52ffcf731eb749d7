"""How many times this process is a fork of the one that imported sos.

One counter, bumped by an at-fork hook (not a ``getpid()`` per write), for
everything a forked child must not share with its parent: the store lock's
descriptor (its flock would be the parent's), the directory descriptors kept
for fsyncs and a List's pinned manifests (the child may have closed their
numbers and reused them), and a List's id prefix. Read it as ``forks.count``.
"""

from __future__ import annotations

import os

__all__ = ["count"]

count = 0


def _forked() -> None:
    global count
    count += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
