"""Open enums: case-insensitive, never reject a value, keep the wire spelling."""

from __future__ import annotations

import copy
import pickle

import pytest
from pydantic import TypeAdapter

from xdrsync.models import (
    Alert,
    AlertStatus,
    Classification,
    DetectionSource,
    Determination,
    EvidenceRemediationStatus,
    EvidenceRole,
    EvidenceVerdict,
    Incident,
    IncidentStatus,
    InvestigationState,
    OpenEnum,
    ServiceSource,
    Severity,
)

ALL_ENUMS: list[type[OpenEnum]] = [
    AlertStatus,
    Classification,
    DetectionSource,
    Determination,
    EvidenceRemediationStatus,
    EvidenceRole,
    EvidenceVerdict,
    IncidentStatus,
    InvestigationState,
    ServiceSource,
    Severity,
]


@pytest.mark.parametrize("enum", ALL_ENUMS)
def test_every_member_parses_in_any_case(enum: type[OpenEnum]) -> None:
    assert enum.MEMBERS
    for value in enum.MEMBERS:
        for spelling in (value, value.upper(), value[:1].upper() + value[1:], value.lower()):
            parsed = enum(spelling)
            assert parsed == value
            assert parsed.is_known
            assert parsed.wire == spelling
            assert hash(parsed) == hash(value)


def test_pascal_and_camel_case_values_are_the_same_member() -> None:
    assert Classification("TruePositive") == Classification("truePositive")
    assert Classification("TruePositive") == Classification.TRUE_POSITIVE
    assert IncidentStatus("Active") is not IncidentStatus("active")  # different wire text...
    assert IncidentStatus("Active") == IncidentStatus.ACTIVE  # ...same member
    assert {IncidentStatus("Active"): 1}[IncidentStatus.ACTIVE] == 1
    assert Severity("HIGH") in {Severity.HIGH}


def test_canonical_value_is_the_string_value() -> None:
    value = Classification("TRUEPOSITIVE")
    assert value == "truePositive"
    assert str(value) == "truePositive"
    assert f"{value}" == "truePositive"
    assert value.value == "truePositive"
    assert isinstance(value, str)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("compromisedUser", "compromisedAccount"),
        ("CompromisedUser", "compromisedAccount"),
        ("compromisedAccount", "compromisedAccount"),
        ("clean", "notMalicious"),
        ("Clean", "notMalicious"),
        ("notMalicious", "notMalicious"),
        ("insufficientData", "notEnoughDataToValidate"),
        ("NoEnoughDataToValidate", "notEnoughDataToValidate"),
        ("NotEnoughDataToValidate", "notEnoughDataToValidate"),
        ("confirmedUserActivity", "confirmedActivity"),
        ("ConfirmedActivity", "confirmedActivity"),
    ],
)
def test_both_determination_vocabularies_map_to_one_member(spelling: str, canonical: str) -> None:
    value = Determination(spelling)
    assert value == canonical
    assert value.is_known
    assert value.wire == spelling
    incident = Incident.from_graph({"id": "1", "determination": spelling})
    assert incident.determination == canonical
    assert incident.to_graph() == {"id": "1", "determination": spelling}


def test_determination_aliases_compare_equal_to_each_other() -> None:
    assert Determination("clean") == Determination("notMalicious") == Determination.NOT_MALICIOUS
    assert Determination("compromisedUser") == Determination.COMPROMISED_ACCOUNT
    assert len({Determination("clean"), Determination("NotMalicious")}) == 1


def test_unknown_members_are_kept_and_round_trip() -> None:
    value = Severity("Critical")
    assert not value.is_known
    assert value.wire == "Critical"
    assert value == Severity("critical")  # PascalCase versus camelCase, as for members
    assert value != Severity.HIGH
    alert = Alert.from_graph({"severity": "Critical", "status": "snoozed", "roles": 1})
    assert alert.severity == value
    assert alert.status is not None
    assert not alert.status.is_known
    assert alert.to_graph() == {"severity": "Critical", "status": "snoozed", "roles": 1}


def test_unknown_future_value_is_a_documented_member() -> None:
    assert ServiceSource("unknownFutureValue") == ServiceSource.UNKNOWN_FUTURE_VALUE
    assert ServiceSource("unknownFutureValue").is_known


def test_members_are_typed_class_attributes() -> None:
    assert isinstance(Severity.HIGH, Severity)
    assert Severity.HIGH.wire == "high"
    assert repr(Severity.HIGH) == "Severity('high')"
    assert repr(Determination("clean")) == "Determination('notMalicious', wire='clean')"
    assert DetectionSource.MICROSOFT_DEFENDER_FOR_IOT == "microsoftDefenderForIoT"


def test_values_are_immutable_and_survive_copy_and_pickle() -> None:
    value = Determination("Clean")
    with pytest.raises(AttributeError):
        value.wire = "x"  # type: ignore[misc]
    assert copy.deepcopy(value) is value
    restored = pickle.loads(pickle.dumps(value))
    assert restored == Determination.NOT_MALICIOUS
    assert restored.wire == "Clean"
    assert Determination.NOT_MALICIOUS.wire == "notMalicious"  # the interned member is intact


def test_non_strings_are_rejected() -> None:
    with pytest.raises(TypeError):
        Severity(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a string"):
        Severity.parse(5)


def test_pydantic_serialises_the_wire_spelling() -> None:
    adapter = TypeAdapter(Severity)
    assert adapter.validate_python("HIGH") == Severity.HIGH
    assert adapter.dump_json(Severity("HIGH")) == b'"HIGH"'
    assert adapter.json_schema()["type"] == "string"
