"""recheck: verified, cited, replayable answers from language models.

The recheck library from Python: wrap any model in verify-and-revise loops
(:func:`ask`), verify answers you already have claim by claim against their contexts
(:func:`verify`, :func:`verify_many`), read and move stored runs (:class:`Store`),
search a corpus (:class:`Index`) and run the experiments (:func:`eval_run`). Every call
runs the same code as the ``recheck`` command, releases the GIL, and stores its run in
the same trace store.

    >>> import recheck
    >>> out = recheck.ask("Is 7411 a prime number?", model="local", strategy="critic")
    >>> out.verified, out.answer, out.trace_id
"""

from ._api import (
    AskSettings,
    EvalResult,
    Model,
    Store,
    VerifySettings,
    ask,
    ask_async,
    eval_run,
    verify,
    verify_async,
    verify_many,
)
from ._index import Index
from ._recheck import __version__
from ._types import (
    AskResult,
    BatchResult,
    Claim,
    Evidence,
    Hit,
    IndexReport,
    Metric,
    Quote,
    RecordError,
    Report,
    Run,
    RunInfo,
    Source,
    Step,
    Verified,
    VerifyResult,
)
from .errors import (
    Cancelled,
    CorpusError,
    Error,
    EvalError,
    ModelError,
    StoreDamaged,
    StoreError,
    StoreInUse,
    UnverifiableError,
    UsageError,
)

__all__ = [
    "AskResult",
    "AskSettings",
    "BatchResult",
    "Cancelled",
    "Claim",
    "CorpusError",
    "Error",
    "EvalError",
    "EvalResult",
    "Evidence",
    "Hit",
    "Index",
    "IndexReport",
    "Metric",
    "Model",
    "ModelError",
    "Quote",
    "RecordError",
    "Report",
    "Run",
    "RunInfo",
    "Source",
    "Step",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoreInUse",
    "UnverifiableError",
    "UsageError",
    "Verified",
    "VerifyResult",
    "VerifySettings",
    "__version__",
    "ask",
    "ask_async",
    "eval_run",
    "verify",
    "verify_async",
    "verify_many",
]
