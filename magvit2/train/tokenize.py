"""Turn a dataset into token shards with a tokenizer (resumable, one shard set per rank).

Two layouts: :func:`tokenize_dataset` writes fixed clips of a dataset (shard ``k`` = items
``[k * shard_size, (k + 1) * shard_size)``); :func:`tokenize_videos` writes whole videos of any length,
streamed (shard ``k`` = video ``k``, one item per group of pictures). The rest of this paragraph is
about the first.

Shard ``k`` holds items ``[k * shard_size, (k + 1) * shard_size)`` and is
written by rank ``k % world_size``; shards that already exist are skipped, so
an interrupted run continues where it stopped. Rank 0 writes the manifest
after all ranks finish.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset, Subset

from magvit2.data.tokens import MANIFEST, shard_name
from magvit2.errors import UserError
from magvit2.files import atomic_write, write_text_atomic
from magvit2.train import distributed as dist_utils

__all__ = ["tokenize_dataset", "tokenize_videos", "video_listing"]


@torch.no_grad()
def tokenize_dataset(tokenizer, dataset: Dataset, out_dir: str | Path, *, shard_size: int = 256,
                     batch_size: int = 16, num_workers: int = 0, rank: int = 0, world_size: int = 1,
                     device: torch.device | str = "cpu", progress: bool = True,
                     info: dict[str, Any] | None = None) -> Path:
    """Write ``shard_*.safetensors`` and ``manifest.json`` into ``out_dir``; returns ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    if n == 0:
        raise UserError("the dataset is empty; nothing to tokenize")
    num_shards = -(-n // shard_size)
    grid = None

    def shard(k: int) -> dict[str, torch.Tensor]:
        nonlocal grid
        idx = list(range(k * shard_size, min(n, (k + 1) * shard_size)))
        loader = DataLoader(Subset(dataset, idx), batch_size=batch_size, num_workers=num_workers)
        toks, labels = [], []
        for batch in loader:
            t = tokenizer.encode(batch["video"].to(device)).cpu()
            toks.append(t.to(torch.int32))
            labels.append(torch.as_tensor(batch["label"]).long())
        tokens = torch.cat(toks)
        grid = list(tokens.shape[1:])
        return {"tokens": tokens.contiguous(), "labels": torch.cat(labels)}

    _write_shards(out, num_shards, shard, rank, world_size, progress, "tokenize shards")
    if rank == 0:
        if grid is None:  # everything was already done: probe one item for the grid
            grid = list(tokenizer.encode(dataset[0]["video"][None].to(device)).shape[1:])
        labels_seen = None
        class_names = getattr(dataset, "class_names", None) or getattr(getattr(dataset, "listing", None), "class_names", None)
        manifest = {"num_items": n, "num_shards": num_shards, "shard_size": shard_size, "grid": grid,
                    "bits": tokenizer.config.token_bits, "class_names": list(class_names) if class_names else labels_seen,
                    "num_classes": len(class_names) if class_names else None,
                    **(info or {})}
        write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2))
    dist_utils.barrier()
    return out


def _write_shards(out: Path, num_shards: int, make: Callable[[int], dict[str, torch.Tensor]], rank: int,
                  world_size: int, progress: bool, desc: str) -> None:
    """Write this rank's missing shards ``k % world_size == rank`` (``make(k)``: its tensors), each atomically,
    then wait for every rank."""
    mine = [k for k in range(num_shards) if k % world_size == rank and not (out / shard_name(k)).is_file()]
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=num_shards, initial=num_shards - len(mine) * world_size, desc=desc)
    for k in mine:
        tensors = make(k)
        with atomic_write(out / shard_name(k)) as tmp:
            save_file(tensors, str(tmp))
        if bar is not None:
            bar.update(world_size)
    if bar is not None:
        bar.close()
    dist_utils.barrier()


def video_listing(cfg, train: bool = True):
    """The videos of a data config's source for :func:`tokenize_videos`: the in-package clips of the
    split for ``packaged``, else the video files of a folder, list file or single video."""
    from magvit2.data.config import BUILTIN_SOURCES
    from magvit2.data.packaged import packaged_listing
    from magvit2.data.sources import discover

    if cfg.source == "packaged":
        return packaged_listing("train" if train else "test", "videos")
    if cfg.source in BUILTIN_SOURCES:
        raise UserError(f"--whole-videos reads video files; {cfg.source!r} is a generated or image source "
                        "(expected a folder, list file, video file or 'packaged')")
    listing = discover(cfg.source, cfg.kind)
    videos = tuple(item for item in listing.items if not item.is_image)
    if not videos:
        raise UserError(f"no video files in {cfg.source} (--whole-videos tokenizes whole videos, not images)")
    return dataclasses.replace(listing, items=videos)


