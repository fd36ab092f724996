"""The web console and REST API that ``xdrsync run`` and ``xdrsync demo`` serve (docs/console.md,
docs/api.md)."""
