"""KQL translation overhead of the compatibility layer, side by side in one run; and what a
`search` costs beside the query it stands for.

    python -m bench.kql            # prints a Markdown table
    python -m bench.kql --rounds 50
    python -m bench --only search  # searches over a synced workspace (`search_costs`)

For a short and a long query that duckdb-kql translates as written (so both paths run the
same query), the milliseconds per `translate()` with the layer (`compat.rewrite`, then the
allow-list and duckdb-kql) and without it, and the ratio; then one query that needs the
layer, and how much of the Sentinel-style corpus translates without and with the layer.
Translation is all the layer touches: running the SQL is the same either way. Ratios are the
figures to compare; absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.harness import emulator, run_xdrsync, write_config
from xdrsync.layout import LOG_FILE
from xdrsync.tables.errors import QueryError
from xdrsync.tables.logstore import LogStore
from xdrsync.tables.querying import translate
from xdrsync.tables.schemas import TABLE_NAMES

SHORT = 'SecurityIncident | where Severity == "High" | count'
LONG = """let window = 14d;
let incidents = SecurityIncident
    | where TimeGenerated > ago(window)
    | summarize arg_max(TimeGenerated, *) by IncidentNumber
    | where Status in ("New", "Active", "Closed")
    | extend Analyst = tostring(Owner.assignedTo), Alerts = toint(AdditionalData.alertsCount)
    | mv-expand AlertIds
    | extend SystemAlertId = tostring(AlertIds);
let alerts = SecurityAlert
    | where TimeGenerated > ago(window)
    | summarize arg_max(TimeGenerated, *) by SystemAlertId
    | extend Props = parse_json(ExtendedProperties), E = parse_json(Entities)
    | extend Threat = tostring(Props.ThreatName)
    | project SystemAlertId, AlertName, AlertSeverity, ProductName, Threat, E;
incidents
| join kind=inner (alerts) on SystemAlertId
| mv-expand E
| where tostring(E.Type) in ("host", "account", "file")
| summarize Alerts = dcount(SystemAlertId), Products = make_set(ProductName),
    Threats = make_set(Threat), Hosts = dcount(tostring(E.HostName))
    by IncidentNumber, Title, Severity, Analyst
| extend Rank = case(Severity == "High", 3, Severity == "Medium", 2, 1)
| sort by Rank desc, Alerts desc
| take 50"""
NEEDS_LAYER = """let AlertsFrom = (product:string) { SecurityAlert | where ProductName == product };
AlertsFrom("Microsoft Defender Advanced Threat Protection")
| mv-expand todynamic(Entities)
| summarize count(SystemAlertId) by tostring(Entities.Type), bin_at(TimeGenerated, 1h, ago(1d))"""


def _ms_per_call(call: Callable[[], object], rounds: int) -> float:
    call()  # warm caches (schemas, lexer DFA) outside the measurement
    start = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - start) * 1000 / rounds


def _corpus() -> dict[str, str]:
    """The test corpus (`tests/tables/kql_corpus.py`), loaded from its file."""
    path = Path(__file__).resolve().parent.parent / "tests" / "tables" / "kql_corpus.py"
    spec = importlib.util.spec_from_file_location("kql_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    corpus: dict[str, str] = module.CORPUS
    return corpus


def _translates(kql: str, compatible: bool) -> bool:
    try:
        translate(kql, TABLE_NAMES, compatible=compatible)
    except QueryError:
        return False
    return True


def run(rounds: int) -> str:
    lines = [
        "| query | without layer (ms) | with layer (ms) | ratio |",
        "|---|---|---|---|",
    ]
    for name, kql in (("short", SHORT), ("long", LONG)):
        # Alternated per round would be fairer still; consecutive blocks are close enough for
        # a ratio on an idle machine, and both blocks run in this one process.
        without = _ms_per_call(partial(translate, kql, TABLE_NAMES, compatible=False), rounds)
        with_ = _ms_per_call(partial(translate, kql, TABLE_NAMES), rounds)
        lines.append(
            f"| {name} ({len(kql)} chars) | {without:.2f} | {with_:.2f} | {with_ / without:.2f} |"
        )
    needs = _ms_per_call(partial(translate, NEEDS_LAYER, TABLE_NAMES), rounds)
    lines.append(f"| needs the layer ({len(NEEDS_LAYER)} chars) | fails | {needs:.2f} | - |")
    corpus = _corpus()
    bare = sum(_translates(q, compatible=False) for q in corpus.values())
    layered = sum(_translates(q, compatible=True) for q in corpus.values())
    lines.append("")
    lines.append(
        f"Corpus ({len(corpus)} queries) translating: {bare} without the layer "
        f"({100 * bare / len(corpus):.0f}%), {layered} with it ({100 * layered / len(corpus):.0f}%)."
    )
    return "\n".join(lines)


#: (search, the query a user would write who knows where the term is), side by side.
SEARCHES = (
    ('search "mimikatz"', 'SecurityAlert | where AlertName has "mimikatz"'),
    ('search "*mimi*"', 'SecurityAlert | where AlertName contains "mimi"'),
    ('search "mimi*tz"', 'SecurityAlert | where AlertName matches regex @"(?i)\\bmimi.*tz\\b"'),
    ('SecurityAlert | where * has "mimikatz"', 'SecurityAlert | where AlertName has "mimikatz"'),
)


def search_costs(work: Path, incidents: int, repeats: int = 3) -> list[list[str]]:
    """Seconds of each search in `SEARCHES` and of its targeted query, over the log tables of
    a backfill of `incidents`, medians of `repeats` taken in turns, each translation kept
    from a first untimed run (as `xdrsync query` keeps it): the cost of reading every column
    of every row instead of one column of one table."""
    with emulator("--incidents", str(incidents)) as emu:
        config = write_config(work / "search", emu, initial_backfill_days=31)
        synced = run_xdrsync("sync", "--once", "--config", str(config))
        if synced.returncode != 0:
            raise RuntimeError(synced.output[-2000:])
    store = LogStore(config.parent / LOG_FILE)
    rows_in = sum(int(store.query(f"{t} | count").rows[0][0]) for t in TABLE_NAMES)
    queries = [q for pair in SEARCHES for q in pair]
    times: dict[str, list[float]] = {q: [] for q in queries}
    for turn in range(repeats + 1):
        for kql in queries:
            started = time.perf_counter()
            store.query(kql)
            if turn:
                times[kql].append(time.perf_counter() - started)

    def cell(kql: str) -> str:
        return "`" + kql.replace("|", "\\|") + "`"  # a bar inside a Markdown table cell

    rows = []
    for searched, targeted in SEARCHES:
        cost, aimed = statistics.median(times[searched]), statistics.median(times[targeted])
        rows.append(
            [
                cell(searched),
                f"{cost:.2f}",
                cell(targeted),
                f"{aimed:.3f}",
                f"{cost / aimed:.0f}×",
            ]
        )
    rows.append([f"({incidents:,} incidents, {rows_in:,} rows in the log tables)", "", "", "", ""])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    print(run(args.rounds))


if __name__ == "__main__":
    main()
