"""Where a store's files live: the interface, a registry by scheme, and the backends."""
