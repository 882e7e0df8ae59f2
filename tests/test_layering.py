"""Imports flow one way (STYLE.md): errors/files/config mechanism -> layers -> quantizers, data ->
tokenizer, generation -> losses -> codec, eval, train (and the applications built on them) -> cli, demo.
A module may import its own layer and the layers below it; this test fails on any import of a higher
layer, including imports inside functions."""
from __future__ import annotations

import ast
from pathlib import Path

import sys

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
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")[: len(module.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return [(line, name) for line, name in out if name == "magvit2" or name.startswith("magvit2.")]


def _modules() -> list[tuple[Path, str]]:
    mods = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        mods.append((path, ".".join(parts)))
    return mods


def violations(layers: dict[str, int] = LAYERS) -> list[str]:
    bad = []
    for path, module in _modules():
        rel = str(path.relative_to(PKG.parent))
        if rel in COMPAT_ALIASES:
            continue
        me = _part(module) if module != "magvit2" else "__init__"
        for line, name in _imports(path, module):
            other = _part(name) if name != "magvit2" else "__init__"
            if me not in layers or other not in layers:
                bad.append(f"{rel}:{line}: {name} (a package part without a layer: add it to LAYERS)")
            elif layers[other] > layers[me]:
                bad.append(f"{rel}:{line}: imports {name} (layer {layers[other]}) from layer {layers[me]}")
    return bad


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {p.stem for p in PKG.glob("*.py")} | {d.name for d in PKG.iterdir() if (d / "__init__.py").is_file()}
    assert parts <= set(LAYERS), f"add {sorted(parts - set(LAYERS))} to LAYERS"


def test_imports_flow_one_way() -> None:
    assert violations() == []


@pytest.mark.parametrize("low,high", [("data", "cli"), ("layers", "cli"), ("codec", "cli"), ("quantizers", "tokenizer")])
def test_the_check_catches_an_upward_import(low: str, high: str, tmp_path, monkeypatch) -> None:
    """A copy of the package with one upward import added (``low`` importing ``high``) fails the check."""
    import shutil

    copy = tmp_path / "magvit2"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__", "*.safetensors", "pretrained"))
    (copy / "pretrained").mkdir()
    (copy / "pretrained" / "__init__.py").write_text("")
    target = next(p for p in sorted((copy / low).glob("*.py")) if p.name != "__init__.py")
    target.write_text(target.read_text() + f"\n\ndef _bad():\n    import magvit2.{high}  # noqa\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", copy)
    assert violations() == [f"magvit2/{low}/{target.name}:{len(target.read_text().splitlines())}: imports "
                            f"magvit2.{high} (layer {LAYERS[high]}) from layer {LAYERS[low]}"]


def test_demo_uses_the_library_not_the_cli() -> None:
    demo = PKG / "demo.py"
    assert [name for _, name in _imports(demo, "magvit2.demo") if _part(name) == "cli"] == []
