"""The typed results recheck returns: frozen dataclasses built from the JSON the
``recheck`` command prints (``--json``), with ``to_dict()`` giving that JSON back."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, overload

from . import errors

#: An answer's verdict: ``True`` (every claim supported), ``False`` (a claim
#: contradicted) or ``"unknown"`` (none contradicted, not all supported).
Verified = Union[bool, Literal["unknown"]]


class _Result:
    """What every result has: ``to_dict()``, the JSON it was read from."""

    _raw: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object this was read from (as ``recheck ... --json`` prints it)."""
        return dict(self._raw)


def _raw() -> Any:
    return field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class _Passage(_Result):
    """A passage of a corpus document, with its exact character offsets."""

    doc_id: str
    passage_id: str
    title: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Source(_Passage):
    """A corpus passage an answer cites: ``[n]`` in ``cited_answer`` is ``sources[n-1]``."""

    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Source:
        return cls(d["doc_id"], d["passage_id"], d.get("title", ""), d.get("text", ""), d["start"], d["end"], d)


@dataclass(frozen=True)
class Evidence(_Result):
    """What decided a claim: an exact tool's result (``kind == "tool"``) or a passage
    (``kind == "passage"``, with its offsets and support score)."""

    kind: Literal["tool", "passage"]
    tool: str | None = None
    input: Any = None
    output: Any = None
    doc_id: str | None = None
    passage_id: str | None = None
    start: int | None = None
    end: int | None = None
    score: float | None = None
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Evidence:
        if d.get("type") == "tool" or "tool" in d:
            return cls("tool", tool=d.get("tool"), input=d.get("input"), output=d.get("output"), _raw=d)
        return cls(
            "passage",
            doc_id=d.get("doc_id"),
            passage_id=d.get("passage_id"),
            start=d.get("start"),
            end=d.get("end"),
            score=d.get("score"),
            _raw=d,
        )


@dataclass(frozen=True)
class Quote(_Result):
    """The words of a given context that decided a claim (``verify``)."""

    context: Any
    start: int
    end: int
    quote: str
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Quote:
        return cls(d.get("context"), d["start"], d["end"], d["quote"], d)


@dataclass(frozen=True)
class Claim(_Result):
    """One claim of an answer with its verdict (``supported``, ``contradicted``,
    ``unsupported`` or ``unchecked``), the evidence that decided it and what judged it."""

    text: str
    start: int
    end: int
    verdict: str
    evidence: tuple[Evidence, ...] = ()
    judge: str | None = None
    score: float | None = None
    kind: Mapping[str, Any] | None = None
    quotes: tuple[Quote, ...] = ()
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Claim:
        return cls(
            d.get("text", ""),
            d.get("start", 0),
            d.get("end", 0),
            d["verdict"],
            tuple(Evidence._of(e) for e in d.get("evidence", ())),
            d.get("judge"),
            d.get("score"),
            d.get("kind"),
            tuple(Quote._of(q) for q in d.get("quotes", ())),
            d,
        )


def _claims(d: Mapping[str, Any]) -> tuple[Claim, ...]:
    return tuple(Claim._of(c) for c in d.get("claims", ()))


def _sources(d: Mapping[str, Any]) -> tuple[Source, ...]:
    return tuple(Source._of(s) for s in d.get("sources", ()))


@dataclass(frozen=True)
class AskResult(_Result):
    """The outcome of :func:`recheck.ask`: the final answer, its verdict and claims, the
    cited answer and its sources, and the stored run (``trace_id``)."""

    answer: str
    verified: Verified
    cited_answer: str
    claims: tuple[Claim, ...]
    sources: tuple[Source, ...]
    support: Mapping[str, int]
    strategy: str
    stopped_by: str
    model_calls: int
    rounds: tuple[Mapping[str, Any], ...]
    #: best-of-n: every answer drawn, its verification and whether it was kept
    candidates: tuple[Mapping[str, Any], ...]
    model: Mapping[str, Any]
    trace_id: str
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> AskResult:
        return cls(
            d["answer"],
            d["verified"],
            d["cited_answer"],
            _claims(d),
            _sources(d),
            d.get("support", {}),
            d["strategy"],
            d["stopped_by"],
            d["model_calls"],
            tuple(d.get("rounds", ())),
            tuple(d.get("candidates", ())),
            d.get("model", {}),
            d["trace_id"],
            d,
        )


@dataclass(frozen=True)
class VerifyResult(_Result):
    """The outcome of verifying a given answer: its verdict, faithfulness (the share of
    its claims its contexts support; ``None`` when it has no claims), claims with the
    quotes that decided them, and the stored run."""

    id: str | None
    verified: Verified
    faithfulness: float | None
    claims: tuple[Claim, ...]
    cited_answer: str
    sources: tuple[Source, ...]
    support: Mapping[str, int]
    model_calls: int
    trace_id: str
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> VerifyResult:
        return cls(
            d.get("id"),
            d["verified"],
            d.get("faithfulness"),
            _claims(d),
            d.get("cited_answer", ""),
            _sources(d),
            d.get("support", {}),
            d.get("model_calls", 0),
            d["trace_id"],
            d,
        )


