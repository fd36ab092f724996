"""Values of the wrong type raise one exception type, ModelError, naming the field."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from xdrsync.errors import SkippableError
from xdrsync.models import (
    Alert,
    Comment,
    DeviceEvidence,
    Incident,
    IpEvidence,
    ModelError,
    Severity,
    parse_evidence,
)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"severity": 5}, "severity"),
        ({"status": ["active"]}, "status"),
        ({"id": 2972395}, "id"),
        ({"alerts": "x"}, "alerts"),
        ({"alerts": ["x"]}, "alerts[0]"),
        ({"alerts": [{"severity": True}]}, "alerts[0].severity"),
        ({"alerts": [{}, {"evidence": [{}, 7]}]}, "alerts[1].evidence[1]"),
        ({"alerts": [{"evidence": [{"verdict": 1}]}]}, "alerts[0].evidence[0].verdict"),
        (
            {
                "alerts": [
                    {
                        "evidence": [
                            {
                                "@odata.type": "#microsoft.graph.security.ipEvidence",
                                "ipAddress": ["10.0.0.1"],
                            }
                        ]
                    }
                ]
            },
            "alerts[0].evidence[0].ipAddress",
        ),
        ({"customTags": "Demo"}, "customTags"),
        ({"customTags": ["Demo", 3]}, "customTags[1]"),
        ({"tags": [None]}, "tags[0]"),
        ({"createdDateTime": "last tuesday"}, "createdDateTime"),
        ({"createdDateTime": 1700000000}, "createdDateTime"),
        ({"priorityScore": "85"}, "priorityScore"),
        ({"priorityScore": True}, "priorityScore"),
        ({"comments": [{"createdTime": 5}]}, "comments[0].createdTime"),
        ({"comments": {"comment": "x"}}, "comments"),
    ],
)
def test_incident_type_errors_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as caught:
        Incident.from_graph(payload)
    assert caught.value.field == field
    assert caught.value.model == "Incident"
    assert f"'{field}'" in str(caught.value)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"evidence": {"@odata.type": "#microsoft.graph.security.ipEvidence"}}, "evidence"),
        ({"evidence": [None]}, "evidence[0]"),
        ({"additionalData": ["a"]}, "additionalData"),
        ({"roles": 5, "mitreTechniques": [1]}, "mitreTechniques[0]"),
        ({"evidence": [{"roles": ["source", 1]}]}, "evidence[0].roles[1]"),
        (
            {
                "evidence": [
                    {"@odata.type": "#microsoft.graph.security.deviceEvidence", "osBuild": "22424"}
                ]
            },
            "evidence[0].osBuild",
        ),
        (
            {
                "evidence": [
                    {
                        "@odata.type": "#microsoft.graph.security.deviceEvidence",
                        "vmMetadata": {"cloudProvider": 1},
                    }
                ]
            },
            "evidence[0].vmMetadata.cloudProvider",
        ),
        ({"evidence": [{"@odata.type": 42}]}, "evidence[0].@odata.type"),
    ],
)
def test_alert_type_errors_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as caught:
        Alert.from_graph(payload)
    assert caught.value.field == field


def test_model_error_is_skippable_and_does_not_echo_values() -> None:
    with pytest.raises(SkippableError) as caught:
        Incident.from_graph({"assignedTo": 12345, "displayName": "secret project"})
    assert isinstance(caught.value, ModelError)
    assert "12345" not in str(caught.value)
    assert "got a number" in str(caught.value)


@pytest.mark.parametrize("not_an_object", ["x", 5, None, ["a"]])
def test_top_level_must_be_an_object(not_an_object: Any) -> None:
    for parse in (Incident.from_graph, Alert.from_graph, Comment.from_graph, parse_evidence):
        with pytest.raises(ModelError, match="expected a JSON object"):
            parse(not_an_object)


def test_missing_and_extra_fields_never_fail() -> None:
    assert Incident.from_graph({}).id is None
    assert Alert.from_graph({"brandNewProperty": {"nested": [1, 2]}}).evidence == ()
    assert parse_evidence({"@odata.type": "#microsoft.graph.security.ipEvidence", "x": 1})


def test_models_built_in_code_raise_model_error_too() -> None:
    with pytest.raises(ModelError) as caught:
        Incident(id="1", priority_score="high")  # type: ignore[arg-type]
    assert caught.value.field == "priorityScore"
    with pytest.raises(ModelError) as caught:
        Alert(evidence=[{"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": 1}])
    assert caught.value.field == "evidence[0].ipAddress"
    with pytest.raises(ModelError, match="no such field"):
        DeviceEvidence(hostname="pc1")  # type: ignore[call-arg]
    naive = datetime(2024, 1, 1)
    with pytest.raises(ModelError, match="naive"):
        IpEvidence(created_date_time=naive)


def test_strings_are_not_lists_of_enums() -> None:
    with pytest.raises(ModelError) as caught:
        parse_evidence({"roles": "attacker"})
    assert caught.value.field == "roles"
    assert Severity("x")  # any string is a (possibly unknown) member
