"""dispatch/core stays pure Python so that the simulator and the live server run the same logic."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "dispatch" / "core"
FORBIDDEN = (
    "fastapi",
    "starlette",
    "sqlmodel",
    "sqlalchemy",
    "osmnx",
    "geopandas",
    "shapely",
    "numpy",
    "scipy",
    "networkx",
    "osmium",
    "redis",
    "uvicorn",
    "websockets",
    "dispatch.api",
    "dispatch.db",
    "dispatch.live",
    "dispatch.services",
    "dispatch.geo",
)


def test_core_imports_no_adapter():
    offending = []
    files = sorted(CORE.rglob("*.py"))
    assert files, "dispatch/core has no module"
    for path in files:
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offending += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] in FORBIDDEN or n in FORBIDDEN or any(n.startswith(f + ".") for f in FORBIDDEN)
            ]
    assert offending == []