@dataclass(frozen=True)
class RecordError(_Result):
    """A record of :func:`recheck.verify_many` that could not be verified, in its place."""

    id: str | None
    index: int
    error: str
    error_class: str
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> RecordError:
        return cls(d.get("id"), d.get("index", -1), d["error"], d.get("error_class", "Error"), d)

    def exception(self) -> errors.Error:
        """The exception this record would have raised on its own."""
        cls = getattr(errors, self.error_class, errors.Error)
        return cls(self.error)


@dataclass(frozen=True)
class BatchResult(_Result, Sequence[Union[VerifyResult, RecordError]]):
    """The results of :func:`recheck.verify_many`, one per record in input order (a
    :class:`RecordError` where a record failed), with the batch run's summary (verified
    share and mean faithfulness with 95% intervals)."""

    batch_id: str
    rows: tuple[VerifyResult | RecordError, ...]
    summary: Mapping[str, Any]
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> BatchResult:
        rows = tuple(RecordError._of(r) if "error" in r else VerifyResult._of(r) for r in d["rows"])
        return cls(d["batch"], rows, d["summary"], d)

    @overload
    def __getitem__(self, i: int) -> VerifyResult | RecordError: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[VerifyResult | RecordError]: ...
    def __getitem__(self, i: int | slice) -> Any:
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[VerifyResult | RecordError]:
        return iter(self.rows)

    @property
    def errors(self) -> tuple[RecordError, ...]:
        """The records that failed."""
        return tuple(r for r in self.rows if isinstance(r, RecordError))


@dataclass(frozen=True)
class RunInfo(_Result):
    """A stored run as ``recheck traces list`` shows it."""

    id: str
    kind: str
    status: str
    started_at: str
    ended_at: str | None
    steps: int
    parent: str | None
    error: str | None
    input: Any
    output: Any
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, run: Mapping[str, Any], steps: int) -> RunInfo:
        return cls(
            run["id"],
            run["kind"],
            run["status"],
            run["started_at"],
            run.get("ended_at"),
            steps,
            run.get("parent"),
            run.get("error"),
            run.get("input"),
            run.get("output"),
            run,
        )


@dataclass(frozen=True)
class Step(_Result):
    """One recorded step of a run: a model call, a tool call, an event or a scoring."""

    index: int
    agent: str
    type: str
    latency_ms: int
    payload: Mapping[str, Any]
    error: str | None
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Step:
        payload = d.get("payload", {})
        return cls(d["index"], d["agent"], payload.get("type", ""), d.get("latency_ms", 0), payload, d.get("error"), d)


@dataclass(frozen=True)
class Run(_Result):
    """A stored run with all its steps (``recheck traces show``)."""

    info: RunInfo
    steps: tuple[Step, ...]
    _raw: Mapping[str, Any] = _raw()

    @property
    def id(self) -> str:
        """The run's id."""
        return self.info.id


@dataclass(frozen=True)
class Hit(_Passage):
    """One search result: a passage, its BM25 score and a highlighted snippet."""

    score: float
    snippet: str
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Hit:
        p = d.get("passage", d)  # a passage's fields, flattened into the hit
        return cls(p["doc_id"], p["passage_id"], p["title"], p["text"], p["start"], p["end"], d["score"], d["snippet"], d)


@dataclass(frozen=True)
class IndexReport(_Result):
    """What :meth:`recheck.Index.build` did (``recheck index --json``)."""

    documents_read: int
    added: int
    updated: int
    unchanged: int
    removed: int
    passages_written: int
    documents_total: int
    passages_total: int
    bad: tuple[Any, ...]
    pruned: bool
    passages_embedded: int = 0
    #: The embedder of the index's vectors (spec, model, digest, dim), if it has them.
    embedder: Mapping[str, Any] | None = None
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> IndexReport:
        return cls(
            d["documents_read"],
            d["added"],
            d["updated"],
            d["unchanged"],
            d["removed"],
            d["passages_written"],
            d["documents_total"],
            d["passages_total"],
            tuple(d["bad"]),
            d.get("pruned", False),
            d.get("passages_embedded", 0),
            d.get("embedder"),
            d,
        )


@dataclass(frozen=True)
class Metric(_Result):
    """A rate with its 95% interval, over ``n`` items; ``value`` is ``None`` with the
    reason in ``undefined`` when it cannot be computed."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    undefined: str | None
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Metric:
        return cls(d.get("value"), d.get("low"), d.get("high"), d.get("n", 0), d.get("undefined"), d)


@dataclass(frozen=True)
class Report(_Result):
    """An experiment's report, computed from its stored runs (``recheck eval report``):
    each metric with its interval, beside its controls and the published figures."""

    run_id: str
    protocol: str
    name: str
    model: str
    n: int
    metrics: Mapping[str, Metric]
    _raw: Mapping[str, Any] = _raw()

    @classmethod
    def _of(cls, d: Mapping[str, Any]) -> Report:
        metrics = {k: Metric._of(v) for k, v in d.get("metrics", {}).items() if isinstance(v, Mapping)}
        return cls(d["run_id"], str(d["protocol"]), d["name"], d["model"], d["n"], metrics, d)


def _step_rows(d: Mapping[str, Any]) -> tuple[Step, ...]:
    return tuple(Step._of(s) for s in d.get("steps", ()))


def _run(d: Mapping[str, Any]) -> Run:
    steps = _step_rows(d)
    return Run(RunInfo._of(d["run"], len(steps)), steps, d)


def _asdict(value: Any) -> Any:
    """A result (or a list of them) as plain data, for callers that want dicts."""
    if isinstance(value, _Result):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
