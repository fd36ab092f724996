"""Defender incident → Sentinel incident properties, merge and difference (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xdrsync.destinations.sentinel.mapping import (
    DESCRIPTION_CUT,
    MANAGED,
    READ_ONLY,
    Desired,
    description,
    desired_incident,
    differs,
    incident_labels,
    incident_name,
    merge,
    sentinel_owner,
)
from xdrsync.destinations.sentinel.text import MAX_DESCRIPTION, utf16_len
from xdrsync.models import Incident
from xdrsync.tables.sentinel import incident_name as table_incident_name

TENANT = "00000000-0000-0000-0000-00000000000a"
OTHER = "00000000-0000-0000-0000-00000000000b"

ALERTS = [
    {
        "id": "da1",
        "incidentId": "41",
        "serviceSource": "microsoftDefenderForEndpoint",
        "firstActivityDateTime": "2026-11-01T09:58:00Z",
        "lastActivityDateTime": "2026-11-01T10:05:00Z",
    },
    {
        "id": "da2",
        "incidentId": "41",
        "serviceSource": "microsoftDefenderForOffice365",
        "firstActivityDateTime": "2026-11-01T09:50:00Z",
        "lastActivityDateTime": "2026-11-01T10:01:00Z",
    },
]


def _incident(**fields: Any) -> Incident:
    payload: dict[str, Any] = {
        "id": "41",
        "displayName": "Multi-stage attack",
        "severity": "high",
        "status": "active",
        "lastUpdateDateTime": "2026-11-01T11:00:00Z",
        "alerts": ALERTS,
    }
    payload.update(fields)
    return Incident.from_graph(payload)


def _desired(incident: Incident | None = None, **kwargs: Any) -> Desired:
    return desired_incident(
        incident or _incident(), tenant_id=TENANT, tenant_name="contoso", **kwargs
    )


# -- names -----------------------------------------------------------------------------------


def test_the_name_is_the_workspace_tables_incident_name() -> None:
    assert incident_name(TENANT, "41") == table_incident_name(TENANT, "41")
    assert incident_name(TENANT, "41") == incident_name(TENANT.upper(), "41")


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_names_are_deterministic_and_distinct_across_tenants(first: str, second: str) -> None:
    assert incident_name(TENANT, first) == incident_name(TENANT, first)
    assert incident_name(TENANT, first) != incident_name(OTHER, first)
    if first != second:
        assert incident_name(TENANT, first) != incident_name(TENANT, second)


# -- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("defender", "sentinel"),
    [
        ("high", "High"),
        ("medium", "Medium"),
        ("low", "Low"),
        ("informational", "Informational"),
        ("unknown", "Informational"),
        ("critical", "High"),  # newer than this version: never the lowest (vocab.NEWER_SEVERITY)
        (None, "Informational"),
    ],
)
def test_severity(defender: str | None, sentinel: str) -> None:
    assert _desired(_incident(severity=defender)).properties["severity"] == sentinel


@pytest.mark.parametrize(
    ("defender", "sentinel"),
    [
        ("active", "New"),
        ("inProgress", "Active"),
        ("awaitingAction", "Active"),
        ("resolved", "Closed"),
        ("redirected", "Closed"),
    ],
)
def test_status(defender: str, sentinel: str) -> None:
    assert _desired(_incident(status=defender)).properties["status"] == sentinel


@pytest.mark.parametrize(
    ("classification", "expected"),
    [
        ("truePositive", ("TruePositive", "SuspiciousActivity")),
        ("TruePositive", ("TruePositive", "SuspiciousActivity")),
        ("falsePositive", ("FalsePositive", "InaccurateData")),
        ("informationalExpectedActivity", ("BenignPositive", "SuspiciousButExpected")),
        ("unknown", ("Undetermined", None)),
        (None, ("Undetermined", None)),
    ],
)
def test_classification_follows_the_connectors_table(
    classification: str | None, expected: tuple[str, str | None]
) -> None:
    props = _desired(_incident(status="resolved", classification=classification)).properties
    assert (props["classification"], props["classificationReason"]) == expected


@given(
    st.sampled_from(["active", "inProgress", "awaitingAction", "resolved", "redirected", "x"]),
    st.sampled_from([None, "unknown", "truePositive", "falsePositive", "unknownFutureValue"]),
)
def test_a_closed_incident_always_carries_a_classification(
    status: str, classification: str | None
) -> None:
    props = _desired(_incident(status=status, classification=classification)).properties
    if props["status"] == "Closed":
        assert props["classification"] in (
            "Undetermined",
            "TruePositive",
            "BenignPositive",
            "FalsePositive",
        )


def test_a_merged_incident_is_closed_undetermined_and_labelled() -> None:
    incident = _incident(
        status="redirected", classification="truePositive", redirectIncidentId="77"
    )
    desired = _desired(incident)
    assert desired.properties["status"] == "Closed"
    assert desired.properties["classification"] == "Undetermined"
    assert desired.properties["classificationReason"] is None
    assert "Redirected" in desired.labels


def test_the_resolving_comment_becomes_the_classification_comment() -> None:
    props = _desired(_incident(status="resolved", resolvingComment="benign test")).properties
    assert props["classificationComment"] == "benign test"


@pytest.mark.parametrize(
    ("assigned", "owner"),
    [
        (
            "ann@contoso.com",
            {
                "userPrincipalName": "ann@contoso.com",
                "assignedTo": "ann@contoso.com",
                "ownerType": "User",
            },
        ),
        ("", None),
        (None, None),
        ("  ", None),
        ("SOC tier 2", {"assignedTo": "SOC tier 2", "ownerType": "Unknown"}),
    ],
)
def test_owner(assigned: str | None, owner: dict[str, Any] | None) -> None:
    assert sentinel_owner(assigned) == owner


def test_labels_name_tenant_products_tags_and_the_defender_id() -> None:
    incident = _incident(customTags=["vip", "VIP", "phish"])
    assert incident_labels(incident, "contoso") == (
        "contoso",
        "Microsoft Defender Advanced Threat Protection",  # the log tables' product names
        "Office 365 Advanced Threat Protection",
        "vip",
        "phish",
        "defender-incident:41",
    )
    body = merge(None, _desired(incident))
    assert {label["labelType"] for label in body["labels"]} == {"User"}


def test_activity_times_span_the_alerts() -> None:
    props = _desired().properties
    assert props["firstActivityTimeUtc"].startswith("2026-11-01T09:50:00")
    assert props["lastActivityTimeUtc"].startswith("2026-11-01T10:05:00")
    assert _desired(_incident(alerts=[])).properties["firstActivityTimeUtc"] is None


def test_a_missing_title_names_the_defender_incident() -> None:
    assert _desired(_incident(displayName=None)).properties["title"] == ("Defender XDR incident 41")


# -- description -----------------------------------------------------------------------------


def test_the_description_ends_with_the_way_back_to_defender() -> None:
    text = description(
        _incident(description="Ransomware on two hosts", incidentWebUrl="https://x/41"),
        tenant_id=TENANT,
        tenant_name="contoso",
    )
    assert text.startswith("Ransomware on two hosts\n\n")
    assert text.endswith("Defender XDR incident 41 (tenant contoso): https://x/41")
    empty = description(_incident(), tenant_id=TENANT, tenant_name="contoso")
    assert empty == (
        f"Defender XDR incident 41 (tenant contoso): "
        f"https://security.microsoft.com/incidents/41?tid={TENANT}"
    )


long_texts = st.builds(
    lambda piece, times, tail: piece * times + tail,
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
    st.integers(min_value=300, max_value=6_000),
    st.text(max_size=20),
).map(lambda text: text[:7_000])


@settings(max_examples=60)
@given(long_texts | st.text(max_size=50))
def test_the_description_never_exceeds_5000_and_cuts_visibly(text: str) -> None:
    result = description(_incident(description=text), tenant_id=TENANT, tenant_name="contoso")
    assert utf16_len(result) <= MAX_DESCRIPTION
    assert result.endswith(  # the trailer is kept whole
        "Defender XDR incident 41 (tenant contoso): "
        f"https://security.microsoft.com/incidents/41?tid={TENANT}"
    )
    if text.strip() not in result:
        assert DESCRIPTION_CUT in result
    if utf16_len(text.strip()) > MAX_DESCRIPTION:  # blank text around it is not shown
        assert DESCRIPTION_CUT in result


# -- merge and difference --------------------------------------------------------------------


def _sentinel_view(body: dict[str, Any]) -> dict[str, Any]:
    """What Sentinel answers after storing ``body``: its own read-only properties, the owner
    filled in, times in .NET's seven-digit form."""
    view = dict(body)
    owner = {
        "objectId": None,
        "email": None,
        "assignedTo": None,
        "userPrincipalName": None,
        "ownerType": "Unknown",
    }
    owner.update(body.get("owner") or {})
    if owner.get("userPrincipalName"):
        owner["assignedTo"] = "Ann Example"  # Sentinel shows the display name
        owner["objectId"] = "5f0a9a3c-1111-4444-8888-000000000001"
    view["owner"] = owner
    for key in ("firstActivityTimeUtc", "lastActivityTimeUtc"):
        if view.get(key):
            view[key] = view[key].replace(".000000Z", ".0000000Z")
    view.update(
        {
            "incidentNumber": 7,
            "createdTimeUtc": "2026-11-01T11:00:00.1234567Z",
            "additionalData": {"alertsCount": 0},
            "providerName": "Azure Sentinel",
        }
    )
    return view


