"""Imports flow one way (STYLE.md): errors/files/config mechanism -> layers -> quantizers, data ->
tokenizer, generation -> losses -> codec, eval, train (and the applications built on them) -> cli, demo.
A module may import its own layer and the layers below it; this test fails on any import of a higher
layer, including imports inside functions."""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "magvit2"

#: top-level part of the package -> layer
LAYERS = {
    "errors": 0, "files": 0, "config": 0,
    "layers": 1,
    "quantizers": 2, "data": 2,
    "tokenizer": 3, "generation": 3,
    "losses": 4,
    "codec": 5, "eval": 5, "train": 5, "understanding": 5, "llm": 5, "models": 5, "pretrained": 5,
    "cli": 6, "demo": 6, "__init__": 6, "__main__": 6,
}
#: old import paths kept as re-exports after a move (they import the new home, by design)
COMPAT_ALIASES = {"magvit2/config/tokenizer.py", "magvit2/config/serialization.py"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"  # "magvit2" itself: the package's __init__


def _imports(path: Path, module: str, source: str | None = None) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(source if source is not None else path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return [(line, name) for line, name in out if name == "magvit2" or name.startswith("magvit2.")]


@functools.lru_cache(maxsize=1)
def package_imports() -> tuple[tuple[str, str, tuple[tuple[int, str], ...]], ...]:
    """``(file, module, imports)`` for every module of the package (parsed once per session)."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        out.append((str(path.relative_to(PKG.parent)), module, tuple(_imports(path, module))))
    return tuple(out)


def violations(modules=None) -> list[str]:
    bad = []
    for rel, module, imports in modules if modules is not None else package_imports():
        if rel in COMPAT_ALIASES:
            continue
        me = _part(module)
        for line, name in imports:
            other = _part(name)
            if me not in LAYERS or other not in LAYERS:
                bad.append(f"{rel}:{line}: {name} (a package part without a layer: add it to LAYERS)")
            elif LAYERS[other] > LAYERS[me]:
                bad.append(f"{rel}:{line}: imports {name} (layer {LAYERS[other]}) from layer {LAYERS[me]}")
    return bad


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {p.stem for p in PKG.glob("*.py")} | {d.name for d in PKG.iterdir() if (d / "__init__.py").is_file()}
    assert parts <= set(LAYERS), f"add {sorted(parts - set(LAYERS))} to LAYERS"


def test_imports_flow_one_way() -> None:
    assert violations() == []


@pytest.mark.parametrize("low,high", [("data", "cli"), ("layers", "cli"), ("codec", "cli"), ("quantizers", "tokenizer")])
def test_the_check_catches_an_upward_import(low: str, high: str) -> None:
    """The package plus one module of ``low`` that imports ``high`` inside a function fails the check."""
    source = f"def late():\n    from magvit2.{high} import something\n"
    bad = (f"magvit2/{low}/_bad.py", f"magvit2.{low}._bad", tuple(_imports(PKG / low / "_bad.py", f"magvit2.{low}._bad", source)))
    assert violations(package_imports() + (bad,)) == [
        f"magvit2/{low}/_bad.py:2: imports magvit2.{high} (layer {LAYERS[high]}) from layer {LAYERS[low]}"]


def test_demo_uses_the_library_not_the_cli() -> None:
    demo = PKG / "demo.py"
    assert [name for _, name in _imports(demo, "magvit2.demo") if _part(name) == "cli"] == []
