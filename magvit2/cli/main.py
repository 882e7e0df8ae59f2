"""``magvit2`` command line: thin subcommands over the library.

Every subcommand module exposes ``add_parser(subparsers)``, which registers a
parser whose ``func(args) -> int`` does the work. Expected failures (bad
input, missing files, wrong checkpoints) print one line ``error: ...`` and
exit with status 2; nothing is overwritten on failure.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

COMMANDS = ("reconstruct", "train", "tokenize", "generate", "predict", "compress", "evaluate", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="magvit2", description="MAGVIT-2 video tokenizer, token language models and codec.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"magvit2.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"magvit2.cli.{name}":
                continue  # subcommand not part of this build
            raise
        mod.add_parser(sub)
    return parser


def _expected_errors() -> tuple[type[BaseException], ...]:
    return (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError, RuntimeError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may follow options (argparse leaves them unparsed)
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _expected_errors() as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
