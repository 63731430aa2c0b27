"""`Index`: a corpus index as ``recheck index`` builds it, and its search."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import _recheck
from ._api import PathLike, _text
from ._types import Hit, IndexReport
from .errors import UsageError


class Index:
    """A corpus index (tantivy, BM25; with ``embed=True``, one vector a passage for
    dense and hybrid search) of passages with exact offsets, as ``recheck index``
    builds it; give its path as ``index=`` to :func:`ask` and :func:`verify`."""

    def __init__(self, path: PathLike, report: IndexReport | None = None) -> None:
        self.path = Path(path)
        #: What the last :meth:`build` did, if this index came from one.
        self.report = report

    @classmethod
    def build(
        cls,
        path: PathLike,
        *sources: PathLike,
        id_field: str = "id",
        title_field: str = "title",
        text_field: str = "text",
        max_chars: int | None = None,
        overlap: int | None = None,
        prune: bool = False,
        embed: bool = False,
        embedder: str | None = None,
    ) -> Index:
        """Build or update the index at ``path`` from ``sources``: JSONL files (one
        document a line, fields named by ``*_field``), directories of text files, or
        text files. Unchanged documents are kept; bad input is listed in
        ``report.bad`` and skipped (and then nothing is pruned). ``embed`` stores one
        vector a passage, made by ``embedder`` (``"local"``, all-MiniLM-L6-v2, unless
        the index already has vectors by another; ``"local:DIR"``, ``"openai:MODEL"``);
        an index with vectors must be updated with ``embed=True``."""
        if not sources:
            raise UsageError("Index.build needs at least one source")
        out = _recheck.index_build(
            os.fspath(path),
            [os.fspath(s) for s in sources],
            id_field,
            title_field,
            text_field,
            max_chars,
            overlap,
            prune,
            embed,
            embedder,
        )
        return cls(path, IndexReport._of(json.loads(out)))

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        mmr: float | None = None,
        max_per_doc: int | None = None,
        syntax: bool = False,
        retrieval: str | None = None,
        alpha: float | None = None,
        embedder: str | None = None,
    ) -> list[Hit]:
        """The ``k`` best passages for ``query`` (plain text; tantivy query syntax with
        ``syntax``), re-ranked by MMR with ``mmr`` = λ in [0, 1] if given. ``retrieval``
        is ``"bm25"``, ``"dense"`` or ``"hybrid"`` (default: hybrid where the index has
        vectors, bm25 where it has none); ``alpha`` is hybrid's weight of the dense score
        (0.6 unless given)."""
        out = _recheck.index_search(
            os.fspath(self.path), _text(query, "query"), k, mmr, max_per_doc, syntax, retrieval, alpha, embedder
        )
        return [Hit._of(h) for h in json.loads(out)]

    def __repr__(self) -> str:
        return f"Index({str(self.path)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Index, (str(self.path), self.report))
