"""Versions, content hashes and comment keys: the inputs of the version guard."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from xdrsync.hub.payload import (
    comment_key,
    content_hash,
    datetime_from_ticks,
    evidence_item,
    incident_payload,
    ticks_from_text,
    version_text,
    version_ticks,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00.1234567Z", "2024-05-01T10:00:00.1234567Z"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.0000000Z"),
        ("2024-05-01T10:00:00.12Z", "2024-05-01T10:00:00.1200000Z"),
        ("2024-05-01T12:00:00.5+02:00", "2024-05-01T10:00:00.5000000Z"),
        ("2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.1234567Z"),
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00.0000000Z"),
        # Graph's DateTimeOffset.MinValue: the year keeps its four digits, so the text
        # still parses back to the same version
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000Z"),
    ],
)
def test_timestamps_keep_graphs_seven_digits(text: str, expected: str) -> None:
    assert version_text(ticks_from_text(text)) == expected


def test_versions_100ns_apart_are_different_versions() -> None:
    a = version_ticks({"lastUpdateDateTime": "2024-05-01T10:00:00.1234567Z"}, None)
    b = version_ticks({"lastUpdateDateTime": "2024-05-01T10:00:00.1234568Z"}, None)
    assert b - a == 1


def test_unparsable_text_falls_back_to_the_parsed_datetime() -> None:
    moment = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    ticks = version_ticks({"lastUpdateDateTime": "yesterday"}, moment)
    assert datetime_from_ticks(ticks) == moment
    assert ticks_from_text("2024-13-01T00:00:00Z") is None


def test_hash_ignores_key_order_and_top_level_annotations() -> None:
    one = {"id": "1", "status": "active", "@odata.type": "#microsoft.graph.security.alert"}
    two = {"@odata.etag": "W/1", "status": "active", "id": "1"}
    assert content_hash(one) == content_hash(two)
    assert content_hash(one) != content_hash({**one, "status": "resolved"})


def test_hash_keeps_the_evidence_type_discriminator() -> None:
    device = {"id": "a", "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence"}]}
    user = {"id": "a", "evidence": [{"@odata.type": "#microsoft.graph.security.userEvidence"}]}
    assert content_hash(device) != content_hash(user)


def test_incident_payload_drops_alerts_and_their_annotations() -> None:
    raw = {"id": "7", "alerts": [{"id": "x"}], "alerts@odata.context": "...", "status": "active"}
    assert incident_payload(raw) == {"id": "7", "status": "active"}


def test_comment_key_is_stable_and_distinguishes_author_text_and_time() -> None:
    when = datetime(2024, 5, 1, 10, tzinfo=UTC)
    key = comment_key(when, "Ann", "looked at it")
    assert key == comment_key(when, "Ann", "looked at it")
    assert len({key, comment_key(when, "Bob", "looked at it"), comment_key(when, "Ann", "no")}) == 3
    assert comment_key(None, None, None) == comment_key(None, "", "")


def test_nested_annotations_other_than_the_type_are_ignored() -> None:
    plain = {"id": "a", "evidence": [{"@odata.type": "#t", "x": 1}]}
    annotated = {
        "id": "a",
        "evidence": [{"@odata.type": "#t", "x": 1, "files@odata.context": "ctx"}],
        "@odata.context": "top",
    }
    assert content_hash(plain) == content_hash(annotated)
    assert content_hash(plain) != content_hash({"id": "a", "evidence": [{"x": 1}]})
    assert content_hash({"k": "value with @odata.context in it"}) != content_hash({"k": ""})


@pytest.mark.parametrize(
    ("payload", "ordinal", "expected"),
    [
        ({"evidence": [{"a": 1}, {"b": 2}]}, 1, {"b": 2}),
        ({"evidence": [{"a": 1}]}, 1, {}),  # an ordinal past the list
        ({"evidence": [{"a": 1}]}, -1, {}),  # never counted from the end
        ({"evidence": None}, 0, {}),
        ({}, 0, {}),
        ({"evidence": ["not an object"]}, 0, {}),
    ],
)
def test_an_evidence_item_is_read_from_its_alerts_payload(
    payload: dict[str, Any], ordinal: int, expected: dict[str, Any]
) -> None:
    assert evidence_item(payload, ordinal) == expected
