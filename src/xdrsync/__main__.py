"""``python -m xdrsync`` runs the command line."""

from __future__ import annotations

from xdrsync.entry import main

main()
