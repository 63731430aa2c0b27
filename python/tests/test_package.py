"""The package as shipped: its stubs match the compiled module, it type-checks under
--strict, and every example in docs/python.md and python/examples runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA_ROOT, MODELS_HOME

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / "python"


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env)


def test_the_stub_matches_the_compiled_module() -> None:
    out = run(sys.executable, "-m", "mypy.stubtest", "recheck._recheck", "--ignore-missing-stub")
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_package_and_its_tests_type_check_strictly() -> None:
    out = run(sys.executable, "-m", "mypy", "--strict", "recheck", cwd=PYTHON)
    assert out.returncode == 0, out.stdout + out.stderr


def blocks(page: Path) -> list[str]:
    """The ```python blocks of a Markdown page."""
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("page", ["docs/python.md", "README.md", "python/README.md"])
def test_every_python_example_in_the_docs_runs(page: str, tmp_path: Path, local: object) -> None:
    """Each page's blocks run in order in one interpreter, in a fresh home (its model
    cache the suite's), in a fresh folder that has the repository's evals/."""
    code = blocks(ROOT / page)
    if "eval_run(" in "\n".join(code) and not DATA_ROOT.is_dir():
        pytest.skip(f"{page} runs an experiment and {DATA_ROOT} is absent: the shared datasets are not here")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").symlink_to(MODELS_HOME / "models")
    (tmp_path / "evals").symlink_to(ROOT / "evals")  # the examples name evals/ as from the repository
    assert code, f"{page} has no python example"
    script = tmp_path / "examples.py"
    script.write_text("\n".join(code))
    env = {
        **os.environ,
        "RECHECK_HOME": str(tmp_path / "home"),
        "RECHECK_DATA_ROOT": str(DATA_ROOT),
    }
    out = run(sys.executable, script, cwd=tmp_path, env=env)
    assert out.returncode == 0, f"{page}:\n{out.stdout}\n{out.stderr}"


def test_the_ragas_frame_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    env = {**os.environ, "RECHECK_HOME": str(tmp_path / "home")}
    out = run(sys.executable, PYTHON / "examples" / "ragas_frame.py", "--model", "sim:seed=1", env=env)
    assert out.returncode == 0, out.stderr
    # The claim no context backs is not supported (the lexical judge finds no evidence).
    assert "faithfulness" in out.stdout and ("unsupported" in out.stdout or "unchecked" in out.stdout), out.stdout
