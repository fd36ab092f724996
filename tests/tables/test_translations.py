"""Kept translations (`translations`): a query run again answers exactly as a fresh
translation would, without loading the KQL parser; what depends on more than the text, or
does not read back, is translated again."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kql_corpus import CORPUS
from sentinel_workspace import seeded_store

from xdrsync.layout import KQL_CACHE
from xdrsync.tables import logstore, translations
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.querying import translate
from xdrsync.tables.schemas import TABLE_NAMES


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> LogStore:
    return seeded_store(tmp_path_factory.mktemp("kept") / "logs.duckdb")


def _entries(store: LogStore) -> list[Path]:
    folder = store.path.parent / KQL_CACHE
    return sorted(folder.glob("*.json")) if folder.exists() else []


def _no_translation(*_: Any, **__: Any) -> Any:
    raise AssertionError("translated again")


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_a_corpus_query_run_again_answers_as_a_fresh_translation_would(
    seeded: LogStore, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kql = CORPUS[name]
    first = seeded.query(kql)
    again = LogStore(seeded.path)  # a new process's store: nothing in memory, the disk only
    kept = again._translations.get(kql)
    if kept is None:  # only a query whose columns come from the data is not kept
        assert translate(kql, TABLE_NAMES).rewritten.probes, name
        return
    assert kept.query.sql == translate(kql, TABLE_NAMES).sql
    monkeypatch.setattr(logstore, "translate", _no_translation)
    second = again.query(kql)
    assert (second.columns, second.types) == (first.columns, first.types)
    if "now()" not in kql and "ago(" not in kql:  # the clock moves between the two runs
        assert _unordered(second.rows) == _unordered(first.rows)


def _unordered(rows: Any) -> list[Any]:
    """Rows in no particular order, and the elements of their lists too: neither the rows
    of a query without `sort` nor a `make_set` has an order (DuckDB's threads give either)."""
    return sorted(
        (tuple(sorted(v, key=repr) if isinstance(v, list) else v for v in row) for row in rows),
        key=repr,
    )


def test_a_query_run_before_does_not_load_the_parser(seeded: LogStore) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from xdrsync.tables.logstore import LogStore
        result = LogStore(Path({str(seeded.path)!r})).query(
            "SecurityIncident | summarize n = count() by Severity | order by Severity asc"
        )
        print(repr(result.rows), "duckdb_kql" in sys.modules, "antlr4" in sys.modules)
        """
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
        ).stdout.split()
        for _ in range(2)
    ]
    first, second = (" ".join(run[:-2]) for run in runs)
    assert first == second and "High" in first
    assert runs[0][-2:] == ["True", "True"]  # translated: the parser was loaded
    assert runs[1][-2:] == ["False", "False"]  # kept: it was not


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: "not json{",
        lambda entry: json.dumps({**entry, "sql": "DROP TABLE xdrsync_store.x"}),
        lambda entry: json.dumps({**entry, "kql": "SecurityAlert | count"}),
        lambda entry: json.dumps({**entry, "rewritten": {**entry["rewritten"], "starts": "x"}}),
        lambda entry: json.dumps({**entry, "kql_types": ["long", "long"]}),
    ],
    ids=["not-json", "not-a-select", "another-query", "bad-field", "types-mismatch"],
)
def test_a_damaged_entry_is_translated_again_and_replaced(tmp_path: Path, damage: Any) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    store.append("SecurityIncident", [{"IncidentNumber": 1}, {"IncidentNumber": 2}])
    kql = "SecurityIncident | count"
    assert store.query(kql).rows == ((2,),)
    (entry,) = _entries(store)
    good = json.loads(entry.read_text())
    entry.write_text(damage(good))
    assert LogStore(store.path).query(kql).rows == ((2,),)
    assert json.loads(entry.read_text()) == good


def test_a_query_whose_columns_come_from_the_data_follows_the_data(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    kql = "AlertEvidence | evaluate bag_unpack(AdditionalFields)"
    store.append("AlertEvidence", [{"EntityType": "File", "AdditionalFields": {"a": 1}}])
    assert "a" in store.query(kql).columns
    store.append("AlertEvidence", [{"EntityType": "Ip", "AdditionalFields": {"b": "x"}}])
    result = LogStore(store.path).query(kql)
    assert {"a", "b"} <= set(result.columns)
    assert _entries(store) == []


def test_kept_translations_are_bounded_in_memory_and_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(translations, "MEMORY_ENTRIES", 3)
    monkeypatch.setattr(translations, "DISK_ENTRIES", 5)
    store = LogStore(tmp_path / "logs.duckdb")
    for n in range(9):
        assert store.query(f"print x = {n}").rows == ((n,),)
        assert len(store._translations._memory) <= 3
        assert len(_entries(store)) <= 5
    assert len(_entries(store)) >= 4  # trimmed to 4/5 of the bound, not emptied
    assert store._translations.get("print x = 8") is not None  # the latest is kept


def test_a_new_version_does_not_read_an_older_translation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    store.query("print x = 1")
    assert LogStore(store.path)._translations.get("print x = 1") is not None
    monkeypatch.setattr(translations, "__version__", "99.0.0")
    translations._fingerprint.cache_clear()
    try:
        assert LogStore(store.path)._translations.get("print x = 1") is None
    finally:
        monkeypatch.undo()
        translations._fingerprint.cache_clear()


def test_a_workspace_that_cannot_be_written_still_answers(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs.duckdb")
    store.append("SecurityIncident", [{"IncidentNumber": 1}])
    (tmp_path / KQL_CACHE).write_text("a file where the folder would be")
    assert LogStore(store.path).query("SecurityIncident | count").rows == ((1,),)
