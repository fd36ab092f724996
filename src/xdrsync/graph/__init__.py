"""Microsoft Graph v1.0 for Defender XDR: sign-in, pacing, retries, paging, typed operations."""

from __future__ import annotations

from xdrsync.graph.auth import TokenProvider
from xdrsync.graph.client import GraphClient, GraphResponse
from xdrsync.graph.errors import NotFoundError
from xdrsync.graph.pacing import Pacer
from xdrsync.graph.retry import RetryPolicy
from xdrsync.graph.security import DefenderApi, ListPage

__all__ = [
    "DefenderApi",
    "GraphClient",
    "GraphResponse",
    "ListPage",
    "NotFoundError",
    "Pacer",
    "RetryPolicy",
    "TokenProvider",
]
