"""Versions, content hashes and comment keys: the inputs of the version guard."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
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


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T10:00:00.1234567Z",
        "2024-02-29T23:59:59.9999999Z",  # a leap day
        "2023-02-29T00:00:00Z",  # none that year
        "2024-04-31T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T10:60:00Z",
        "2024-05-01T10:00:60Z",  # no leap seconds
        "2024-05-01 10:00:00-0800",
        "2024-05-01T10:00:00+23:59",
        "2024-05-01T10:00:00+24:00",  # a zone of a whole day
        "2024-05-01T10:00:00-00:99",  # 99 minutes: 1 h 39 min
        "2024-05-01T10:00:00+99:00",
        "0001-01-01T00:00:00Z",  # Graph's "never"
        "0001-01-01T00:00:00+01:00",  # before the first day in UTC
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999-23:59",  # after the last day in UTC
        "1969-12-31T23:59:59.9999999Z",
        " 2024-05-01T10:00:00z ",
        "\u0662\u0660\u0662\u0664-05-01T10:00:00Z",  # other scripts' digits, as \\d takes them
    ],
)
def test_ticks_are_what_datetime_arithmetic_gives(text: str) -> None:
    # ``ticks_from_text`` counts without making a datetime; this is what it stands for.
    match = re.match(
        r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
        r"(Z|z|[+-]\d{2}:?\d{2})?$",
        text.strip(),
    )
    assert match is not None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        offset = timedelta(0)
        if zone not in (None, "Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:]))
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(offset),
        )
    except ValueError:
        expected = None
    else:
        whole = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
        expected = whole * 10_000_000 + int((fraction or "")[:7].ljust(7, "0"))
    assert ticks_from_text(text) == expected


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
    ("payload", "digest"),
    [
        # Digests made by the hub before it hashed the UTF-8 bytes straight from the
        # encoder: a record stored then must keep matching its hash when read again.
        (
            {"id": "a", "name": "caf\u00e9 \u65e5\u672c \U0001f600"},
            "628e64a35093999e29c541647bff0cf00eb62539414ce9470d0351de10d1e0d3",
        ),
        (
            {"id": "a", "path": "C:\\x\udc00y"},  # a lone surrogate: the JSON escape
            "3ce277fe01f7d17158668b74d5fd7f432f822b888ea043b7a926a3611eefd11b",
        ),
        (
            {"id": "a", "big": 2**70, "neg": -(2**65), "f": 1.5},
            "c0938ed3f604fcba83bf7facee054aff478c335653cca1f7d13c0487595606ba",
        ),
        (
            {"@odata.type": "#x", "@odata.context": "c", "id": "a", "k@odata.nextLink": "n"},
            "8489a5deb454a360345c7868bca8672de92b446caf3d3b014af6a56e3d549d30",
        ),
        (
            {
                "id": "a",
                "evidence": [{"@odata.type": "#t", "@odata.id": "z", "v": {"x@odata.etag": 1}}],
            },
            "3c92913b700e87411828cbb64b251b0964240d61c9165690126d0070a2e140c2",
        ),
        (
            {"id": "a", "k": "value with @odata.context in it", "q": 'say "@odata.x": 1'},
            "b10a7017b2c2fc2be68b5c38717acaa4a59adeab8894f6a15b7a23132ea2dcc3",
        ),
        (
            {"id": "a", "evidence": [{"@odata.type": "#t", "n\u00e9@odata.etag": "\udcff"}]},
            "4bf2b5c54a79ff33dd711624a91bd5f4492f4a73ff3b3d9af7ed9a0cb1657152",
        ),
        (
            {"id": "a", "nested": {"b": [1, None, True, {"z": "\x00", "a": "\u2028"}]}},
            "f260ca5808effb3780e475bae2266c4c649253ec978a22be570b24f9d64003a5",
        ),
    ],
)
def test_a_stored_hash_keeps_its_meaning(payload: dict[str, Any], digest: str) -> None:
    assert content_hash(payload) == digest


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
