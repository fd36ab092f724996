"""What `xdrsync incidents/alerts update` accepts, and the one line it refuses with
(twoway.fields: status, owner, classification/determination pair, tags, comment)."""

from __future__ import annotations

import pytest

from xdrsync.errors import EditRefusedError
from xdrsync.tables.vocab import ALERT_STATUS, INCIDENT_STATUS
from xdrsync.twoway import fields as f
from xdrsync.twoway.fields import EntityType, Pair

# -- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity", "typed", "expected"),
    [
        # Defender's names, in any case and with the separators people type
        ("incident", "active", "active"),
        ("incident", "inProgress", "inProgress"),
        ("incident", "INPROGRESS", "inProgress"),
        ("incident", "in progress", "inProgress"),
        ("incident", "In_Progress", "inProgress"),
        ("incident", "resolved", "resolved"),
        ("incident", " RESOLVED ", "resolved"),
        # Sentinel's lifecycle names, as the workspace shows them
        ("incident", "New", "active"),
        ("incident", "new", "active"),
        ("incident", "Closed", "resolved"),
        ("incident", "CLOSED", "resolved"),
        # alerts (alerts_v2)
        ("alert", "new", "new"),
        ("alert", "New", "new"),
        ("alert", "inProgress", "inProgress"),
        ("alert", "InProgress", "inProgress"),
        ("alert", "in progress", "inProgress"),
        ("alert", "resolved", "resolved"),
        ("alert", "Resolved", "resolved"),
        ("alert", "Closed", "resolved"),
        ("alert", "Active", "inProgress"),
    ],
)
def test_status_accepts_defender_and_sentinel_names(
    entity: EntityType, typed: str, expected: str
) -> None:
    assert f.status(entity, typed) == expected


@pytest.mark.parametrize(
    ("entity", "typed", "accepted"),
    [
        ("incident", "redirected", "active, inProgress, resolved"),
        ("incident", "Redirected", "active, inProgress, resolved"),
        ("incident", "awaitingAction", "active, inProgress, resolved"),
        ("incident", "unknownFutureValue", "active, inProgress, resolved"),
        ("incident", "garbage", "active, inProgress, resolved"),
        ("incident", "", "active, inProgress, resolved"),
        ("incident", "new-ish", "active, inProgress, resolved"),
        ("alert", "active-ish", "new, inProgress, resolved"),
        ("alert", "dismissed", "new, inProgress, resolved"),
        ("alert", "unknown", "new, inProgress, resolved"),
        ("alert", "redirected", "new, inProgress, resolved"),
        ("alert", "garbage", "new, inProgress, resolved"),
    ],
)
def test_status_refusal_names_the_statuses_defender_accepts(
    entity: EntityType, typed: str, accepted: str
) -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.status(entity, typed)
    message = str(refused.value)
    assert repr(typed) in message
    assert f"an {entity}" in message
    assert message.endswith(accepted)
    assert "\n" not in message


def test_status_round_trips_through_the_names_the_alert_table_shows() -> None:
    """Typing back the SecurityAlert.Status the workspace shows keeps Defender's status."""
    for defender in f.SETTABLE_STATUS["alert"]:
        shown = ALERT_STATUS[defender.lower()]
        assert f.status("alert", shown) == defender, shown


def test_status_round_trips_through_the_names_the_incident_table_shows() -> None:
    """Issue 10 §8: the lifecycle mapping is stable over round trips. The workspace shows
    Defender's active/inProgress/resolved as New/Active/Closed (tables.vocab); an analyst who
    types the status they see must keep that status."""
    for defender in f.SETTABLE_STATUS["incident"]:
        shown = INCIDENT_STATUS[defender.lower()]
        assert f.status("incident", shown) == defender, shown


# -- owner ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("alice@contoso.com", "alice@contoso.com"),
        ("  alice@contoso.com  ", "alice@contoso.com"),
        ("Alice.Smith@Contoso.onmicrosoft.com", "Alice.Smith@Contoso.onmicrosoft.com"),
        ("first.last+soc@sub.example.co.uk", "first.last+soc@sub.example.co.uk"),
        ("", None),
        ("   ", None),
    ],
)
def test_owner_takes_an_address_or_unassigns(typed: str, expected: str | None) -> None:
    assert f.owner(typed) == expected


