"""The collector's tuning: young collections rare, the oldest generation swept when busy."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap

from xdrsync.collector import SWEEP_SHARE

# Garbage that only becomes garbage in the oldest generation, as a SQLAlchemy statement's
# web of references does: a cycle kept alive through two collections, then dropped. Then
# the process keeps busy for up to 3 s.
SCRIPT = textwrap.dedent(
    """
    import gc, sys, time, weakref
    from xdrsync import collector

    class Node:
        pass

    if sys.argv[1] == "thresholds only":
        gc.set_threshold(*collector.THRESHOLDS)
    else:
        collector.tune(sweep_seconds=0.2, sweep_cpu_seconds=0.2)
    if sys.argv[1] == "frozen":  # what start-up made: out of the sweeps from here
        import xdrsync.cli
        collector.freeze_startup()
        assert gc.get_freeze_count() > 10_000, gc.get_freeze_count()
    node = Node()
    node.self = node
    alive = weakref.ref(node)
    gc.collect(1)
    gc.collect(1)
    del node
    deadline = time.monotonic() + 3
    while alive() is not None and time.monotonic() < deadline:
        sum(range(10_000))  # busy: the sweeper waits for CPU used
    print("collected" if alive() is None else "kept")
    """
)


def _run(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_sweeper_collects_garbage_that_died_old() -> None:
    assert _run("tuned") == "collected"


def test_after_the_start_up_heap_is_frozen_the_sweeper_still_collects_new_garbage() -> None:
    assert _run("frozen") == "collected"


def test_without_the_sweeper_such_garbage_stays() -> None:
    # What the sweeper is for: with the thresholds alone it outlives the wait.
    assert _run("thresholds only") == "kept"


def test_an_idle_process_is_not_swept() -> None:
    script = textwrap.dedent(
        """
        import gc, time
        from xdrsync import collector

        collector.tune(sweep_seconds=0.1, sweep_cpu_seconds=0.2)
        time.sleep(1.0)
        print(gc.get_stats()[2]["collections"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "0", done.stderr


def test_sweeps_of_a_large_heap_are_spaced_to_their_cost() -> None:
    # A large heap of live containers: each full collection walks them all. Swept every
    # 0.05 s, the process would spend a large share of its time collecting; the sweeper
    # waits 1 / SWEEP_SHARE times as long as a sweep took before the next. Each gap is
    # compared with the sweep before it, on one clock, so a loaded machine (a slower sweep,
    # and so a longer wait) changes nothing of the rule.
    script = textwrap.dedent(
        """
        import gc, time
        from xdrsync import collector

        heap = [[] for _ in range(100_000)]
        spans = []

        def timing(phase, info):
            if info["generation"] == 2:
                if phase == "start":
                    spans.append([time.perf_counter(), None])
                else:
                    spans[-1][1] = time.perf_counter()

        gc.callbacks.append(timing)
        collector.tune(sweep_seconds=0.05, sweep_cpu_seconds=0.01)
        began = time.perf_counter()
        while len(spans) < 3 and time.perf_counter() - began < 30:
            sum(range(10_000))  # busy
        gc.callbacks.remove(timing)
        print(" ".join(f"{start}:{end}" for start, end in spans if end is not None))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    spans = [tuple(map(float, span.split(":"))) for span in done.stdout.split()]
    assert len(spans) >= 2, done.stdout  # it still sweeps, again and again
    for (start, end), (following, _) in itertools.pairwise(spans):
        assert following - end >= 0.9 * (end - start) / SWEEP_SHARE, done.stdout
