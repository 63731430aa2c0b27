# The native module's signatures. Values cross as JSON text (settings in, results out);
# the typed layer (recheck._api, recheck._types) is what users call.

from typing import final

__version__: str

@final
class NativeModel:
    def __new__(cls, spec: str, settings: str, home: str | None = None) -> NativeModel: ...
    @property
    def spec(self) -> str: ...
    def info(self) -> str: ...

@final
class NativeStore:
    def __new__(cls, home: str | None = None) -> NativeStore: ...
    @property
    def source(self) -> str: ...
    @property
    def home(self) -> str: ...
    def listing(
        self, items: bool = False, kind: str | None = None, since: str | None = None, until: str | None = None
    ) -> str: ...
    def run(self, id: str) -> str: ...
    def export(self, path: str, ids: list[str] = ...) -> str: ...
    def import_(self, path: str) -> str: ...
    def close(self) -> None: ...

@final
class Cancel:
    def __new__(cls) -> Cancel: ...
    def set(self) -> None: ...
    def is_set(self) -> bool: ...

def ask(
    question: str,
    model: NativeModel,
    settings: str,
    store: str | None = None,
    cancel: Cancel | None = None,
) -> str: ...
def verify(
    answer: str,
    question: str | None,
    contexts: list[tuple[str | None, str]],
    model: NativeModel,
    settings: str,
    store: str | None = None,
    cancel: Cancel | None = None,
) -> str: ...
def verify_many(
    records: list[str],
    model: NativeModel,
    settings: str,
    store: str | None = None,
    concurrency: int = 4,
    max_answer_chars: int = 20000,
    fields: list[str] = ...,
) -> str: ...
def index_build(
    dir: str,
    sources: list[str],
    id_field: str,
    title_field: str,
    text_field: str,
    max_chars: int | None = None,
    overlap: int | None = None,
    prune: bool = False,
    embed: bool = False,
    embedder: str | None = None,
) -> str: ...
def index_search(
    dir: str,
    query: str,
    k: int,
    mmr: float | None,
    max_per_doc: int | None,
    syntax: bool,
    retrieval: str | None = None,
    alpha: float | None = None,
    embedder: str | None = None,
) -> str: ...
def eval_run(
    spec: str,
    model: NativeModel,
    data_root: str,
    limit: int | None = None,
    concurrency: int = 4,
    store: str | None = None,
) -> str: ...
def eval_report(run: str, store: str | None = None) -> str: ...
