"""The CLI's error policy: the user's mistakes in one line (exit 2), our bugs with a traceback (exit 1)."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

import magvit2.cli
from magvit2.cli import main as cli_main
from magvit2.cli.main import build_parser, main
from magvit2.config.base import ConfigError


def _install(monkeypatch, run) -> None:
    """Make ``magvit2 fake`` the only subcommand, running ``run(args)``."""
    mod = types.ModuleType("magvit2.cli.fake")

    def add_parser(sub) -> None:
        p = sub.add_parser("fake")
        p.set_defaults(func=run)

    mod.add_parser = add_parser
    monkeypatch.setitem(__import__("sys").modules, "magvit2.cli.fake", mod)
    monkeypatch.setattr(cli_main, "COMMANDS", ("fake",))
    monkeypatch.delenv("MAGVIT2_DEBUG", raising=False)


def _bug(args) -> int:
    return [][1]  # IndexError: stands for a shape bug deep inside the library


def _user_error(args) -> int:
    try:
        int("seventeen")
    except ValueError as e:
        raise ConfigError("frames must be an integer, got 'seventeen'") from e
    return 0


def test_a_bug_shows_its_traceback_and_exits_1(monkeypatch, capsys) -> None:
    _install(monkeypatch, _bug)
    assert main(["fake"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "IndexError" in err and "_bug" in err
    assert "bug in magvit2" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("exc", [RuntimeError("shape mismatch inside torch"), ValueError("not ours to judge")])
def test_plain_runtime_and_value_errors_are_bugs(monkeypatch, capsys, exc) -> None:
    def run(args):
        raise exc

    _install(monkeypatch, run)
    assert main(["fake"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_user_error_is_one_line_and_exits_2(monkeypatch, capsys) -> None:
    _install(monkeypatch, _user_error)
    assert main(["fake"]) == 2
    err = capsys.readouterr().err
    assert err == "error: frames must be an integer, got 'seventeen'\n"


def test_a_missing_file_is_the_users_error(monkeypatch, capsys, tmp_path: Path) -> None:
    _install(monkeypatch, lambda args: open(tmp_path / "missing.mp4").read())
    assert main(["fake"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "missing.mp4" in err


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_and_its_cause(monkeypatch, capsys, how) -> None:
    _install(monkeypatch, _user_error)
    if how == "env":
        monkeypatch.setenv("MAGVIT2_DEBUG", "1")
    assert main(["--debug", "fake"] if how == "flag" else ["fake"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "invalid literal for int()" in err  # the cause is kept
    assert "direct cause" in err and "ConfigError" in err
    assert err.strip().splitlines()[-1] == "error: frames must be an integer, got 'seventeen'"


def test_a_subcommand_that_fails_to_import_breaks_the_parser(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import magvit2_no_such_dependency\n")
    monkeypatch.setattr(magvit2.cli, "__path__", [*magvit2.cli.__path__, str(tmp_path)])
    monkeypatch.setattr(cli_main, "COMMANDS", (*cli_main.COMMANDS, "broken"))
    with pytest.raises(ImportError, match="'broken' failed to import.*magvit2_no_such_dependency"):
        build_parser()


def test_a_missing_subcommand_module_breaks_the_parser(monkeypatch) -> None:
    monkeypatch.setattr(cli_main, "COMMANDS", (*cli_main.COMMANDS, "not_written_yet"))
    with pytest.raises(ImportError, match="'not_written_yet' failed to import"):
        build_parser()
