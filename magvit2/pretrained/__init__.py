"""Models that ship with the package (trained with the project's own recipes, see ``recipes/``).

``default_model_dir(kind)`` is what every command uses when ``--model`` is omitted.
"""
from __future__ import annotations

from pathlib import Path
from magvit2.errors import UserError

__all__ = ["SHIPPED", "default_model_dir", "shipped_dir"]

_HERE = Path(__file__).resolve().parent

#: kind -> directory name of the shipped model
SHIPPED = {
    "tokenizer": "tokenizer-small",  # general image+video tokenizer
    "digits-tokenizer": "digits-lm/tokenizer",  # moving-digits tokenizer (bundled with its generator)
    "digits-lm": "digits-lm",  # class-conditional moving-digits masked LM
}


def shipped_dir(name: str) -> Path:
    return _HERE / name


def default_model_dir(kind: str = "tokenizer") -> Path:
    """The shipped model for ``kind``; a clear error when this build has none."""
    if kind not in SHIPPED:
        raise UserError(f"unknown model kind {kind!r}; expected one of {sorted(SHIPPED)}")
    path = shipped_dir(SHIPPED[kind])
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"no shipped {kind} model in this build ({SHIPPED[kind]}); pass --model DIR "
            f"(train one with `magvit2 train tokenizer --config configs/tokenizer/tiny.yaml`)"
        )
    return path
