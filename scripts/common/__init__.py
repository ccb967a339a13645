"""What every stage shares: one error type, atomic file writes, the device, the base model, the
meaning of a category value, and the one module that touches spaCy's non-public API."""
