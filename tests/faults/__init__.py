"""Faults from outside the process: strace injection, planted files, full filesystems."""
