"""OData query text for Graph: query strings, link origins, collection paths.

Pure functions. Query strings are built by hand rather than by httpx so that option names
keep their literal ``$`` (as Graph documents them) and links Graph hands back are edited
without re-encoding the parts we do not touch.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from xdrsync.errors import FatalSyncError
from xdrsync.logs import clean

# Kept literal in values: readable, and meaningful to OData ('string', fn(a,b), dates).
_VALUE_SAFE = ":'(),/"


def encode_query(params: Mapping[str, str | int]) -> str:
    """``$top=50&$filter=a%20ge%20b`` — names keep ``$``, values are percent-encoded."""
    return "&".join(
        f"{quote(str(name), safe='$')}={quote(str(value), safe=_VALUE_SAFE)}"
        for name, value in params.items()
    )


def with_query(url: str, params: Mapping[str, str | int] | None) -> str:
    """``url`` with ``params`` appended to whatever query it already has."""
    if not params:
        return url
    return f"{url}{'&' if '?' in url else '?'}{encode_query(params)}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` in canonical form (lower case, default port dropped).

    A link that is not an absolute http(s) URL with a host and a valid port (a hostile or
    broken ``@odata.nextLink``) is a broken contract: ``FatalSyncError``, never ValueError.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a non-numeric or out-of-range port
    except ValueError as bad:
        raise FatalSyncError(f"unusable link {_shown(url)}: {bad}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise FatalSyncError(f"unusable link {_shown(url)}: not an absolute http(s) URL")
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default else "")


def _shown(url: str) -> str:
    """A link from a server, fit for a message: cleaned and short."""
    return repr(clean(url, limit=160))


def is_collection_path(url: str) -> bool:
    """Whether a Graph URL or path names a collection under ``/security`` (incidents,
    alerts_v2, an incident's alerts) rather than one entity: an odd number of segments
    after ``security`` (``incidents``, ``incidents/{id}/alerts``) is a collection."""
    path = urlsplit(url).path if "://" in url else url.partition("?")[0]
    segments = [segment for segment in path.split("/") if segment]
    if "security" not in segments:
        return False
    after = segments[segments.index("security") + 1 :]
    return len(after) % 2 == 1


__all__ = [
    "encode_query",
    "is_collection_path",
    "origin",
    "with_query",
]
