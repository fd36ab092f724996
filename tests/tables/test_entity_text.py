"""SecurityAlert.Entities joins the JSON each entity was written in to find duplicates
(`EntityList.json`): the text must be what writing the whole array at once writes, including
where orjson refuses a value (the standard library writes some numbers otherwise) or nests
too deep inside the array."""

from __future__ import annotations

from typing import Any

import pytest
from graph_samples import all_incidents

from xdrsync.tables.encode import compact_json
from xdrsync.tables.entities import entity_list, kinded

T = "#microsoft.graph.security."
Pairs = list[tuple[str | None, dict[str, Any]]]


def _pairs(evidence: list[dict[str, Any]]) -> Pairs:
    return [(item.get("@odata.type"), item) for item in evidence]


def _nested(depth: int, leaf: object) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _samples() -> dict[str, Pairs]:
    found = {
        f"{name}-{alert['id']}": _pairs(alert.get("evidence") or [])
        for name, incident in all_incidents().items()
        for alert in incident.get("alerts") or []
    }
    small = {"@odata.type": f"{T}someNewEvidence", "ratio": 1e-7, "count": 0, "on": False}
    # orjson refuses an integer beyond 64 bits, and the array goes through the standard
    # library, which spells 1e-7 "1e-07": the other entities must be written that way too.
    found["beyond-64-bits"] = [
        (small["@odata.type"], small),
        (f"{T}otherNewEvidence", {"@odata.type": f"{T}otherNewEvidence", "big": 2**70}),
    ]
    found["lone-surrogate"] = [
        (small["@odata.type"], small),
        (f"{T}urlEvidence", {"@odata.type": f"{T}urlEvidence", "url": "https://x/\ud800"}),
    ]
    # An unknown type's properties named `$id` and `$ref` (`test_sentinel_mapping`).
    found["own-id"] = [
        (small["@odata.type"], small),
        (f"{T}fooEvidence", {"@odata.type": f"{T}fooEvidence", "$id": "evil", "name": "n"}),
        (f"{T}barEvidence", {"@odata.type": f"{T}barEvidence", "$ref": "1", "name": "m"}),
    ]
    # An entity orjson writes alone (254 levels) but not one level deeper, in the array.
    deep = {"@odata.type": f"{T}deepEvidence", "value": _nested(253, 1e-7)}
    found["deep"] = [(small["@odata.type"], small), (deep["@odata.type"], deep)]
    found["shallow"] = [(deep["@odata.type"], {**deep, "value": _nested(40, 1e-7)})]
    return found


SAMPLES = _samples()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_joined_entity_text_is_the_array_written_whole(name: str) -> None:
    pairs = SAMPLES[name]
    entities = entity_list(kinded(pairs))
    assert entities.json() == compact_json(entities.items)


def test_the_samples_make_entities_with_references() -> None:
    # The oracle above compares something: entities, some referring to others by `$id`.
    texts = [entity_list(kinded(pairs)).json() for pairs in SAMPLES.values()]
    assert all(text.startswith('[{"$id":"1",') for text in texts)
    assert any('"$ref":"' in text for text in texts)
    assert '"Ratio":1e-07' in entity_list(kinded(SAMPLES["beyond-64-bits"])).json()
