"""ask, verify and verify_many from Python: typed results, the stored runs behind them,
errors with the command line's messages, the GIL released, asyncio, Ctrl-C, pickling."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import recheck
from recheck import UsageError

URANUS = "Uranus was discovered in 1781."


def test_ask_returns_a_typed_result_and_stores_its_run(home: Path, sim: recheck.Model) -> None:
    out = recheck.ask("Is 7411 a prime number?", model=sim, strategy="critic", rounds=2)
    assert isinstance(out, recheck.AskResult)
    assert out.verified in (True, False, "unknown")
    assert out.strategy == "critic" and out.answer and out.model_calls >= 1
    assert all(isinstance(c, recheck.Claim) for c in out.claims)
    # The primality claim is checked by the exact tool: its evidence names it.
    tools = {e.tool for c in out.claims for e in c.evidence if e.kind == "tool"}
    assert tools, out.claims
    run = recheck.Store().run(out.trace_id)
    assert run.info.kind == "ask" and run.info.status == "completed"
    assert len(run.steps) >= out.model_calls, "every model call is a stored step"
    assert out.to_dict()["trace_id"] == out.trace_id


def test_best_of_n_returns_every_candidate_and_keeps_one(home: Path) -> None:
    model = recheck.Model("sim:accuracy=0.3,seed=2")
    out = recheck.ask("What is 17 * 23?", model=model, strategy="best-of-n", candidates=4)
    assert out.strategy == "best-of-n" and len(out.candidates) == 4
    kept = [c for c in out.candidates if c["chosen"]]
    assert len(kept) == 1 and kept[0]["answer"] == out.answer
    assert out.stopped_by.startswith("best of 4")
    with pytest.raises(UsageError, match="candidates"):
        recheck.ask("What is 17 * 23?", model=model, strategy="best-of-n", candidates=0)


def test_verify_quotes_the_contexts_that_decide_claims(home: Path, sim: recheck.Model) -> None:
    res = recheck.verify(
        f"{URANUS} It has 40 moons.", question="Who found Uranus?", contexts=[URANUS], model=sim, judge="lexical"
    )
    assert isinstance(res, recheck.VerifyResult)
    verdicts = [c.verdict for c in res.claims]
    assert "supported" in verdicts and res.faithfulness is not None and 0 < res.faithfulness < 1, res
    supported = [c for c in res.claims if c.verdict == "supported"]
    assert supported[0].quotes and URANUS[:-1] in supported[0].quotes[0].quote
    assert recheck.Store().run(res.trace_id).info.kind == "verify"


def test_verify_many_keeps_input_order_and_errors_in_place(home: Path, sim: recheck.Model) -> None:
    records = [
        {"id": f"r{i}", "answer": f"{URANUS} It has {i} rings.", "contexts": [URANUS]} for i in range(6)
    ]
    records.insert(2, {"id": "bad", "contexts": [URANUS]})  # no answer: an error row
    out = recheck.verify_many(records, model=sim, judge="lexical", concurrency=3)
    assert [r.id for r in out] == ["r0", "r1", "bad", "r2", "r3", "r4", "r5"]
    assert isinstance(out[2], recheck.RecordError) and "answer" in out[2].error
    assert isinstance(out[2].exception(), UsageError)
    assert len(out.errors) == 1 and out.summary["records"] == 7 and out.summary["failed"] == 1
    assert all(r.faithfulness == 0.5 for r in out if isinstance(r, recheck.VerifyResult))
    batch = recheck.Store().run(out.batch_id)
    assert batch.info.kind == "verify-batch" and batch.info.status == "completed"
    assert batch.info.output["records"] == 7


def test_ragas_field_names_are_read(home: Path, sim: recheck.Model) -> None:
    rows = [{"user_input": "Who found Uranus?", "response": URANUS, "retrieved_contexts": [URANUS]}]
    out = recheck.verify_many(rows, model=sim, judge="lexical")
    assert isinstance(out[0], recheck.VerifyResult) and out[0].faithfulness == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "best"}, 'strategy must be single, self-refine, critic, ioe, wait, backtrack or best-of-n, got "best"'),
        ({"temperature": math.nan}, "temperature must be a number in [0, 2], got NaN"),
        ({"temperature": 3.0}, "temperature must be a number in [0, 2], got 3"),
        ({"rounds": -1}, "rounds must be a whole number"),
        ({"max_calls": 0}, "max_calls must be at least 1"),
        ({"judge": "oracle"}, 'judge must be model or lexical, got "oracle"'),
        ({"citation_scorer": "vibes"}, "citation_scorer must be lexical, contextcite or leave_one_out"),
    ],
)
def test_bad_settings_raise_usage_errors_and_store_nothing(
    home: Path, sim: recheck.Model, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError) as caught:
        recheck.ask("Is 7 prime?", model=sim, **kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert not (home / "traces").exists() or recheck.Store().runs() == []


def test_errors_match_the_command_line(home: Path, sim: recheck.Model, cli: Path, tmp_path: Path) -> None:
    """The same refusal, word for word, from Python and from `recheck ask`."""
    env = {**os.environ, "RECHECK_HOME": str(home)}
    shell = subprocess.run(
        [cli, "ask", "Is 7 prime?", "--model", "sim:seed=1", "--temperature-step", "NaN"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert shell.returncode == 2
    with pytest.raises(UsageError) as caught:
        recheck.ask("Is 7 prime?", model=sim, temperature_step=math.nan)
    # The CLI names the flag, Python the keyword; the problem is the same words.
    problem = str(caught.value).removeprefix("temperature_step ")
    assert f"error: --temperature-step {problem}" in shell.stderr, (shell.stderr, problem)

    missing = tmp_path / "no-index"
    shell = subprocess.run(
        [cli, "verify", "--answer", URANUS, "--index", str(missing), "--model", "sim:seed=1"],
        capture_output=True,
        text=True,
        env=env,
    )
    with pytest.raises(recheck.CorpusError) as caught:
        recheck.verify(URANUS, index=missing, model=sim)
    assert f"error: {caught.value}" in shell.stderr
    assert caught.value.hint and f"hint: {caught.value.hint}" in shell.stderr


def test_other_bad_arguments(home: Path, sim: recheck.Model, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="strategy is not a setting of verify"):
        recheck.verify(URANUS, model=sim, strategy="critic")  # type: ignore[call-arg]
    with pytest.raises(UsageError, match="question is empty"):
        recheck.ask("  ", model=sim)
    with pytest.raises(UsageError, match="context 0 must be"):
        recheck.verify(URANUS, contexts=[42], model=sim)  # type: ignore[list-item]
    with pytest.raises(UsageError, match="sim:nonsense"):
        recheck.Model("sim:nonsense")
    with pytest.raises(UsageError, match="timeout must be a number of seconds"):
        recheck.Model("sim:seed=1", timeout=-1)
    with pytest.raises(UsageError, match="calibration"):
        recheck.verify(URANUS, calibration=str(tmp_path / "missing.json"), model=sim)
    with pytest.raises(UsageError, match="concurrency must be 1 to 65536, got 0"):
        recheck.verify_many([{"answer": URANUS}], model=sim, concurrency=0)
    with pytest.raises(UsageError, match="concurrency must be 1 to 65536, got 0"):
        recheck.eval_run(tmp_path / "missing.toml", model=sim, concurrency=0)
    with pytest.raises(recheck.EvalError):
        recheck.eval_run(tmp_path / "missing.toml", model=sim)


def test_the_gil_is_released_while_recheck_works(home: Path) -> None:
    slow = recheck.Model("sim:seed=1,latency_ms=20")
    steps = 0
    done = threading.Event()

    def count() -> None:
        nonlocal steps
        while not done.is_set():
            steps += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        records = [{"answer": f"{URANUS} It has {i} rings.", "contexts": [URANUS]} for i in range(20)]
        started = time.monotonic()
        recheck.verify_many(records, model=slow, judge="lexical", concurrency=2)
        took = time.monotonic() - started
    finally:
        done.set()
        counter.join()
    # A held GIL would leave the counting thread a few switch intervals at most.
    assert took > 0.1 and steps > 10_000, (took, steps)


def test_many_asyncio_tasks_ask_at_once(home: Path, sim: recheck.Model) -> None:
    async def main() -> list[recheck.AskResult]:
        questions = [f"Is {n} a prime number?" for n in (7, 9, 11, 12, 13, 15, 7411, 7919)]
        return await asyncio.gather(*(recheck.ask_async(q, model=sim, strategy="critic") for q in questions))

    outs = asyncio.run(main())
    assert len({o.trace_id for o in outs}) == 8
    runs = {r.id: r for r in recheck.Store().runs(kind="ask")}
    assert all(runs[o.trace_id].status == "completed" for o in outs)

    async def one() -> recheck.VerifyResult:
        return await recheck.verify_async(URANUS, contexts=[URANUS], model=sim, judge="lexical")

    assert asyncio.run(one()).faithfulness == 1.0


def test_a_cancelled_async_call_stops_and_leaves_its_run(home: Path) -> None:
    slow = recheck.Model("sim:seed=1,latency_ms=300")

    async def main() -> None:
        task = asyncio.create_task(recheck.ask_async("Is 7411 a prime number?", model=slow, strategy="critic"))
        await asyncio.sleep(0.7)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    store = recheck.Store()
    (run,) = store.runs(kind="ask")
    time.sleep(1.0)  # three more calls' time, had it gone on
    (again,) = store.runs(kind="ask")
    assert run.status == again.status == "running" and run.steps == again.steps > 0, (run, again)
    assert asyncio.run(recheck.ask_async("Is 7 prime?", model=slow)).trace_id


def test_a_process_that_awaited_calls_exits_cleanly(home: Path) -> None:
    """A script that awaits the async twins, reads the store and returns exits 0
    (an asyncio result set from a runtime thread once raced with the interpreter's
    shutdown and crashed it, one exit in two)."""
    script = (
        "import asyncio, recheck\n"
        "m = recheck.Model('sim:seed=1,latency_ms=20')\n"
        "async def main():\n"
        "    t = asyncio.create_task(recheck.ask_async('Is 7411 a prime number?', model=m, strategy='critic'))\n"
        "    await asyncio.sleep(0.05)\n"
        "    t.cancel()\n"
        "    outs = await asyncio.gather(*(recheck.verify_async('a.', contexts=['a.'], model=m) for _ in range(4)))\n"
        "    return len(outs)\n"
        "print(asyncio.run(main()), len(recheck.Store().runs()))\n"
    )
    for _ in range(6):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
        assert out.returncode == 0, (out.returncode, out.stderr[-2000:])


def test_ctrl_c_stops_a_long_batch_and_leaves_the_store_usable(home: Path) -> None:
    slow = recheck.Model("sim:seed=1,latency_ms=5")
    records = ({"answer": f"{URANUS} It has {i} rings.", "contexts": [URANUS]} for i in range(100_000))
    # Late enough for records to finish (reading 100,000 records takes most of a second).
    timer = threading.Timer(2.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    # A shell starts background jobs with SIGINT ignored, and Python then keeps it
    # ignored: the test needs Python's own handler, as an interactive session has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        timer.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            recheck.verify_many(records, model=slow, judge="lexical", concurrency=4)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 30, "stopped soon after the signal"
    store = recheck.Store()
    batches = store.runs(kind="verify-batch")
    assert len(batches) == 1 and batches[0].status == "running", "cut off, resumable"
    finished = [r for r in store.runs(kind="verify", items=True) if r.status == "completed"]
    assert finished, "the records verified before the signal are stored"
    # Still writable from this process.
    assert recheck.verify(URANUS, contexts=[URANUS], model=slow, judge="lexical").faithfulness == 1.0


def test_results_models_stores_and_errors_survive_pickling(home: Path, sim: recheck.Model) -> None:
    out = recheck.verify(URANUS, contexts=[URANUS], model=sim, judge="lexical")
    assert pickle.loads(pickle.dumps(out)) == out
    model = pickle.loads(pickle.dumps(sim))
    assert model.spec == sim.spec and recheck.verify(URANUS, contexts=[URANUS], model=model, judge="lexical")
    store = pickle.loads(pickle.dumps(recheck.Store()))
    assert store.home == home and store.run(out.trace_id).id == out.trace_id
    try:
        recheck.ask("Is 7 prime?", model=sim, strategy="best")
    except UsageError as e:
        again = pickle.loads(pickle.dumps(e))
        assert type(again) is UsageError and str(again) == str(e) and again.hint == e.hint
