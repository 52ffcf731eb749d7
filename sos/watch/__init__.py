"""Watching a store for changes: state, the watcher core, native events."""
