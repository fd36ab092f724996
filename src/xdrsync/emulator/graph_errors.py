"""Graph's error body, built one way for every route of the emulator, and the HTML pages a
gateway in front of Graph answers with instead."""

from __future__ import annotations

import json
import uuid

from xdrsync.emulator.timefmt import utcnow


def error_body(code: str, message: str, client_request_id: str | None = None) -> bytes:
    """``{"error": {"code", "message", "innerError": {...}}}`` as Graph sends it."""
    request_id = str(uuid.uuid4())
    return json.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": utcnow().strftime("%Y-%m-%dT%H:%M:%S"),
                    "request-id": request_id,
                    "client-request-id": client_request_id or request_id,
                },
            }
        }
    ).encode()


# What a gateway in front of Graph answers by itself when it gives up, by status: an HTML page
# (Application Gateway's terse one, HTTP.sys's, Front Door's styled one), never Graph's JSON.
_GATEWAY_PAGES: dict[int, str] = {
    502: (
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n"
        "<hr><center>Microsoft-Azure-Application-Gateway/v2</center>\r\n</body>\r\n</html>\r\n"
    ),
    503: (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">'
        "\r\n<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n"
        '<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>\r\n'
        "<BODY><h2>Service Unavailable</h2>\r\n<hr><p>HTTP Error 503. The service is "
        "unavailable.</p>\r\n</BODY></HTML>\r\n"
    ),
    504: (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>504 Gateway Timeout</title>\n<style>\nbody { font-family: 'Segoe UI', "
        "Tahoma, sans-serif; margin: 0; background: #f2f2f2; color: #333; }\n"
        ".box { max-width: 40em; margin: 4em auto; padding: 2em; background: #fff; }\n"
        "h1 { font-weight: 300; font-size: 2em; }\n.ref { color: #777; font-size: 0.8em; }\n"
        "</style>\n<script>window.dataLayer = window.dataLayer || [];</script></head>\n"
        '<body><div class="box"><h1>Our services aren\'t available right now</h1>\n'
        "<p>We're working to restore all services as soon as possible. Please check back "
        'soon.</p>\n<p class="ref">{ref}</p></div></body></html>\n'
    ),
}


def gateway_page(status: int) -> bytes:
    """The HTML page a gateway in front of Graph serves with ``status`` (502, 503 or 504)."""
    page = _GATEWAY_PAGES[status]
    ref = f"Ref A: {uuid.uuid4().hex.upper()} Ref B: AMS231000108031 Ref C: {utcnow():%Y-%m-%d}"
    return page.replace("{ref}", ref).encode()
