"""Pure-Python dispatch domain: no web, database or GIS imports (see tests/core/test_purity.py)."""
