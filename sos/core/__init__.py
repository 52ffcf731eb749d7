"""The stores: Store (lifecycle, batch, transaction), Dict and List."""
