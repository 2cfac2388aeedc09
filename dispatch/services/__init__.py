"""Use cases. Each call is one transaction; events are published on the bus only after it commits."""
