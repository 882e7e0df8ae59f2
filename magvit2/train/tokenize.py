"""Turn a dataset into token shards with a tokenizer (resumable, one shard set per rank).

Shard ``k`` holds items ``[k * shard_size, (k + 1) * shard_size)`` and is
written by rank ``k % world_size``; shards that already exist are skipped, so
an interrupted run continues where it stopped. Rank 0 writes the manifest
after all ranks finish.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset, Subset

from magvit2.data.tokens import MANIFEST, shard_name
from magvit2.errors import UserError
from magvit2.files import atomic_write, write_text_atomic
from magvit2.train import distributed as dist_utils

__all__ = ["tokenize_dataset"]


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
    mine = [k for k in range(num_shards) if k % world_size == rank and not (out / shard_name(k)).is_file()]
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=num_shards, initial=num_shards - len(mine) * world_size, desc="tokenize shards")
    grid = None
    for k in mine:
        idx = list(range(k * shard_size, min(n, (k + 1) * shard_size)))
        loader = DataLoader(Subset(dataset, idx), batch_size=batch_size, num_workers=num_workers)
        toks, labels = [], []
        for batch in loader:
            t = tokenizer.encode(batch["video"].to(device)).cpu()
            toks.append(t.to(torch.int32))
            labels.append(torch.as_tensor(batch["label"]).long())
        tokens = torch.cat(toks)
        grid = list(tokens.shape[1:])
        with atomic_write(out / shard_name(k)) as tmp:
            save_file({"tokens": tokens.contiguous(), "labels": torch.cat(labels)}, str(tmp))
        if bar is not None:
            bar.update(world_size)
    if bar is not None:
        bar.close()
    dist_utils.barrier()
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
