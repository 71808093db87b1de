"""Benchmarks behind the figures in the docs; each module runs with ``python -m``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(result: Any, path: Path, table: str) -> None:
    """Writes ``result`` as JSON to ``path`` and prints the Markdown ``table``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table)
    print(f"\nwritten to {path}")
