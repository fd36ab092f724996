"""Values of the wrong type raise one exception type, ModelError, naming the field."""

from __future__ import annotations

import copy
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
    ProcessEvidence,
    Severity,
    UnknownEvidence,
    UnparsedEvidence,
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
        ({"alerts": [{"evidence": "x", "title": "t"}]}, "alerts[0].evidence"),
        ({"alerts": [{"evidence": [{}], "severity": 2}]}, "alerts[0].severity"),
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
        ({"evidence": [{}, "x"]}, "evidence[1]"),
        ({"evidence": [{"verdict": 1}], "lastUpdateDateTime": "soon"}, "lastUpdateDateTime"),
    ],
)
def test_alert_type_errors_name_the_field(payload: dict[str, Any], field: str) -> None:
    with pytest.raises(ModelError) as caught:
        Alert.from_graph(payload)
    assert caught.value.field == field


DEVICE = "#microsoft.graph.security.deviceEvidence"
PROCESS = "#microsoft.graph.security.processEvidence"
IP = "#microsoft.graph.security.ipEvidence"


@pytest.mark.parametrize(
    ("item", "kind", "problem"),
    [
        ({"@odata.type": PROCESS, "processId": "abc"}, "process", "ProcessEvidence: field "
         "'processId': expected an integer, got a string"),
        ({"@odata.type": DEVICE, "createdDateTime": "yesterday"}, "device", "createdDateTime"),
        ({"@odata.type": IP, "ipAddress": 12}, "ip", "'ipAddress': expected a string"),
        ({"@odata.type": IP, "ipAddress": ["10.0.0.1"]}, "ip", "ipAddress"),
        ({"@odata.type": DEVICE, "osBuild": "22424"}, "device", "osBuild"),
        ({"@odata.type": DEVICE, "vmMetadata": {"cloudProvider": 1}}, "device",
         "'vmMetadata.cloudProvider'"),
        ({"@odata.type": DEVICE, "loggedOnUsers": "alice"}, "device", "loggedOnUsers"),
        ({"roles": ["source", 1]}, "unknown", "roles[1]"),
        ({"verdict": 1}, "unknown", "verdict"),
        ({"@odata.type": 42}, "unknown", "@odata.type"),
        ({"@odata.type": "#microsoft.graph.security.aiThingEvidence", "tags": "x"}, "aiThing",
         "tags"),
    ],
)  # fmt: skip
def test_an_evidence_item_that_does_not_fit_its_type_is_kept_whole_not_the_alert_lost(
    item: dict[str, Any], kind: str, problem: str
) -> None:
    """Graph changing one property's shape in one evidence type costs neither the alert nor
    its incident: the item is kept whole, unparsed, and says why."""
    good = {"@odata.type": IP, "ipAddress": "10.0.0.1"}
    alert = {"id": "da1", "title": "t", "evidence": [good, copy.deepcopy(item)]}
    incident = {"id": "7", "alerts": [alert]}
    parsed = Incident.from_graph(copy.deepcopy(incident))
    assert parsed.to_graph() == incident  # the whole payload, exactly as received
    (read,) = parsed.alerts
    assert read.id == "da1" and read.title == "t"
    assert isinstance(read.evidence[0], IpEvidence)  # the items around it parse as ever
    kept = read.evidence[1]
    assert isinstance(kept, UnparsedEvidence)
    assert kept.raw == item and kept.to_graph() == item
    assert kept.kind == kind
    assert kept.entity_key() is None and kept.display_name() == kind
    assert problem in kept.problem
    assert parse_evidence(item).to_graph() == item


def test_code_and_specific_classes_still_refuse_what_graph_input_keeps() -> None:
    item = {"@odata.type": PROCESS, "processId": "abc"}
    with pytest.raises(ModelError) as caught:
        Incident(alerts=[{"evidence": [item]}])  # Graph JSON handed to code: strict, any depth
    assert caught.value.field == "alerts[0].evidence[0].processId"
    with pytest.raises(ModelError) as caught:
        Alert.from_graph_strict({"evidence": [item]})
    assert caught.value.field == "evidence[0].processId"
    with pytest.raises(ModelError) as caught:
        ProcessEvidence.from_graph(item)  # a specific class cannot hand back another one
    assert caught.value.field == "processId"
    with pytest.raises(ModelError):
        ProcessEvidence(process_id="abc")  # type: ignore[arg-type]


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
        UnknownEvidence.from_graph({"roles": "attacker"})
    assert caught.value.field == "roles"
    assert Severity("x")  # any string is a (possibly unknown) member


def test_a_bad_value_deep_in_self_nested_evidence_is_read_again_once_per_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Evidence nests itself (a container image's digest image): a bad value at the bottom
    of a hostile chain must cost the table loop's reading of each level a few times, not
    twice per level (2^depth: a 30-level item would take hours, and stall the sync)."""
    from xdrsync.models.base import GraphModel

    t = "#microsoft.graph.security.containerImageEvidence"
    depth = 16
    node: dict[str, Any] = {"@odata.type": t, "imageId": 5}  # not a string
    for _ in range(depth):
        node = {"@odata.type": t, "imageId": "i", "digestImage": node}
    calls = 0
    table = GraphModel.__dict__["_parse_table"].__func__

    def counted(cls: type[GraphModel], *args: Any) -> Any:
        nonlocal calls
        calls += 1
        return table(cls, *args)

    monkeypatch.setattr(GraphModel, "_parse_table", classmethod(counted))
    alert = Alert.from_graph({"id": "a", "evidence": [node]})
    assert isinstance(alert.evidence[0], UnparsedEvidence)  # kept whole, the alert not lost
    assert calls <= (depth + 2) ** 2


def test_an_integer_no_float_can_hold_keeps_its_evidence_item_whole() -> None:
    # JSON numbers have no range: one beyond a float's, in a float property, is a value that
    # does not fit its type, so the item is kept as Graph sent it and the alert goes on.
    item = {
        "@odata.type": "#microsoft.graph.security.ipEvidence",
        "ipAddress": "10.0.0.1",
        "location": {"latitude": 2**2000},
    }
    raw = {"id": "a", "evidence": [item]}
    alert = Alert.from_graph(raw)
    (kept,) = alert.evidence
    assert isinstance(kept, UnparsedEvidence)
    assert "float" in kept.problem and "2001 bits" in kept.problem
    assert alert.to_graph() == raw