def test_an_incident_sentinel_already_shows_needs_no_put() -> None:
    desired = _desired(_incident(assignedTo="ann@contoso.com"))
    assert differs(None, desired)
    stored = _sentinel_view(merge(None, desired))
    assert not differs(stored, desired)
    changed = _desired(_incident(assignedTo="ann@contoso.com", status="inProgress"))
    assert differs(stored, changed)


def test_merge_keeps_what_xdrsync_does_not_manage_and_sends_no_read_only_property() -> None:
    current = _sentinel_view(merge(None, _desired()))
    current["labels"] = [
        *current["labels"],
        {"labelName": "analyst", "labelType": "User"},
        {"labelName": "auto", "labelType": "AutoAssigned"},
    ]
    current["someFutureProperty"] = {"kept": True}
    body = merge(current, _desired(_incident(status="resolved")))
    assert body["status"] == "Closed"
    assert body["someFutureProperty"] == {"kept": True}
    names = [label["labelName"] for label in body["labels"]]
    assert "analyst" in names
    assert {"labelName": "auto", "labelType": "AutoAssigned"} in body["labels"]
    assert not READ_ONLY & set(body)


def test_a_cleared_field_is_cleared() -> None:
    current = _sentinel_view(merge(None, _desired(_incident(assignedTo="ann@contoso.com"))))
    body = merge(current, _desired(_incident(assignedTo=None)))
    assert "owner" not in body
    assert differs(current, _desired(_incident(assignedTo=None)))


