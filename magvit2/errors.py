"""The project's user-facing error types.

Anything raised as a :class:`UserError` is a problem with the user's input
(a bad file, a wrong option, an unreadable checkpoint): the command line
prints it as one line ``error: ...`` and exits with status 2. Every other
exception is a bug in magvit2 (or in a library below it) and is shown with
its traceback. ``magvit2 --debug`` shows the traceback for user errors too.

Each layer subclasses :class:`UserError` for its own failures
(``ConfigError``, ``CheckpointError``, ``MediaError``, ``CodecError``, ...).
They also subclass :class:`ValueError`, so ``except ValueError`` in user code
keeps working.
"""
from __future__ import annotations

__all__ = ["UserError"]


class UserError(ValueError):
    """A failure caused by the user's input, reported in one line without a traceback."""
