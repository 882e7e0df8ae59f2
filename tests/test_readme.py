"""The README's own examples run: the Python blocks of "What it does" and "Python API", and the
whole-loop shell block (train tokenizer -> tokenize -> train lm -> generate / predict) exactly as
written, at the toy sizes its variables allow."""
from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


PYTHON_BLOCKS = [(title, i, code) for title in ("What it does", "Python API")
                 for i, code in enumerate(_blocks(_section(title), "python"))]


@pytest.mark.parametrize("title,index,code", PYTHON_BLOCKS, ids=[f"{t}-{i}" for t, i, _ in PYTHON_BLOCKS])
def test_readme_python_block_runs(title: str, index: int, code: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md ({title}, block {index})", "exec"), {"__name__": "__readme__"})


def test_readme_has_the_python_api_blocks() -> None:
    assert len(_blocks(_section("Python API"), "python")) >= 2


@pytest.mark.slow
def test_readme_whole_loop_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    """bash expands the block as written (variables, quoting); every ``magvit2`` command it issues is then run
    in this process, in order (one interpreter instead of five: the same commands, a fraction of the time)."""
    from magvit2.cli.main import main

    (loop,) = [b for b in _blocks(_section("Command line"), "bash") if "STEPS=" in b]
    assert all(cmd in loop for cmd in ("train tokenizer", "tokenize", "train lm", "generate", "predict"))
    bin_dir, log = tmp_path / "bin", tmp_path / "commands"
    bin_dir.mkdir()
    shim = bin_dir / "magvit2"  # records each command line, NUL-separated, one command per line
    shim.write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" >> "{log}"\necho >> "{log}"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STEPS": "4", "ITEMS": "16"}
    run = subprocess.run(["bash", "-e", "-c", loop], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    commands = [line.split("\0")[:-1] for line in log.read_text().splitlines()]
    assert [c[:2] for c in commands] == [["train", "tokenizer"], ["tokenize", "--model"], ["train", "lm"],
                                         ["generate", "--model"], ["predict", "--model"]]
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        assert main(argv) == 0, argv
    assert (tmp_path / "digits.gif").stat().st_size > 0 and (tmp_path / "continued.gif").stat().st_size > 0
    manifest = json.loads((tmp_path / "runs/tokens/manifest.json").read_text())
    assert manifest["class_names"] == [str(k) for k in range(10)] and manifest["num_classes"] == 10
    lm = json.loads((tmp_path / "runs/lm/export/config.json").read_text())["config"]
    assert lm["grid"] == manifest["grid"] and lm["bits"] == manifest["bits"] and lm["num_classes"] == 10
