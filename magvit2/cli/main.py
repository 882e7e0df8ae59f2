"""``magvit2`` command line: thin subcommands over the library.

Every subcommand module exposes ``add_parser(subparsers)``, which registers a
parser whose ``func(args) -> int`` does the work.

Errors are split by whose fault they are:

- the user's (:class:`magvit2.errors.UserError` and its subclasses, and a
  missing, existing or unreadable path): one line ``error: ...`` on stderr and
  exit status 2; nothing is overwritten on failure;
- anything else is a bug in magvit2 or below it: the traceback is shown and the
  exit status is 1.

``magvit2 --debug ...`` (or ``MAGVIT2_DEBUG=1``) also shows the traceback, with
its chain of causes, for the user's errors.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from magvit2.errors import UserError

__all__ = ["main", "build_parser", "USER_ERRORS", "EXIT_USER_ERROR", "EXIT_BUG"]

COMMANDS = ("reconstruct", "train", "tokenize", "generate", "predict", "compress", "evaluate", "demo", "convert", "llm", "info")

#: Exceptions that report a problem with the user's input rather than a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
EXIT_USER_ERROR = 2
EXIT_BUG = 1


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand; a subcommand module that fails to import raises ``ImportError``."""
    parser = argparse.ArgumentParser(prog="magvit2", description="MAGVIT-2 video tokenizer, token language models and codec.")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback for every error, user errors included (also: MAGVIT2_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"magvit2.cli.{name}")
        except Exception as e:  # a broken subcommand must not silently vanish from the CLI
            raise ImportError(f"magvit2 subcommand {name!r} failed to import: {type(e).__name__}: {e}") from e
        mod.add_parser(sub)
    return parser


def _debug_from_env() -> bool:
    return os.environ.get("MAGVIT2_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.strerror}: {e.filename}"  # FileNotFoundError & co.: say which path
    return text.splitlines()[0] if text else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may follow options (argparse leaves them unparsed)
        if not hasattr(args, "overrides") or any("=" not in e or e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    debug = args.debug or _debug_from_env()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as e:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:
        traceback.print_exc()
        print(f"error: internal error ({type(e).__name__}); this is a bug in magvit2, please report it "
              "with the traceback above", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