def _gop_frames(chunks: Iterator[torch.Tensor], gop: int, counts: list[int]) -> Iterator[torch.Tensor]:
    """The chunks of one group of pictures, its last frame repeated up to ``gop`` frames; once they are
    consumed, the number of real frames is appended to ``counts``."""
    seen, last = 0, None
    for c in chunks:
        seen, last = seen + c.shape[2], c[:, :, -1:]
        yield c
    if last is not None and seen < gop:
        yield last.expand(-1, -1, gop - seen, -1, -1)
    counts.append(seen)


@torch.no_grad()
def tokenize_videos(tokenizer, listing, out_dir: str | Path, *, gop: int, resolution: int,
                    chunk_frames: int = 32, max_frames: int | None = None, rank: int = 0, world_size: int = 1,
                    device: torch.device | str = "cpu", progress: bool = True,
                    info: dict[str, Any] | None = None) -> Path:
    """Whole videos of any length as token shards, read and encoded as streams (memory does not grow with
    a video's length).

    Each video is resized (short side) and centre-cropped to ``resolution`` x ``resolution`` and cut into
    groups of pictures (GOPs) of ``gop`` frames; a GOP is coded as one causal stream
    (:func:`~magvit2.tokenizer.stream.encode_stream`), so only its first frame is coded alone. Shard
    ``k`` holds video ``k`` of ``listing``: one item per GOP, ``tokens [t', h', w']`` with
    ``t' = 1 + ceil((gop - 1) / temporal_factor)``, its ``labels`` (the listing's, -1 without classes)
    and ``frames``, the GOP's real frame count (a video's last GOP is padded by repeating its last
    frame). Concatenating a shard's items along time gives the video's token stream with a keyframe
    every ``t'`` latent frames. Finished shards are skipped (resumable); under ``torchrun`` rank ``r``
    takes videos ``k % world_size == r``. Rank 0 writes the manifest (``"layout": "gops"``, ``"gop"``)
    and ``sources.txt`` (one path per line, shard order).
    """
    from magvit2.data.io import stream_media
    from magvit2.data.transforms import center_crop, resize_short_side, to_tensor
    from magvit2.tokenizer.stream import encode_stream, split_stream

    if gop < 1:
        raise UserError(f"gop must be >= 1 frame, got {gop}")
    if resolution < 1 or resolution % tokenizer.config.spatial_factor:
        raise UserError(f"resolution must be a positive multiple of {tokenizer.config.spatial_factor}, got {resolution}")
    if not tokenizer.config.causal:
        raise UserError('a tokenizer with norm_scope "clip" cannot code a stream; use fixed clips (without --whole-videos)')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = listing.items
    if not items:
        raise UserError("the source holds no video; nothing to tokenize")
    f = tokenizer.config.temporal_factor
    latent = 1 + -(-(gop - 1) // f)
    grid = [latent, resolution // tokenizer.config.spatial_factor, resolution // tokenizer.config.spatial_factor]

    def shard(k: int) -> dict[str, torch.Tensor]:
        media = stream_media(items[k].path, chunk_frames=chunk_frames, max_frames=max_frames)

        def frames() -> Iterator[torch.Tensor]:
            for chunk in media.chunks:
                video = resize_short_side(to_tensor(chunk).unsqueeze(0).to(device), resolution)
                yield center_crop(video, resolution, resolution)

        tokens, counts = [], []
        for segment in split_stream(frames(), gop):
            codes = encode_stream(tokenizer, _gop_frames(segment, gop, counts))
            tokens.append(torch.cat(list(codes), dim=1).cpu().to(torch.int32))
        return {"tokens": torch.cat(tokens).contiguous(), "labels": torch.full((len(tokens),), items[k].label),
                "frames": torch.tensor(counts, dtype=torch.int64)}

    _write_shards(out, len(items), shard, rank, world_size, progress, "tokenize videos")
    if rank == 0:
        class_names = list(listing.class_names) or None
        write_text_atomic(out / "sources.txt", "".join(f"{item.path}\n" for item in items))
        num_items = sum(_shard_items(out / shard_name(k)) for k in range(len(items)))
        manifest = {"layout": "gops", "gop": gop, "num_items": num_items, "num_shards": len(items),
                    "shard_size": None, "grid": grid, "bits": tokenizer.config.token_bits,
                    "class_names": class_names, "num_classes": len(class_names) if class_names else None,
                    **(info or {})}
        write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2))
    dist_utils.barrier()
    return out


def _shard_items(path: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.get_slice("tokens").get_shape()[0]
