"""xdrsync: lossless, multi-tenant, two-way sync of Microsoft Defender XDR incidents."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
