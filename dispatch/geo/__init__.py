"""Road graph and spatial work on OpenStreetMap data."""
