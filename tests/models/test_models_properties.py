"""Property tests: any Graph-like JSON round-trips exactly; identities ignore case."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xdrsync.models import (
    Alert,
    Comment,
    Determination,
    Evidence,
    GraphModel,
    Incident,
    ModelError,
    UnparsedEvidence,
    format_datetime,
    parse_datetime,
    parse_evidence,
    registered_types,
)
from xdrsync.models.base import specs_of
from xdrsync.models.fields import FieldSpec, Kind
from xdrsync.models.wire import _parse as _parse_datetime_text
from xdrsync.models.wire import _parse_general

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_DEPTH = 3

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def graph_datetimes(draw: st.DrawFn) -> str:
    """Graph DateTimeOffset text in the shapes seen in the wild."""
    moment = draw(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)))
    digits = draw(st.integers(min_value=0, max_value=7))
    fraction = (
        "."
        + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
        if digits
        else ""
    )
    suffix = draw(st.sampled_from(["Z", "z", "+00:00", "+05:30", "-08:00", ""]))
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + suffix


def spellings(values: tuple[str, ...]) -> st.SearchStrategy[str]:
    known = st.sampled_from(values).flatmap(
        lambda v: st.sampled_from([v, v.upper(), v.lower(), v[:1].upper() + v[1:]])
    )
    return known | st.text(max_size=12)  # unknown members are kept too


def value_for(spec: FieldSpec, depth: int) -> st.SearchStrategy[Any]:
    kind = spec.kind
    if kind is Kind.SCALAR:
        base = {
            str: st.text(max_size=16),
            int: st.integers(min_value=-(2**40), max_value=2**40),
            float: st.floats(allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000),
            bool: st.booleans(),
        }[spec.exact]  # type: ignore[index]
    elif kind is Kind.OBJECT:
        base = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
    elif kind is Kind.ANY:
        base = json_values
    elif kind is Kind.DATETIME:
        base = graph_datetimes()
    elif kind is Kind.ENUM:
        base = spellings(spec.target.MEMBERS + tuple(spec.target.ALIASES))
    elif kind is Kind.ENUMS:
        base = st.lists(spellings(spec.target.MEMBERS), max_size=3)
    elif kind is Kind.SCALARS:
        base = st.lists(st.text(max_size=10), max_size=3)
    elif depth >= MAX_DEPTH:
        base = st.just([]) if kind is Kind.MODELS else st.none()
    elif kind is Kind.MODEL:
        base = graph_object(spec.target, depth + 1)
    else:
        base = st.lists(graph_object(spec.target, depth + 1), max_size=2)
    return st.none() | base


@st.composite
def fields_of(draw: st.DrawFn, cls: type[GraphModel], depth: int) -> dict[str, Any]:
    specs = specs_of(cls)
    out: dict[str, Any] = {}
    for key, spec in specs.by_key.items():
        if key == "@odata.type" or not draw(st.booleans()):
            continue
        out[key] = draw(value_for(spec, depth))
    extras = draw(
        st.dictionaries(
            st.text(min_size=1, max_size=10).filter(
                lambda k: k not in specs.by_key and k != "@odata.type"
            ),
            json_values,
            max_size=2,
        )
    )
    out.update(extras)
    keys = list(out)
    order = draw(st.permutations(keys))  # property order must not matter either
    return {k: out[k] for k in order}


EVIDENCE_TYPES = sorted(registered_types())


@st.composite
def evidence_object(draw: st.DrawFn, declared: type[Evidence], depth: int) -> dict[str, Any]:
    choice = draw(st.sampled_from(["declared", "known", "unknown", "missing"]))
    if choice == "known" or (choice == "declared" and declared is Evidence):
        odata_type: str | None = draw(st.sampled_from(EVIDENCE_TYPES))
        cls = (
            registered_types()[odata_type]
            if issubclass(registered_types()[odata_type], declared)
            else declared
        )
    elif choice == "unknown":
        odata_type = (
            "#microsoft.graph.security."
            + draw(st.text("abcdefgh", min_size=1, max_size=8))
            + "Evidence"
        )
        cls = declared
    else:
        odata_type = declared.ODATA_TYPE if choice == "declared" else None
        cls = declared
    body = draw(fields_of(cls, depth))
    if odata_type is not None:
        body = {"@odata.type": odata_type, **body}
    elif choice == "missing" and draw(st.booleans()):
        body = {"@odata.type": None, **body}
    return body


def graph_object(cls: type[GraphModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    if issubclass(cls, Evidence):
        return evidence_object(cls, depth)
    return fields_of(cls, depth)


@st.composite
def alert_with_evidence(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    body = draw(fields_of(Alert, depth))
    body["evidence"] = draw(st.lists(evidence_object(Evidence, depth + 1), min_size=1, max_size=4))
    return body


@st.composite
def incident_with_alerts(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(fields_of(Incident, 0))
    body["alerts"] = draw(st.lists(alert_with_evidence(1), min_size=1, max_size=3))
    return body


@SETTINGS
@given(incident_with_alerts() | graph_object(Incident))
def test_any_incident_json_round_trips_exactly(payload: dict[str, Any]) -> None:
    snapshot = json.loads(json.dumps(payload))
    assert Incident.from_graph(payload).to_graph() == payload
    assert payload == snapshot  # and the input was not modified


@SETTINGS
@given(alert_with_evidence() | graph_object(Alert))
def test_any_alert_json_round_trips_exactly(payload: dict[str, Any]) -> None:
    assert Alert.from_graph(payload).to_graph() == payload


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evidence_object(Evidence, 0))
def test_any_evidence_json_round_trips_exactly(payload: dict[str, Any]) -> None:
    evidence = parse_evidence(payload)
    assert evidence.to_graph() == payload
    evidence.entity_key()  # never fails, whatever is missing
    assert isinstance(evidence.display_name(), str)


@st.composite
def misfit_evidence(draw: st.DrawFn) -> dict[str, Any]:
    """An item of a known type with one property of a shape its type does not have: the
    drift of a Graph that changed that property."""
    odata_type = draw(st.sampled_from(EVIDENCE_TYPES))
    cls = registered_types()[odata_type]
    body = draw(fields_of(cls, MAX_DEPTH - 1))
    key = draw(st.sampled_from(sorted(k for k in specs_of(cls).by_key if k != "@odata.type")))
    body[key] = draw(json_values | graph_datetimes() | st.just("yesterday"))
    item = {"@odata.type": odata_type, **body}
    try:
        Evidence.from_graph_strict(item)
    except ModelError:
        return item
    assume(False)  # the value happened to fit
    raise AssertionError("unreachable")


@SETTINGS
@given(incident_with_alerts(), misfit_evidence(), st.data())
def test_an_incident_with_an_evidence_item_that_does_not_fit_round_trips_exactly(
    payload: dict[str, Any], misfit: dict[str, Any], data: st.DataObject
) -> None:
    which = data.draw(st.integers(0, len(payload["alerts"]) - 1))
    alert = payload["alerts"][which]
    at = data.draw(st.integers(0, len(alert["evidence"])))
    alert["evidence"].insert(at, misfit)
    snapshot = json.loads(json.dumps(payload))
    parsed = Incident.from_graph(payload)
    assert parsed.to_graph() == payload
    assert payload == snapshot
    kept = parsed.alerts[which].evidence[at]
    assert isinstance(kept, UnparsedEvidence) and kept.raw == misfit
    assert kept.problem  # names why
    assert kept.entity_key() is None


@SETTINGS
@given(graph_object(Comment))
def test_any_comment_json_round_trips_exactly(payload: dict[str, Any]) -> None:
    assert Comment.from_graph(payload).to_graph() == payload


@SETTINGS
@given(alert_with_evidence())
def test_models_rebuilt_in_code_serialise_to_json_that_parses_back_equal(
    payload: dict[str, Any],
) -> None:
    parsed = Alert.from_graph(payload)
    fields = {name: value for name, value in parsed.__dict__.items() if name != "raw"}
    built = Alert(**fields)
    graph = built.to_graph()
    assert json.loads(json.dumps(graph)) == graph
    assert Alert.from_graph(graph) == built
    assert built.to_graph() == graph


@SETTINGS
@given(st.sampled_from(Determination.MEMBERS + tuple(Determination.ALIASES)), st.data())
def test_determination_spellings_compare_canonically_and_serialise_as_given(
    value: str, data: st.DataObject
) -> None:
    spelling = data.draw(
        st.sampled_from([value, value.upper(), value.lower(), value[:1].upper() + value[1:]])
    )
    parsed = Incident.from_graph({"determination": spelling})
    assert parsed.determination is not None
    assert parsed.determination.is_known
    assert parsed.determination == Determination(value)
    assert parsed.to_graph() == {"determination": spelling}


# -- identities ------------------------------------------------------------------------------

labels = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12
)
dns_names = st.lists(labels, min_size=1, max_size=4).map(".".join)


def case_variants(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda flips: "".join(
            c.upper() if f else c.lower() for c, f in zip(text, flips, strict=True)
        )
    )


@SETTINGS
@given(dns_names.flatmap(lambda name: st.tuples(st.just(name), case_variants(name))))
def test_device_and_dns_keys_ignore_case(names: tuple[str, str]) -> None:
    original, variant = names
    for odata, field in (("deviceEvidence", "deviceDnsName"), ("dnsEvidence", "domainName")):
        first = parse_evidence(
            {"@odata.type": f"#microsoft.graph.security.{odata}", field: original}
        )
        second = parse_evidence(
            {"@odata.type": f"#microsoft.graph.security.{odata}", field: variant}
        )
        assert first.entity_key() == second.entity_key()
        assert first.entity_key() is not None


@SETTINGS
@given(
    st.tuples(labels, dns_names)
    .map(lambda parts: f"{parts[0]}@{parts[1]}")
    .flatmap(lambda upn: st.tuples(st.just(upn), case_variants(upn)))
)
def test_user_and_mailbox_keys_ignore_upn_case(upns: tuple[str, str]) -> None:
    original, variant = upns
    users = [
        parse_evidence(
            {
                "@odata.type": "#microsoft.graph.security.userEvidence",
                "userAccount": {"userPrincipalName": upn},
            }
        )
        for upn in (original, variant)
    ]
    assert users[0].entity_key() == users[1].entity_key()
    mailboxes = [
        parse_evidence(
            {"@odata.type": "#microsoft.graph.security.mailboxEvidence", "primaryAddress": upn}
        )
        for upn in (original, variant)
    ]
    assert mailboxes[0].entity_key() == mailboxes[1].entity_key()


@SETTINGS
@given(st.uuids().map(str).flatmap(lambda g: st.tuples(st.just(g), case_variants(g))))
def test_guid_identified_entities_ignore_case(guids: tuple[str, str]) -> None:
    for body in (
        lambda g: {"@odata.type": "#microsoft.graph.security.deviceEvidence", "azureAdDeviceId": g},
        lambda g: {
            "@odata.type": "#microsoft.graph.security.userEvidence",
            "userAccount": {"azureAdUserId": g},
        },
        lambda g: {"@odata.type": "#microsoft.graph.security.oauthApplicationEvidence", "appId": g},
        lambda g: {
            "@odata.type": "#microsoft.graph.security.analyzedMessageEvidence",
            "networkMessageId": g,
        },
    ):
        assert (
            parse_evidence(body(guids[0])).entity_key()
            == parse_evidence(body(guids[1])).entity_key()
        )


@SETTINGS
@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_datetimes_survive_formatting(moment: datetime) -> None:
    assert parse_datetime(format_datetime(moment)) == moment


# -- the fast paths against the general ones ------------------------------------------------


def assert_parsed_alike(cls: type[GraphModel], data: dict[str, Any]) -> None:
    """The parse functions compiled for `cls` read `data` as the table loop does: the same
    model (values and their spelling, `__dict__` order, fields set, `raw` the input itself),
    or a failure where the loop fails (which `_parse_graph` then leaves to the loop)."""
    specs = specs_of(cls)
    legacy = {old for spec in specs.fields for old in spec.legacy}
    for strict, compiled in ((False, specs.parse_compiled), (True, specs.strict_compiled)):
        try:
            fast = compiled(data)
        except (ValueError, ModelError):
            with pytest.raises(ModelError):
                cls._parse_table(specs, data, strict)
            continue
        if fast is None:  # an older property name: left to the table loop
            assert not legacy.isdisjoint(data)
            continue
        slow = cls._parse_table(specs, data, strict)
        assert type(fast) is type(slow)
        assert fast == slow
        assert repr(list(fast.__dict__.items())) == repr(list(slow.__dict__.items()))
        assert fast.__pydantic_fields_set__ == slow.__pydantic_fields_set__
        assert (fast.__pydantic_extra__, fast.__pydantic_private__) == (None, None)
        assert fast.raw is data


def every_model_class() -> list[type[GraphModel]]:
    found: list[type[GraphModel]] = []
    todo: list[type[GraphModel]] = [GraphModel]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            todo.append(sub)
    return sorted(set(found), key=lambda cls: cls.__qualname__)


@st.composite
def any_model_json(draw: st.DrawFn) -> tuple[type[GraphModel], dict[str, Any]]:
    """A class and a Graph object for it, often with one property of a shape it does not
    have (a failure both paths must see)."""
    cls = draw(st.sampled_from(every_model_class()))
    body = draw(graph_object(cls, MAX_DEPTH - 1))
    keys = sorted(specs_of(cls).by_key)
    if draw(st.booleans()):
        key = draw(st.sampled_from(keys))
        body[key] = draw(json_values | graph_datetimes() | st.just("yesterday"))
    return cls, body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_model_json())
def test_compiled_parse_functions_read_json_as_the_table_loop(
    case: tuple[type[GraphModel], dict[str, Any]],
) -> None:
    assert_parsed_alike(*case)


@settings(max_examples=300, deadline=None)
@given(
    graph_datetimes()
    | st.builds(lambda a, b: a + b, graph_datetimes(), st.sampled_from(["Z", " Z", "+00:00Z"]))
    | st.text("0123456789-:T.Z+ ", max_size=30)
)
def test_the_fast_datetime_path_reads_text_as_the_general_one(text: str) -> None:
    try:
        fast: datetime | str = _parse_datetime_text.__wrapped__(text)
    except ValueError:
        fast = "fails"
    try:
        general: datetime | str = _parse_general(text)
    except ValueError:
        general = "fails"
    assert fast == general
    if isinstance(fast, datetime) and isinstance(general, datetime):
        assert fast.tzinfo is general.tzinfo is UTC


def _nested(model: GraphModel) -> list[GraphModel]:
    found = [model]
    for value in model.__dict__.values():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, GraphModel):
                found += _nested(item)
    return found


def test_compiled_parse_functions_read_the_documented_examples_as_the_table_loop() -> None:
    data = Path(__file__).parent / "data"
    incidents = [
        *json.loads((data / "list_incidents.json").read_text("utf-8"))["value"],
        *json.loads((data / "list_incidents_expand_alerts.json").read_text("utf-8"))["value"],
    ]
    models: list[GraphModel] = [Incident.from_graph(item) for item in incidents]
    models.append(Alert.from_graph(json.loads((data / "get_alert.json").read_text("utf-8"))))
    samples = json.loads((data / "evidence_samples.json").read_text("utf-8"))
    models += [parse_evidence(sample["payload"]) for sample in samples.values()]
    seen: set[type[GraphModel]] = set()
    for model in (nested for top in models for nested in _nested(top)):
        assert_parsed_alike(type(model), cast(dict[str, Any], model.raw))
        seen.add(type(model))
    assert len(seen) > 40  # every evidence type of the samples, and the types they nest
