"""Checking and repairing a store: problems, scan, repair, salvage."""
