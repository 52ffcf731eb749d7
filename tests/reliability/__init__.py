"""Reliability suites: crash points, power loss, kill -9, concurrency, bad input, fuzzing."""
