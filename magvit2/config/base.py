"""One config mechanism for every component: typed dataclasses, named presets,
YAML files and dot-path overrides (``model.bits=18``).

Every component config subclasses :class:`Config`. Presets are registered per
class with :meth:`Config.register_preset` and are plain functions returning a
config instance, so a preset can start from another and change a few fields.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

from omegaconf import OmegaConf

from magvit2.errors import UserError

__all__ = ["Config", "ConfigError"]

C = TypeVar("C", bound="Config")


class ConfigError(UserError):
    """A config value, key, file or preset is not what was expected."""


def _tuplify(cls: type, data: Any) -> Any:
    """Convert lists back to tuples (and nested dicts to dataclasses) following ``cls``'s type hints."""
    if dataclasses.is_dataclass(cls) and isinstance(data, dict):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} for {cls.__name__}; expected some of {sorted(names)}")
        return cls(**{k: _tuplify(hints[k], v) for k, v in data.items()})
    origin = typing.get_origin(cls)
    if origin is tuple and isinstance(data, (list, tuple)):
        args = typing.get_args(cls)
        inner = args[0] if args else Any
        return tuple(_tuplify(inner, v) for v in data)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(cls):
            if arg is type(None):
                continue
            if dataclasses.is_dataclass(arg) and isinstance(data, dict):
                return _tuplify(arg, data)
            if typing.get_origin(arg) is tuple and isinstance(data, (list, tuple)):
                return _tuplify(arg, data)
    return data


@dataclasses.dataclass
class Config:
    """Base class: presets, dict/YAML/JSON round trips and dot-path overrides."""

    _presets: ClassVar[dict[str, Callable[[], Any]]]
    #: fields added after models were first saved, with the value that keeps the old behaviour: while a
    #: field holds it, :meth:`identity` leaves it out, so a model's identity (e.g. the fingerprint in
    #: codec files) does not change when the config class grows a field
    added_fields: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._presets = {}

    # ----- presets -------------------------------------------------------
    @classmethod
    def register_preset(cls, name: str) -> Callable[[Callable[[], C]], Callable[[], C]]:
        def deco(fn: Callable[[], C]) -> Callable[[], C]:
            cls._presets[name] = fn
            return fn

        return deco

    @classmethod
    def preset_names(cls) -> list[str]:
        return sorted(cls._presets)

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        if name not in cls._presets:
            raise ConfigError(f"unknown {cls.__name__} preset {name!r}; expected one of {cls.preset_names()}")
        cfg = cls._presets[name]()
        return dataclasses.replace(cfg, **overrides) if overrides else cfg

    # ----- dict / YAML / JSON ---------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if dataclasses.is_dataclass(v):
                return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            return v

        return conv(self)

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the :attr:`added_fields` that hold their old-behaviour value (recursively)."""
        out = {}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            v = getattr(self, f.name)
            if f.name in self.added_fields and v == self.added_fields[f.name]:
                continue
            out[f.name] = v.identity() if isinstance(v, Config) else Config.to_dict(v) if dataclasses.is_dataclass(v) else (
                list(v) if isinstance(v, tuple) else v)
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
        return _tuplify(cls, dict(data))

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = OmegaConf.to_yaml(OmegaConf.create(self.to_dict()))
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path} (expected a YAML file)")
        try:
            data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except Exception as e:  # noqa: BLE001 - parser errors vary
            raise ConfigError(f"{path}: not valid YAML ({e.__class__.__name__}: {e})") from e
        return cls.from_dict(data or {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    # ----- overrides ------------------------------------------------------
    def override(self: C, dotlist: list[str] | tuple[str, ...]) -> C:
        """Apply ``["a.b=1", "c=[1,2]"]`` overrides with type checking; returns a new config."""
        if not dotlist:
            return self
        base = OmegaConf.structured(type(self).from_dict(self.to_dict()))
        for item in dotlist:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected key=value")
        try:
            merged = OmegaConf.merge(base, OmegaConf.from_dotlist(list(dotlist)))
        except Exception as e:  # noqa: BLE001 - omegaconf raises several types
            msg = str(e).splitlines()[0]
            raise ConfigError(f"bad override {list(dotlist)}: {msg}") from e
        return type(self).from_dict(OmegaConf.to_container(merged, resolve=True))

    @classmethod
    def load(cls: type[C], source: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> C:
        """A preset name or a YAML path, then dot-path overrides."""
        src = str(source)
        if src in cls._presets:
            cfg = cls.preset(src)
        elif src.endswith((".yaml", ".yml")) or Path(src).exists():
            cfg = cls.from_yaml(src)
        else:
            raise ConfigError(f"{src!r} is neither a {cls.__name__} preset {cls.preset_names()} nor a YAML file")
        return cfg.override(list(overrides))
