"""Model I/O, one on-disk format for every model: ``config.json`` (format tag + config) beside
``model.safetensors``. The models' ``save_pretrained`` / ``from_pretrained`` use these functions.

Every exported model (tokenizer, language models) uses these two functions, so
a model can be rebuilt from its directory alone. Writes are atomic per file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch
from safetensors.torch import load_file, save_file

from magvit2.errors import UserError
from magvit2.files import atomic_write

__all__ = ["CheckpointError", "save_pretrained", "load_pretrained", "load_state_strict", "build_for_state", "build_loaded",
           "CONFIG_NAME", "WEIGHTS_NAME"]

M = TypeVar("M", bound=torch.nn.Module)
#: tensors a model may hold beyond its weights file (non-persistent buffers) before its config counts as absurd
UNSAVED_BYTES_ALLOWED = 64 << 20
#: submodules a config may describe (the paper's video tokenizer has about 450)
MAX_MODULES = 4_096


class _TooManyModules(Exception):
    pass


class _SkipInit(torch.overrides.TorchFunctionMode):
    """Meta tensors hold no values: skip weight initialisation (on meta it would import torch._dynamo, seconds)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", None) == "torch.nn.init" or func in (torch.Tensor.normal_,
                                                                             torch.Tensor.uniform_):
            return args[0] if args else next(iter((kwargs or {}).values()))
        return func(*args, **(kwargs or {}))

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(UserError):
    """A path is not a loadable magvit2 model directory."""


def save_pretrained(path: str | Path, fmt: str, config: dict[str, Any], state: dict[str, torch.Tensor],
                    extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"format": fmt, "config": config, **(extra or {})}
    with atomic_write(path / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_write(path / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": fmt})
    return path


def load_pretrained(path: str | Path, fmt: str, map_location: str | torch.device = "cpu"
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Return ``(meta, state)``; ``meta["config"]`` is the config dict. Clear errors for anything else."""
    path = Path(path)
    cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not path.is_dir():
        raise CheckpointError(f"model directory not found: {path}")
    if not cfg_file.is_file() or not weights.is_file():
        raise CheckpointError(f"{path} is not a magvit2 model: expected {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        meta = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file} is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != fmt or not isinstance(meta.get("config"), dict):
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{cfg_file} does not describe a {fmt} checkpoint (found format {found!r})")
    try:
        state = load_file(str(weights), device=str(map_location))
    except Exception as e:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{weights} is not a readable safetensors file ({e.__class__.__name__})") from e
    return meta, state


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], where: Path | str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{where} does not match its config: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}")


def build_for_state(factory: Callable[[], M], state: Mapping[str, torch.Tensor], where: Path | str) -> M:
    """``factory()``, built for real only once the module it describes is known to match ``state``.

    A ``config.json`` is untrusted input: it can ask for layers of any width. So the factory first
    runs on the meta device (shapes only, no memory); a module whose state-dict names or shapes
    differ from the weights file's, or whose other tensors (non-persistent buffers) would take more
    than the file's size plus :data:`UNSAVED_BYTES_ALLOWED`, is refused with a one-line
    :class:`CheckpointError` before anything of its size is allocated. A config describing more than
    :data:`MAX_MODULES` submodules (absurd depths) is refused while the probe is being built.
    """
    count = [0]

    def budget(module: torch.nn.Module, name: str, submodule: torch.nn.Module | None) -> None:
        count[0] += 1
        if count[0] > MAX_MODULES:
            raise _TooManyModules

    hook = torch.nn.modules.module.register_module_module_registration_hook(budget)
    try:
        with torch.device("meta"), _SkipInit():
            probe = factory()
    except _TooManyModules:
        raise CheckpointError(f"{where}: its config describes more than {MAX_MODULES:,} modules") from None
    finally:
        hook.remove()
    expected = probe.state_dict()
    for name, t in expected.items():
        if name not in state:
            raise CheckpointError(f"{where}: its config describes a tensor {name!r} the weights file does not have")
        if tuple(t.shape) != tuple(state[name].shape):
            raise CheckpointError(f"{where}: its config describes {name!r} of shape {list(t.shape)}, the weights "
                                  f"file holds {list(state[name].shape)}")
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise CheckpointError(f"{where}: the weights file has tensors its config does not describe, "
                              f"e.g. {unexpected[0]!r}")
    size = sum(t.numel() * t.element_size() for t in [*probe.parameters(), *probe.buffers()])
    saved = sum(t.numel() * t.element_size() for t in state.values())
    if size > 2 * saved + UNSAVED_BYTES_ALLOWED:
        raise CheckpointError(f"{where}: its config describes {size:,} bytes of tensors for a weights file of "
                              f"{saved:,} bytes")
    return factory()


def build_loaded(factory: Callable[[], M], state: Mapping[str, torch.Tensor], where: Path | str) -> M:
    """:func:`build_for_state` (absurd sizes fail before allocating), then ``state`` loaded strictly."""
    module = build_for_state(factory, state, where)
    load_state_strict(module, dict(state), where)
    return module
