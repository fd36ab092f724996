"""``python -m xdrsync`` runs the command line."""

from __future__ import annotations

from xdrsync.cli import main

main()
