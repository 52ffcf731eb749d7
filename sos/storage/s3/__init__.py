"""Stores on S3-compatible object storage."""