@pytest.mark.parametrize(
    "typed",
    [
        "alice",
        "alice@contoso",
        "@contoso.com",
        "alice@",
        "alice@@contoso.com",
        "alice@contoso.com.",
        "alice smith@contoso.com",
        "Alice <alice@contoso.com>",
        "alice@contoso.com;bob@contoso.com",
        "alice@contoso.com, bob@contoso.com",
        '"alice"@contoso.com',
    ],
)
def test_owner_refuses_what_is_not_one_address(typed: str) -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.owner(typed)
    assert str(refused.value) == f"owner {typed!r} is not an address (user@domain)"


# -- classification / determination --------------------------------------------------------

#: The pairs the reference (§2.3, the legacy update page's table) documents, plus the pair
#: Defender itself uses for "not set".
DOCUMENTED_PAIRS = [
    ("truePositive", "multiStagedAttack"),
    ("truePositive", "maliciousUserActivity"),
    ("truePositive", "compromisedAccount"),
    ("truePositive", "malware"),
    ("truePositive", "phishing"),
    ("truePositive", "unwantedSoftware"),
    ("truePositive", "other"),
    ("informationalExpectedActivity", "securityTesting"),
    ("informationalExpectedActivity", "lineOfBusinessApplication"),
    ("informationalExpectedActivity", "confirmedActivity"),
    ("informationalExpectedActivity", "other"),
    ("falsePositive", "notMalicious"),
    ("falsePositive", "notEnoughDataToValidate"),
    ("falsePositive", "other"),
    ("unknown", "unknown"),
]


@pytest.mark.parametrize(("classification", "determination"), DOCUMENTED_PAIRS)
def test_every_documented_pair_is_accepted(classification: str, determination: str) -> None:
    assert f.pair(classification, determination, None) == Pair(classification, determination)
    # PascalCase, as in Graph's examples, is the same pair
    pascal = f.pair(classification[:1].upper() + classification[1:], determination.upper(), None)
    assert pascal == Pair(classification, determination)


@pytest.mark.parametrize(
    ("classification", "legacy", "canonical"),
    [
        ("falsePositive", "clean", "notMalicious"),
        ("FalsePositive", "Clean", "notMalicious"),
        ("truePositive", "compromisedUser", "compromisedAccount"),
        ("falsePositive", "insufficientData", "notEnoughDataToValidate"),
        ("falsePositive", "NoEnoughDataToValidate", "notEnoughDataToValidate"),
        ("informationalExpectedActivity", "confirmedUserActivity", "confirmedActivity"),
    ],
)
def test_legacy_determination_spellings_are_canonicalised(
    classification: str, legacy: str, canonical: str
) -> None:
    got = f.pair(classification, legacy, None)
    assert got.determination == canonical
    assert got.to_json() == {
        "classification": classification[:1].lower() + classification[1:],
        "determination": canonical,
    }


@pytest.mark.parametrize(
    ("classification", "determination", "accepted"),
    [
        ("falsePositive", "malware", "notEnoughDataToValidate, notMalicious, other"),
        ("falsePositive", "confirmedActivity", "notEnoughDataToValidate, notMalicious, other"),
        (
            "informationalExpectedActivity",
            "phishing",
            "confirmedActivity, lineOfBusinessApplication, other, securityTesting",
        ),
        ("truePositive", "notMalicious", "compromisedAccount"),
        ("truePositive", "clean", "malware"),  # the legacy name of notMalicious
        ("truePositive", "unknown", "phishing"),
        ("unknown", "malware", "unknown"),
        ("unknown", "other", "unknown"),
    ],
)
def test_a_mismatched_pair_is_refused_naming_what_defender_accepts(
    classification: str, determination: str, accepted: str
) -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.pair(classification, determination, None)
    message = str(refused.value)
    assert "does not go with classification" in message
    assert "Defender accepts: " in message
    assert accepted in message.split("Defender accepts: ", 1)[1]


@pytest.mark.parametrize(
    ("classification", "determination", "names"),
    [
        ("garbage", "malware", "classification 'garbage'"),
        ("unknownFutureValue", None, "classification 'unknownFutureValue'"),
        ("truePositive", "garbage", "determination 'garbage'"),
        ("truePositive", "unknownFutureValue", "determination 'unknownFutureValue'"),
    ],
)
def test_values_outside_defenders_vocabulary_are_refused(
    classification: str, determination: str | None, names: str
) -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.pair(classification, determination, None)
    message = str(refused.value)
    assert message.startswith(names)
    assert "not one Defender accepts" in message
    if names.startswith("classification"):
        for accepted in ("truePositive", "falsePositive", "informationalExpectedActivity"):
            assert accepted in message


