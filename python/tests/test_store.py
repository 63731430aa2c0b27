"""The store from Python: one handle per home per process, shared by every call; reads
through a snapshot or the `recheck serve` holding the store when another process does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import recheck

URANUS = "Uranus was discovered in 1781."


def test_calls_and_stores_share_one_handle_per_home(home: Path, sim: recheck.Model, tmp_path: Path) -> None:
    store = recheck.Store()
    assert store.source == "store" and store.home == home
    out = recheck.verify(URANUS, contexts=[URANUS], model=sim, judge="lexical")
    # Both opened the same sled store in this process: no "in use" refusal, same runs.
    assert [r.id for r in recheck.Store().runs()] == [out.trace_id]
    other = tmp_path / "other"
    elsewhere = recheck.verify(URANUS, contexts=[URANUS], model=sim, judge="lexical", store=other)
    assert [r.id for r in recheck.Store(other).runs()] == [elsewhere.trace_id]
    assert out.trace_id not in {r.id for r in recheck.Store(other).runs()}
    recheck.Store(other).close()


def test_runs_are_selected_by_kind_and_time(home: Path, sim: recheck.Model) -> None:
    out = recheck.verify(URANUS, contexts=[URANUS], model=sim, judge="lexical")
    asked = recheck.ask("Is 7 prime?", model=sim)
    store = recheck.Store()
    assert [r.id for r in store.runs(kind="verify")] == [out.trace_id]
    assert [r.id for r in store.runs(kind="ask")] == [asked.trace_id]
    started = store.run(asked.trace_id).info.started_at
    assert {r.id for r in store.runs(since="2000-01-01")} == {out.trace_id, asked.trace_id}
    assert [r.id for r in store.runs(since=started)] == [asked.trace_id]
    assert store.runs(until="2000-01-01T00:00:00+02:00") == []
    with pytest.raises(recheck.UsageError, match="since must be a date"):
        store.runs(since="last week")


def test_export_import_and_close(home: Path, sim: recheck.Model, tmp_path: Path) -> None:
    outs = [recheck.verify(f"{URANUS} {i}", contexts=[URANUS], model=sim, judge="lexical") for i in range(3)]
    counts = recheck.Store().export(tmp_path / "runs.jsonl")
    assert counts["runs"] == 3, counts
    merged = recheck.Store(tmp_path / "merged")
    assert merged.import_(tmp_path / "runs.jsonl")["runs"] == 3
    assert merged.import_(tmp_path / "runs.jsonl")["runs"] == 0, "runs already present are skipped"
    assert {r.id for r in merged.runs()} == {o.trace_id for o in outs}
    merged.close()
    # Closed: another process can open that store now.
    code = "import recheck, sys; print(len(recheck.Store(sys.argv[1]).runs()))"
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "merged")], capture_output=True, text=True)
    assert child.returncode == 0 and child.stdout.strip() == "3", child.stderr


def test_a_store_held_by_another_process_is_read_from_a_snapshot(home: Path, sim: recheck.Model) -> None:
    out = recheck.verify(URANUS, contexts=[URANUS], model=sim, judge="lexical")
    recheck.Store().close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import recheck, sys; s = recheck.Store(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        store = recheck.Store()
        assert store.source == "snapshot"
        assert store.run(out.trace_id).info.kind == "verify"
        with pytest.raises(recheck.StoreInUse) as caught:
            store.import_(home / "nothing.jsonl")
        assert caught.value.hint and "another --home" in caught.value.hint
        with pytest.raises(recheck.StoreInUse):
            recheck.verify(URANUS, contexts=[URANUS], model=sim, judge="lexical")
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_store_held_by_recheck_serve_is_read_through_it(home: Path, sim: recheck.Model, cli: Path) -> None:
    out = recheck.verify(URANUS, contexts=[URANUS], model=sim, judge="lexical")
    recheck.Store().close()
    env = {**os.environ, "RECHECK_HOME": str(home)}
    server = subprocess.Popen(
        [cli, "serve", "--model", "sim:seed=1", "--listen", "127.0.0.1:0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        deadline = time.monotonic() + 30
        while not (home / "serve.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        store = recheck.Store()
        assert store.source == "server", url
        run = store.run(out.trace_id)
        assert run.info.kind == "verify" and run.steps, "steps come through the server"
        assert out.trace_id in {r.id for r in store.runs()}
        with pytest.raises(recheck.StoreInUse):
            store.import_(home / "nothing.jsonl")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_frames(home: Path, sim: recheck.Model) -> None:
    pytest.importorskip("pandas")
    recheck.verify(f"{URANUS} It has 40 moons.", contexts=[URANUS], model=sim, judge="lexical")
    runs = recheck.Store().runs_frame()
    claims = recheck.Store().claims_frame(kind="verify")
    assert list(runs["kind"]) == ["verify"]
    assert len(claims) >= 2 and set(claims["verdict"]) >= {"supported"}
