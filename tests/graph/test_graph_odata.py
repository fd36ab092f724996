"""OData text: canonical origins of the links Graph hands back.

(The ``$filter`` of a page is ``sync.listing.PageQuery.filter_text``, checked with the request
it ends up in, in ``test_graph_security.py``.)"""

from __future__ import annotations

import pytest

from xdrsync.graph.odata import origin


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Graph.Microsoft.com/v1.0/x", "https://graph.microsoft.com"),
        ("https://graph.microsoft.com:443/v1.0", "https://graph.microsoft.com"),
        ("http://127.0.0.1:8650/v1.0", "http://127.0.0.1:8650"),
        ("http://[::1]:80/x", "http://[::1]"),
    ],
)
def test_origins_are_canonical(url: str, expected: str) -> None:
    assert origin(url) == expected
