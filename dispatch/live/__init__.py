"""Event bus and live fan-out."""
