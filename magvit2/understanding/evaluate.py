"""Evaluating a video classifier: accuracy, confusion matrix, throughput; CSV and PNG reports.

Shape letters: b batch, k classes.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from magvit2.understanding.model import ClipClassifier

__all__ = ["ClassificationReport", "predict_dataset", "confusion_matrix", "evaluate_classifier", "write_report"]


class ClassificationReport(NamedTuple):
    accuracy: float  #: fraction of clips classified right
    confusion: np.ndarray  #: [k, k] counts, row = true class, column = predicted class
    class_names: tuple[str, ...]
    num_items: int
    clips_per_s: float  #: inference throughput, pixels to prediction (tokenizer included)


def _collate(items: Sequence[dict[str, Any]], device: torch.device | str) -> dict[str, Any]:
    batch: dict[str, Any] = {"label": torch.tensor([int(it["label"]) for it in items], device=device)}
    for key in ("video", "tokens"):
        if key in items[0]:
            batch[key] = torch.stack([it[key] for it in items]).to(device)
    return batch


@torch.no_grad()
def predict_dataset(logits_fn: Callable[[dict[str, Any]], torch.Tensor], dataset: Dataset, batch_size: int = 64,
                    device: torch.device | str = "cpu", limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(predictions [N], labels [N])`` of the first ``limit`` items; ``logits_fn(batch) -> [b, k]``."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    preds, labels = [], []
    for start in range(0, n, batch_size):
        batch = _collate([dataset[i] for i in range(start, min(start + batch_size, n))], device)
        preds.append(logits_fn(batch).argmax(-1).cpu())
        labels.append(batch["label"].cpu())
    return torch.cat(preds), torch.cat(labels)


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """``[k, k]`` int64 counts; row = true class, column = predicted class."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]; "
                         "does the data have the classifier's classes?")
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes).numpy()


def evaluate_classifier(classifier: ClipClassifier, dataset: Dataset, batch_size: int = 32,
                        max_items: int | None = None, device: torch.device | str = "cpu") -> ClassificationReport:
    """Classify (up to ``max_items``) clips of ``dataset`` from their pixels; accuracy and confusion matrix."""
    classifier.to(device)
    n = len(dataset) if max_items is None else min(max_items, len(dataset))
    if n < 1:
        raise ValueError("no clips to evaluate")
    t0 = time.perf_counter()
    preds, labels = predict_dataset(lambda b: classifier.predict(b["video"]), dataset, batch_size, device, n)
    dt = max(time.perf_counter() - t0, 1e-9)
    k = classifier.config.num_classes
    conf = confusion_matrix(preds, labels, k)
    return ClassificationReport(float(np.trace(conf) / max(conf.sum(), 1)), conf, classifier.class_names, n, n / dt)


def write_report(report: ClassificationReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``confusion.csv`` (counts, with class names) and ``confusion.png`` (row-normalised) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(report.class_names)
    paths = {"csv": out / "confusion.csv", "png": out / "confusion.png"}
    tmp = paths["csv"].with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *names])
        for name, row in zip(names, report.confusion):
            w.writerow([name, *(int(x) for x in row)])
    tmp.replace(paths["csv"])
    rows = report.confusion / np.maximum(report.confusion.sum(axis=1, keepdims=True), 1)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.5 + 0.45 * k, 1.2 + 0.45 * k))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {100 * report.accuracy:.1f}% on {report.num_items} clips", fontsize=9)
    for i in range(k):
        for j in range(k):
            if report.confusion[i, j]:
                ax.text(j, i, int(report.confusion[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rows[i, j] > 0.5 else "black")
    fig.tight_layout()
    tmp = paths["png"].with_suffix(".png.tmp")
    fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    tmp.replace(paths["png"])
    return paths
