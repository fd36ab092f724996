"""Alembic migrations of the hub (run by ``xdrsync.hub.database.upgrade``)."""