def test_a_tag_removed_in_defender_is_taken_away_and_analysts_labels_stay() -> None:
    before = _desired(_incident(customTags=["vip", "phish"]))
    current = _sentinel_view(merge(None, before))
    current["labels"].append({"labelName": "escalated", "labelType": "User"})
    after = _desired(_incident(customTags=["vip"]), earlier_tags=["vip", "phish"])
    assert differs(current, after)
    names = [label["labelName"] for label in merge(current, after)["labels"]]
    assert "phish" not in names
    assert "vip" in names
    assert "escalated" in names


def test_a_merged_away_incident_keeps_the_tags_defender_moved_to_the_survivor() -> None:
    # An analyst's Sentinel label went to Defender as a tag; then Defender merged the incident
    # into another, which empties its tags (they move to the survivor): nobody removed them.
    before = _desired(_incident(customTags=["vip", "analyst-8"]))
    current = _sentinel_view(merge(None, before))
    merged = _incident(customTags=[], status="redirected", redirectIncidentId="42")
    after = _desired(merged, earlier_tags=["vip", "analyst-8"])
    names = [label["labelName"] for label in merge(current, after)["labels"]]
    assert {"vip", "analyst-8", "Redirected"} <= set(names)
    assert "vip" not in after.retired_labels


label_names = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=12
).filter(lambda s: s.strip() == s and s != "")


