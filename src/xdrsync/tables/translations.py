"""Translations of queries already run, so a query run again needs no KQL parser.

Translating a query (`querying.translate`: the compatibility rewrite, the allow-list on the
parsed query, duckdb-kql's SQL) needs duckdb-kql's ANTLR parser. Loading it costs more than
the rest of `xdrsync query` together, and each query is parsed twice more. Analysts, scripts
and dashboards run the same queries again and again, so a translation is kept under the text
of its query: in memory for a long-lived process (the console) and, when a folder is given, on
disk for the command line (`kql-cache/` in the workspace folder, private like the rest of it).

What is kept is what `translate` produced for the text, and the KQL types of the result's
columns once a run has shown them (mapping DuckDB's types back to KQL's is duckdb-kql's code
too). Only translations that depend on the text alone are kept: not those that read keys from
the data (`bag_unpack` of unknown keys) and not those that bind values (`set query_now`).

A kept entry is keyed by the text and by a fingerprint of the code that translates: xdrsync's
version and the name, size and modification time of every file of the `xdrsync.tables`
package and of duckdb-kql. An upgrade or an edit therefore never reads an older translation.
A kept SQL runs on the same locked, read-only connection as any other, and the store checks
it again there (`sandbox.check_sql`) before it runs: one that is not one SELECT is translated
again and replaced. An entry that does not read back exactly is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, Final

from xdrsync import __version__
from xdrsync.tables.querying import Translated
from xdrsync.tables.rewritten import Rewritten

#: Entries kept in memory, and on disk (the oldest read go first).
MEMORY_ENTRIES: Final = 256
DISK_ENTRIES: Final = 1000
_FORMAT: Final = 1
_SUFFIX: Final = ".json"


@dataclass(frozen=True)
class Kept:
    """One query's translation, and its result's column types once a run has shown them."""

    query: Translated
    #: DuckDB's type of each result column (as `cursor.description` names it) and the KQL type
    #: it reads as; empty until a run has shown them.
    engine_types: tuple[str, ...] = ()
    kql_types: tuple[str, ...] = ()


class Translations:
    """Kept translations, by query text: in memory, and in `folder` when one is given.
    Safe to share between threads (the console's requests)."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._memory: OrderedDict[str, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, kql: str) -> Kept | None:
        key = _key(kql)
        with self._lock:
            kept = self._memory.get(key)
            if kept is not None:
                self._memory.move_to_end(key)
                return kept
        if self._folder is None:
            return None
        kept = self._read(self._folder / f"{key}{_SUFFIX}", kql)
        if kept is not None:
            self._remember(key, kept)
        return kept

    def put(self, kql: str, kept: Kept) -> None:
        """Keep `kept` for `kql`; a translation that depends on more than the text is not
        kept (see the module's docstring)."""
        query = kept.query
        if query.parameters or query.rewritten.probes or query.rewritten.original != kql:
            return
        key = _key(kql)
        self._remember(key, kept)
        if self._folder is not None:
            self._write(key, kql, kept)

    def _remember(self, key: str, kept: Kept) -> None:
        with self._lock:
            self._memory[key] = kept
            self._memory.move_to_end(key)
            while len(self._memory) > MEMORY_ENTRIES:
                self._memory.popitem(last=False)

    @staticmethod
    def _read(path: Path, kql: str) -> Kept | None:
        try:
            data = json.loads(path.read_bytes())
            kept = _decode(data, kql)
            os.utime(path)  # read now: the last to go when the folder is trimmed
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return kept

    def _write(self, key: str, kql: str, kept: Kept) -> None:
        assert self._folder is not None
        text = json.dumps(_encode(kql, kept), separators=(",", ":"))
        name = ""
        try:
            self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{key}-", suffix=".tmp", dir=self._folder)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(name, self._folder / f"{key}{_SUFFIX}")
            self._trim()
        except OSError:  # a cache that cannot be written is only slower (a full disk)
            if name:
                Path(name).unlink(missing_ok=True)

    def _trim(self) -> None:
        assert self._folder is not None
        entries = [e for e in os.scandir(self._folder) if e.name.endswith(_SUFFIX)]
        if len(entries) <= DISK_ENTRIES:
            return
        entries.sort(key=lambda e: e.stat().st_mtime_ns)
        for entry in entries[: len(entries) - DISK_ENTRIES * 4 // 5]:
            Path(entry.path).unlink(missing_ok=True)


def _key(kql: str) -> str:
    return hashlib.sha256(f"{_fingerprint()}\0{kql}".encode()).hexdigest()


@cache
def _fingerprint() -> str:
    """What the translation of a text depends on besides the text (see the module)."""
    digest = hashlib.sha256(f"{_FORMAT}\0{__version__}".encode())
    tables = Path(__file__).parent
    spec = importlib.util.find_spec("duckdb_kql")  # found, not imported: no parser loaded
    found = spec.submodule_search_locations if spec is not None else None
    roots = [tables, *(Path(p) for p in found or ())]
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
            for name in sorted(files):
                stat = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def _encode(kql: str, kept: Kept) -> dict[str, Any]:
    rewritten = {f.name: getattr(kept.query.rewritten, f.name) for f in fields(Rewritten)}
    return {
        "format": _FORMAT,
        "kql": kql,
        "sql": kept.query.sql,
        "rewritten": rewritten,
        "engine_types": kept.engine_types,
        "kql_types": kept.kql_types,
    }


#: The type of the items of each list field of `Rewritten` (JSON holds tuples as lists).
_LISTS: Final[dict[str, type]] = {
    "functions": str,
    "applied": str,
    "starts": int,
    "origins": int,
    "exact": bool,
    "hidden": str,
    "probes": list,
}


def _decode(data: Any, kql: str) -> Kept:
    """The entry `data` read back for `kql`; ValueError (or TypeError/KeyError) otherwise."""
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("kql") != kql:
        raise ValueError("not an entry for this query")
    raw = data["rewritten"]
    if not isinstance(raw, dict) or set(raw) != {f.name for f in fields(Rewritten)}:
        raise ValueError("not a rewritten query")
    values: dict[str, Any] = {}
    for name, item in _LISTS.items():
        value = raw[name]
        if not isinstance(value, list) or not all(type(v) is item for v in value):
            raise ValueError(f"bad {name}")
        values[name] = tuple(value)
    renames = raw["renames"]
    if not isinstance(renames, dict) or not all(isinstance(v, str) for v in renames.values()):
        raise ValueError("bad renames")
    values["renames"] = renames
    values["original"], values["text"] = _strings([raw["original"], raw["text"]])
    if values["probes"] or values["original"] != kql:
        raise ValueError("a translation that depends on more than the text")
    sql = data["sql"]
    engine_types, kql_types = _strings(data["engine_types"]), _strings(data["kql_types"])
    if not isinstance(sql, str) or len(engine_types) != len(kql_types):
        raise ValueError("bad translation")
    query = Translated(sql=sql, parameters={}, rewritten=Rewritten(**values))
    return Kept(query, engine_types, kql_types)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a list of strings")
    return tuple(value)


def kusto_types(engine_types: Sequence[str]) -> tuple[str, ...]:
    """The KQL type each DuckDB result type reads as (duckdb-kql's mapping, loaded here only
    when no kept entry already says)."""
    from duckdb_kql.types import kusto_type

    return tuple(kusto_type(t) for t in engine_types)


__all__ = ["DISK_ENTRIES", "MEMORY_ENTRIES", "Kept", "Translations", "kusto_types"]
