"""Numbered, forward-only revisions of the hub schema."""