@pytest.mark.parametrize(
    ("classification", "determination", "current", "expected"),
    [
        # a new classification keeps the current determination when it still fits
        ("truePositive", None, Pair("truePositive", "malware"), Pair("truePositive", "malware")),
        (
            "falsePositive",
            None,
            Pair("falsePositive", "notMalicious"),
            Pair("falsePositive", "notMalicious"),
        ),
        # ...and falls back to `other` when it does not
        ("falsePositive", None, Pair("truePositive", "malware"), Pair("falsePositive", "other")),
        (
            "informationalExpectedActivity",
            None,
            Pair("falsePositive", "notMalicious"),
            Pair("informationalExpectedActivity", "other"),
        ),
        ("truePositive", None, Pair("unknown", "unknown"), Pair("truePositive", "other")),
        ("truePositive", None, None, Pair("truePositive", "other")),
        # `other` is kept across classes
        ("falsePositive", None, Pair("truePositive", "other"), Pair("falsePositive", "other")),
        # back to "not set": the determination goes with it
        ("unknown", None, Pair("truePositive", "malware"), Pair("unknown", "unknown")),
        # a new determination keeps the current classification
        (None, "phishing", Pair("truePositive", "malware"), Pair("truePositive", "phishing")),
        (None, "clean", Pair("falsePositive", "other"), Pair("falsePositive", "notMalicious")),
    ],
)
def test_a_missing_half_comes_from_the_current_pair_when_it_fits(
    classification: str | None,
    determination: str | None,
    current: Pair | None,
    expected: Pair,
) -> None:
    assert f.pair(classification, determination, current) == expected


@pytest.mark.parametrize(
    ("determination", "current"),
    [
        ("phishing", None),
        ("phishing", Pair("unknown", "unknown")),
        ("phishing", Pair("falsePositive", "notMalicious")),
    ],
)
def test_a_determination_alone_that_does_not_fit_the_current_class_is_refused(
    determination: str, current: Pair | None
) -> None:
    with pytest.raises(EditRefusedError, match="does not go with classification"):
        f.pair(None, determination, current)


def test_pair_json_round_trip_and_defaults() -> None:
    pair = Pair("truePositive", "malware")
    assert Pair.from_json(pair.to_json()) == pair
    assert Pair.from_json(None) is None
    assert Pair.from_json({}) is None
    assert Pair.from_json({"classification": None, "determination": None}) == Pair(
        "unknown", "unknown"
    )
    assert Pair.from_json({"classification": "falsePositive"}) == Pair("falsePositive", "unknown")


def test_classified_and_closed() -> None:
    assert f.classified(Pair("truePositive", "other"))
    assert not f.classified(Pair("unknown", "unknown"))
    assert not f.classified(None)
    assert f.is_closed("incident", "resolved")
    assert f.is_closed("alert", "Resolved")
    assert not f.is_closed("incident", "active")
    assert not f.is_closed("incident", None)


# -- tags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ((), ()),
        (("a",), ("a",)),
        (("a", "a"), ("a",)),
        ((" a ", "a", "b"), ("a", "b")),
        (("b", "a", "b"), ("b", "a")),
        (("Case", "case"), ("Case", "case")),
        (("two words",), ("two words",)),
        (("x" * 128,), ("x" * 128,)),
        ((" " + "x" * 128 + " ",), ("x" * 128,)),
    ],
)
def test_tags_are_stripped_and_each_kept_once(
    typed: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert f.tags(typed) == expected


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_an_empty_tag_is_refused(blank: str) -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.tags(("fine", blank))
    assert str(refused.value) == "a tag cannot be empty"


def test_a_tag_longer_than_128_characters_is_refused_not_cut() -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.tags(("ok", "y" * 129))
    message = str(refused.value)
    assert "129 characters" in message
    assert "at most 128" in message
    assert len(message) < 200  # one line, not the whole tag


# -- comment --------------------------------------------------------------------------------


def test_comment_text_is_kept_as_typed() -> None:
    assert f.comment("Contained; host isolated.") == "Contained; host isolated."
    assert f.comment("line one\nline two") == "line one\nline two"
    assert f.comment("x" * 30_000) == "x" * 30_000


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_a_comment_needs_text(blank: str) -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.comment(blank)
    assert str(refused.value) == "a comment needs text"


def test_a_comment_longer_than_30000_characters_is_refused() -> None:
    with pytest.raises(EditRefusedError) as refused:
        f.comment("x" * 30_001)
    assert str(refused.value) == "the comment is 30001 characters; at most 30000 are taken"
