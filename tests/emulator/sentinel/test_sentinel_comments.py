"""Incident comments: create/update/delete, author, limits, etags."""

from __future__ import annotations

from typing import Any


def _comment(message: str, etag: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"properties": {"message": message}}
    if etag is not None:
        body["etag"] = etag
    return body


def test_a_comment_is_created_then_updated_idempotently(sentinel: Any) -> None:
    s = sentinel()
    s.put_incident("inc")
    created = s.arm("PUT", "/incidents/inc/comments/c1", json=_comment("hello"))
    assert created.status_code == 201
    body = created.json()
    assert body["type"] == "Microsoft.SecurityInsights/Incidents/Comments"
    assert body["id"].endswith("/Incidents/inc/Comments/c1")
    assert body["properties"]["author"] == {
        "objectId": s.settings.client_id,
        "email": None,
        "name": "xdrsync app",
        "userPrincipalName": None,
    }
    same = s.arm("PUT", "/incidents/inc/comments/c1", json=_comment("hello"))
    assert same.status_code == 200
    assert same.json() == body
    edited = s.arm("PUT", "/incidents/inc/comments/c1", json=_comment("hello again"))
    assert edited.status_code == 200
    assert edited.json()["etag"] != body["etag"]
    stale = s.arm("PUT", "/incidents/inc/comments/c1", json=_comment("x", etag=body["etag"]))
    assert stale.status_code == 409
    assert s.arm("GET", "/incidents/inc/comments/c1").json()["properties"]["message"] == (
        "hello again"
    )
    incident = s.arm("GET", "/incidents/inc").json()
    assert incident["properties"]["additionalData"]["commentsCount"] == 1
    assert s.arm("DELETE", "/incidents/inc/comments/c1").status_code == 200
    assert s.arm("GET", "/incidents/inc/comments/c1").status_code == 404
    assert s.arm("DELETE", "/incidents/inc/comments/c1").status_code == 204


def test_message_rules_and_the_100_comment_limit(sentinel: Any) -> None:
    s = sentinel()
    s.put_incident("inc")
    assert s.arm("PUT", "/incidents/inc/comments/x", json=_comment("")).status_code == 400
    assert s.arm("PUT", "/incidents/inc/comments/x", json={"properties": {}}).status_code == 400
    too_long = s.arm("PUT", "/incidents/inc/comments/x", json=_comment("m" * 30_001))
    assert too_long.status_code == 400
    assert "message" in too_long.json()["error"]["message"]
    longest = s.arm("PUT", "/incidents/inc/comments/x", json=_comment("m" * 30_000))
    assert longest.status_code == 201
    # Counted in UTF-16 code units, as .NET counts: an emoji is two.
    emoji = s.arm("PUT", "/incidents/inc/comments/x", json=_comment("\U0001f600" * 15_001))
    assert emoji.status_code == 400
    assert "30002 characters" in emoji.json()["error"]["message"]
    fits = s.arm("PUT", "/incidents/inc/comments/x", json=_comment("\U0001f600" * 15_000))
    assert fits.status_code == 200
    for n in range(99):
        reply = s.arm("PUT", f"/incidents/inc/comments/n{n}", json=_comment(f"note {n}"))
        assert reply.status_code == 201, reply.text
    one_more = s.arm("PUT", "/incidents/inc/comments/n100", json=_comment("one too many"))
    assert one_more.status_code == 400
    assert "100" in one_more.json()["error"]["message"]
    # Updating one of the hundred is still allowed.
    assert s.arm("PUT", "/incidents/inc/comments/n0", json=_comment("edited")).status_code == 200
    analyst = s.control("POST", "/incidents/inc/comments", json={"message": "portal"})
    assert analyst.status_code == 400


def test_comments_on_a_missing_incident_are_404(sentinel: Any) -> None:
    s = sentinel()
    assert s.arm("PUT", "/incidents/nope/comments/c", json=_comment("m")).status_code == 404
    assert s.arm("GET", "/incidents/nope/comments").status_code == 404
