"""Quantities as people read them, in the CLI's tables and the HTML pages alike."""

from __future__ import annotations


def human_size(size_bytes: int) -> str:
    """Return a size for people, in decimal units: ``812 B``, ``4.2 MB``."""
    value = float(size_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
