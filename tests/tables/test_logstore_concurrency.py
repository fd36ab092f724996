"""`xdrsync run` appends while `xdrsync query` reads, from separate processes, and nobody fails.

Three real processes share one DuckDB file: a writer appends a batch 20 times a second (far more
often than `run` does, so collisions are common) while two readers query in a loop. Every batch
is one transaction, so every query must see whole batches only and never fewer rows than the
query before it. The processes coordinate by files rather than by the clock, so a loaded CI
machine makes the test slower, not flaky.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from xdrsync.tables.logstore import LogStore

BATCH = 40
BATCHES = 8
READERS = 2

_WRITER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime, UTC
    from pathlib import Path
    from xdrsync.tables.logstore import LogStore

    path, batch, batches, readers = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = LogStore(path)
    deadline = time.monotonic() + 120
    while len(list(path.parent.glob("reader-*.ready"))) < readers:  # readers are looping
        assert time.monotonic() < deadline, "readers never started"
        time.sleep(0.02)
    started = time.monotonic()
    for written in range(batches):
        now = datetime.now(UTC)
        store.append("SecurityAlert", [
            {"SystemAlertId": f"{written}-{i}", "AlertName": f"batch-{written}",
             "TimeGenerated": now, "_Seq": written}
            for i in range(batch)
        ])
        time.sleep(0.05)
    (path.parent / "writer.done").touch()
    print(json.dumps({"batches": batches, "seconds": time.monotonic() - started}))
    """
)

_READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from xdrsync.tables.logstore import LogStore

    path, batch, name = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    store = LogStore(path)
    seen, slowest, problems, last = set(), 0.0, [], 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = (path.parent / "writer.done").exists()
        started = time.monotonic()
        rows, batches = store.query(
            "SecurityAlert | summarize n = count(), b = dcount(AlertName)"
        ).rows[0]
        slowest = max(slowest, time.monotonic() - started)
        (path.parent / f"reader-{name}.ready").touch()
        seen.add(rows)
        if rows != batches * batch:
            problems.append(f"torn batch: {rows} rows in {batches} batches")
        if rows < last:
            problems.append(f"went back from {last} to {rows} rows")
        last = rows
        if finished:
            break
    print(json.dumps({"seen": sorted(seen), "last": last, "slowest": slowest,
                      "problems": problems}))
    """
)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err  # no error surfaced to the user or to the sync
    report: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return report


def test_sync_appends_while_users_query_from_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "logs.duckdb"
    LogStore(path).initialize()
    writer = _spawn(_WRITER, str(path), str(BATCH), str(BATCHES), str(READERS))
    readers = [_spawn(_READER, str(path), str(BATCH), str(n)) for n in range(READERS)]
    written = _finish(writer)
    reports = [_finish(r) for r in readers]

    final = BATCH * BATCHES
    assert written["batches"] == BATCHES
    seen_while_writing: set[int] = set()
    for report in reports:
        assert report["problems"] == []
        assert report["last"] == final  # each reader saw the finished table
        slowest = report["slowest"]
        assert isinstance(slowest, float) and slowest < 8.0  # inside the ~10 s read budget
        seen = report["seen"]
        assert isinstance(seen, list)
        seen_while_writing.update(n for n in seen if 0 < n < final)
    # Readers really ran while the writer was appending: they saw intermediate states.
    assert seen_while_writing
    result = LogStore(path).query("SecurityAlert | summarize n = count(), b = dcount(AlertName)")
    assert result.rows == ((final, BATCHES),)
    assert LogStore(path).max_seq("SecurityAlert") == BATCHES - 1


_ENDLESS_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from xdrsync.tables.logstore import LogStore

    store = LogStore(Path(sys.argv[1]))
    written = 0
    while True:
        store.append("SecurityAlert", [
            {"SystemAlertId": f"{written}-{i}", "AlertName": f"batch-{written}", "_Seq": written}
            for i in range(500)
        ])
        written += 1
    """
)


def test_a_writer_killed_mid_append_leaves_whole_batches_and_a_usable_store(
    tmp_path: Path,
) -> None:
    path = tmp_path / "logs.duckdb"
    LogStore(path).initialize()
    writer = subprocess.Popen(
        [sys.executable, "-c", _ENDLESS_WRITER, str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = LogStore(path)
    try:
        deadline = time.monotonic() + 120
        while store.query("SecurityAlert | count").rows[0][0] < 1500:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        writer.kill()  # SIGKILL: no cleanup, possibly in the middle of a transaction
        writer.wait(timeout=30)
    rows, batches = store.query(
        "SecurityAlert | summarize n = count(), b = dcount(AlertName)"
    ).rows[0]
    assert rows == batches * 500
    assert store.max_seq("SecurityAlert") == batches - 1  # the feeder resumes after this one
    store.append("SecurityAlert", [{"SystemAlertId": "after-crash", "_Seq": batches}])
    assert store.query("SecurityAlert | count").rows == ((rows + 1,),)
