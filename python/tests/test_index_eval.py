"""Index build and search, verification against an index, and an experiment with its
report, from Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import recheck

from .conftest import MODELS_HOME, data

DOCS = [
    {"id": "uranus", "title": "Uranus", "text": "Uranus was discovered by William Herschel in 1781. It has 28 known moons."},
    {"id": "neptune", "title": "Neptune", "text": "Neptune was discovered in 1846 by Galle. It has 16 known moons."},
]


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS) + "not json\n")
    return path


def test_build_search_and_verify_against_an_index(home: Path, sim: recheck.Model, corpus: Path, tmp_path: Path) -> None:
    idx = recheck.Index.build(tmp_path / "idx", corpus)
    assert idx.report is not None and idx.report.added == 2 and len(idx.report.bad) == 1
    hits = idx.search("who discovered Uranus", k=1)
    assert [h.doc_id for h in hits] == ["uranus"] and hits[0].score > 0 and "Herschel" in hits[0].text
    again = recheck.Index.build(tmp_path / "idx", corpus)
    assert again.report is not None and again.report.unchanged == 2 and again.report.added == 0
    res = recheck.verify("Uranus was discovered by William Herschel in 1781.", index=idx.path, model=sim, judge="lexical")
    assert res.claims and res.claims[0].verdict == "supported"
    assert any(s.doc_id == "uranus" for s in res.sources)


def test_dense_and_hybrid_search_from_python(home: Path, sim: recheck.Model, corpus: Path, tmp_path: Path) -> None:
    # The embedder `cargo test` fetched into the suite's model cache, seen from this home.
    cached = MODELS_HOME / "models" / "all-MiniLM-L6-v2"
    if not (cached / "model.safetensors").exists():
        pytest.skip(f"the embedder is not in {cached} (cargo test fetches it)")
    (home / "models").mkdir(parents=True)
    (home / "models" / "all-MiniLM-L6-v2").symlink_to(cached)
    plain = recheck.Index.build(tmp_path / "idx", corpus)
    assert plain.report is not None and plain.report.embedder is None
    with pytest.raises(recheck.UsageError, match="no vectors"):
        plain.search("astronomer", retrieval="dense")
    idx = recheck.Index.build(tmp_path / "idx", corpus, embed=True)
    assert idx.report is not None and idx.report.passages_embedded == 2
    assert idx.report.embedder is not None and idx.report.embedder["dim"] == 384
    with pytest.raises(recheck.UsageError, match="has vectors"):
        recheck.Index.build(tmp_path / "idx", corpus)
    for mode in ("dense", "hybrid", None):
        hits = idx.search("the astronomer Herschel", k=1, retrieval=mode)
        assert [h.doc_id for h in hits] == ["uranus"], mode
    with pytest.raises(recheck.UsageError, match="alpha"):
        idx.search("x", retrieval="bm25", alpha=0.5)
    res = recheck.verify(
        "Uranus was discovered by William Herschel in 1781.", index=idx.path, model=sim, judge="lexical", retrieval="hybrid"
    )
    assert any(s.doc_id == "uranus" for s in res.sources)


def test_index_errors(tmp_path: Path, corpus: Path) -> None:
    with pytest.raises(recheck.CorpusError) as caught:
        recheck.Index(tmp_path / "none").search("x")
    assert caught.value.hint and "recheck index" in caught.value.hint
    idx = recheck.Index.build(tmp_path / "idx", corpus)
    with pytest.raises(recheck.UsageError, match="mmr takes"):
        idx.search("x", mmr=2.0)
    with pytest.raises(recheck.UsageError, match="at least one source"):
        recheck.Index.build(tmp_path / "idx")


def test_an_experiment_and_its_report(home: Path, sim: recheck.Model) -> None:
    root = data("snowball_hallucination").parent
    spec = Path(__file__).resolve().parents[2] / "evals" / "snowball.toml"
    run = recheck.eval_run(spec, model=sim, limit=6, data_root=root)
    # The first 6 items of each of the protocol's task files.
    assert run.items % 6 == 0 and run.ran == run.items and run.failed == 0
    report = run.report()
    assert report.run_id == run.run_id and report.n == run.items
    assert report.metrics and all(isinstance(m, recheck.Metric) for m in report.metrics.values())
    assert recheck.Store().run(run.run_id).info.kind == "eval"


def test_a_missing_data_root_is_an_eval_error_with_the_hint(home: Path, sim: recheck.Model, tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "evals" / "snowball.toml"
    with pytest.raises(recheck.EvalError) as caught:
        recheck.eval_run(spec, model=sim, limit=1, data_root=tmp_path / "nowhere")
    assert caught.value.hint and "RECHECK_DATA_ROOT" in caught.value.hint