@settings(max_examples=80)
@given(
    analyst=st.lists(label_names, max_size=6),
    tags=st.lists(label_names, max_size=4),
    earlier=st.lists(label_names, max_size=4),
    status=st.sampled_from(["active", "inProgress", "resolved", "redirected"]),
)
def test_merge_never_drops_an_analysts_label(
    analyst: list[str], tags: list[str], earlier: list[str], status: str
) -> None:
    first = _desired(_incident(customTags=earlier))
    current = _sentinel_view(merge(None, first))
    current["labels"] += [{"labelName": name, "labelType": "User"} for name in analyst]
    desired = _desired(_incident(customTags=tags, status=status), earlier_tags=earlier)
    body = merge(current, desired)
    kept = {label["labelName"].casefold() for label in body["labels"]}
    for name in analyst:
        if name.casefold() not in desired.retired_labels or status == "redirected":
            assert name.casefold() in kept  # only labels xdrsync itself once set may go
    for name in desired.labels:
        assert name.casefold() in kept
    assert len(kept) == len(body["labels"])  # each label once
    assert not differs(_sentinel_view(body), desired)  # and then nothing left to write


def test_every_managed_property_is_set_or_cleared_by_a_put() -> None:
    current = {name: "stale" for name in MANAGED} | {"labels": []}
    body = merge(current, _desired(_incident(resolvingComment="Defender's note")))
    assert all(body.get(name) != "stale" for name in MANAGED)


def test_an_analysts_closing_reason_and_note_survive_defenders_echo() -> None:
    """Closed in Sentinel as FalsePositive / IncorrectAlertLogic with a note: Defender hears
    falsePositive (its only word for it) and the note as a comment. Its echo changes neither:
    the reason is Sentinel's while the classification is the same, the note while Defender
    has no resolving comment of its own."""
    closed = _sentinel_view(merge(None, _desired()))
    closed |= {
        "status": "Closed",
        "classification": "FalsePositive",
        "classificationReason": "IncorrectAlertLogic",
        "classificationComment": "Rule fires on our backup job",
    }
    echo = _desired(_incident(status="resolved", classification="falsePositive"))
    assert not differs(closed, echo)
    body = merge(closed, echo)
    assert body["classificationReason"] == "IncorrectAlertLogic"
    assert body["classificationComment"] == "Rule fires on our backup job"
    # Defender says something else: its classification, reason and resolving comment win.
    other = _incident(
        status="resolved", classification="truePositive", resolvingComment="Confirmed"
    )
    body = merge(closed, _desired(other))
    assert (body["classification"], body["classificationReason"]) == (
        "TruePositive",
        "SuspiciousActivity",
    )
    assert body["classificationComment"] == "Confirmed"


def test_the_owner_sentinel_resolved_stays_while_defender_names_the_same_person() -> None:
    """An analyst assigns herself in Sentinel: the owner carries her object id, e-mail and
    name (what "Assigned to me" and the owner column go by). Defender hears her UPN. A later
    write of anything else (a new alert, a status) keeps that owner whole rather than putting
    back a bare UPN; another person in Defender replaces it."""
    current = _sentinel_view(merge(None, _desired(_incident(assignedTo="ann@contoso.com"))))
    resolved = {
        "objectId": "3f49ac52-8132-4f99-ae1f-052e3036e60a",
        "email": "Ann@contoso.com",
        "assignedTo": "Ann Analyst",
        "userPrincipalName": "Ann@contoso.com",
        "ownerType": "User",
    }
    current["owner"] = resolved
    same = _desired(_incident(assignedTo="ann@contoso.com", status="inProgress"))
    assert merge(current, same)["owner"] == resolved
    other = merge(current, _desired(_incident(assignedTo="bob@contoso.com")))
    assert other["owner"] == sentinel_owner("bob@contoso.com")
    assert "owner" not in merge(current, _desired(_incident(assignedTo=None)))
