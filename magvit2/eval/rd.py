"""Rate-distortion evaluation of the token codec against H.264 / HEVC / VVC anchors.

The magvit2 codec gives one rate point per (tokenizer, prior); each anchor is
swept over QP and its curve interpolated at the magvit2 rate, piecewise
linearly in log(bits per pixel) (the usual axis of RD plots and of the
Bjontegaard metric). No extrapolation: a rate outside an anchor's swept range
reports NaN, so sweep wider QPs instead of trusting a guess.

Rates are whole-file bits per pixel (``8 * bytes / (t * h * w)``); the magvit2
file includes its container header, the anchors count their elementary stream
without SEI. Distortion is measured on decoded uint8 frames: PSNR (mean of
per-frame PSNR), MS-SSIM (fewer than 5 scales on frames below 176 px, noted in
the summary) and LPIPS (VGG), from :mod:`magvit2.eval.metrics`.

Shapes: frames ``[t, h, w, c]`` uint8 with c = 3.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from magvit2.eval.anchors import ANCHOR_CODECS, encode_anchor
from magvit2.errors import UserError

__all__ = [
    "RDPoint",
    "RDReport",
    "DEFAULT_QPS",
    "frame_metrics",
    "rd_curve_anchor",
    "rd_point_magvit2",
    "interpolate_at_bpp",
    "bpp_at_metric",
    "run_rd",
    "plot_rd",
]

DEFAULT_QPS: dict[str, tuple[int, ...]] = {
    "h264": (22, 27, 32, 37, 42, 47, 51),
    "hevc": (22, 27, 32, 37, 42, 47, 51),
    "vvc": (22, 27, 32, 37, 42, 47, 52, 57, 63),
}
METRICS = ("psnr", "ms_ssim", "lpips")
_HIGHER_IS_BETTER = {"psnr": True, "ms_ssim": True, "lpips": False}


@dataclass(frozen=True)
class RDPoint:
    """One rate point; metrics that were not computed are NaN."""

    codec: str
    setting: str  #: "qp=32" for anchors, the prior kind for magvit2
    bpp: float
    psnr: float
    ms_ssim: float = math.nan
    lpips: float = math.nan
    num_bytes: int = 0
    seconds: float = 0.0  #: encode + decode wall time
    video: str = ""


@dataclass
class RDReport:
    """All points of a run and the files written."""

    points: list[RDPoint]
    csv_path: Path
    plot_path: Path
    summary_path: Path
    summary: str = field(repr=False, default="")


def _to_video(frames: np.ndarray) -> Any:
    from magvit2.data.transforms import to_tensor

    return to_tensor(frames)[None]  # [1, c, t, h, w]


def frame_metrics(reference: np.ndarray, decoded: np.ndarray, use_ms_ssim: bool = True,
                  use_lpips: bool = True) -> dict[str, float]:
    """PSNR (capped at 100 dB), MS-SSIM and LPIPS of decoded ``uint8 [t, h, w, 3]`` frames against the reference."""
    from magvit2.eval import metrics

    if reference.shape != decoded.shape:
        raise ValueError(f"reference and decoded frames differ in shape: {reference.shape} vs {decoded.shape}")
    real, fake = _to_video(reference), _to_video(decoded)
    out = {"psnr": float(metrics.psnr(real, fake, quantize=True, max_db=100.0)[0]), "ms_ssim": math.nan,
           "lpips": math.nan}
    if use_ms_ssim:
        out["ms_ssim"] = float(metrics.ms_ssim(real, fake, quantize=True, allow_fewer_scales=True)[0])
    if use_lpips:
        out["lpips"] = float(metrics.lpips(real, fake)[0])
    return out


def rd_curve_anchor(frames: np.ndarray, codec: str, qps: Sequence[int] | None = None, preset: str = "medium",
                    fps: float | Fraction = 30, use_ms_ssim: bool = True, use_lpips: bool = True,
                    video: str = "") -> list[RDPoint]:
    """Sweep ``codec`` over ``qps`` (default :data:`DEFAULT_QPS`); one :class:`RDPoint` per QP, in QP order."""
    points = []
    for qp in qps if qps is not None else DEFAULT_QPS[codec]:
        res = encode_anchor(frames, codec, qp, preset=preset, fps=fps)
        m = frame_metrics(frames, res.frames, use_ms_ssim, use_lpips)
        points.append(RDPoint(codec=codec, setting=f"qp={qp}", bpp=res.bits_per_pixel, num_bytes=res.num_bytes,
                              seconds=res.encode_seconds + res.decode_seconds, video=video, **m))
    return points


def rd_point_magvit2(frames: np.ndarray, tokenizer: Any, prior: Any = "uniform", prior_obj: Any = None,
                     codec_config: Any = None, fps: float | Fraction = 30, use_ms_ssim: bool = True,
                     use_lpips: bool = True, video: str = "") -> RDPoint:
    """Compress and decompress with the magvit2 codec; bpp of the whole file (header included)."""
    from magvit2.codec.compress import VideoCodec, resolve_prior

    start = time.perf_counter()
    codec = VideoCodec(tokenizer, resolve_prior(prior, prior_obj), codec_config)
    enc = codec.encode(frames, fps)
    dec = codec.decode(enc.data)
    seconds = time.perf_counter() - start
    m = frame_metrics(frames, dec.frames, use_ms_ssim, use_lpips)
    return RDPoint(codec="magvit2", setting=codec.prior.kind, bpp=enc.stats.bits_per_pixel,
                   num_bytes=enc.stats.num_bytes, seconds=seconds, video=video, **m)


def _curve(points: Sequence[RDPoint], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(log bpp, metric) sorted by rate, equal rates averaged, NaN metrics dropped."""
    if metric not in METRICS:
        raise UserError(f"metric must be one of {METRICS}, got {metric!r}")
    pairs: dict[float, list[float]] = {}
    for p in points:
        v = getattr(p, metric)
        if p.bpp > 0 and math.isfinite(v):
            pairs.setdefault(p.bpp, []).append(v)
    rates = sorted(pairs)
    return np.log(np.array(rates, dtype=np.float64)), np.array([np.mean(pairs[r]) for r in rates], dtype=np.float64)


def interpolate_at_bpp(points: Sequence[RDPoint], bpp: float, metric: str = "psnr") -> float:
    """``metric`` of the curve through ``points`` at rate ``bpp``, linear in log(bpp); NaN outside the swept range."""
    x, y = _curve(points, metric)
    if bpp <= 0 or len(x) == 0:
        return math.nan
    lx = math.log(bpp)
    if lx < x[0] - 1e-12 or lx > x[-1] + 1e-12:
        return math.nan
    return float(np.interp(lx, x, y))


def bpp_at_metric(points: Sequence[RDPoint], value: float, metric: str = "psnr") -> float:
    """Smallest rate at which the curve reaches ``value`` (first crossing, log-bpp interpolation); NaN if never."""
    x, y = _curve(points, metric)
    better = (lambda a: a >= value) if _HIGHER_IS_BETTER[metric] else (lambda a: a <= value)
    for i in range(len(x)):
        if better(y[i]):
            if i == 0:
                return float(math.exp(x[0])) if math.isclose(y[0], value) else math.nan
            # y crosses value between i-1 and i (linear in log bpp)
            frac = (value - y[i - 1]) / (y[i] - y[i - 1])
            return float(math.exp(x[i - 1] + frac * (x[i] - x[i - 1])))
    return math.nan


def _write_csv(points: Sequence[RDPoint], path: Path) -> None:
    from magvit2.files import atomic_write

    rows = [asdict(p) for p in points]
    with atomic_write(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_rd(points: Sequence[RDPoint], videos: Sequence[str], metrics: Sequence[str], path: Path) -> None:
    """Rate-distortion curves: one row per video, one column per metric, bits per pixel on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(len(videos), len(metrics), figsize=(4.2 * len(metrics), 3.4 * len(videos)), squeeze=False)
    for r, name in enumerate(videos):
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for codec in dict.fromkeys(p.codec for p in points):
                pts = sorted((p for p in points if p.video == name and p.codec == codec), key=lambda p: p.bpp)
                pts = [p for p in pts if math.isfinite(getattr(p, metric))]
                if not pts:
                    continue
                style = dict(marker="*", markersize=12, linestyle="none") if codec.startswith("magvit2") else dict(marker="o")
                ax.plot([p.bpp for p in pts], [getattr(p, metric) for p in pts], label=codec, **style)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("bits per pixel")
            ax.set_ylabel(metric.upper().replace("_", "-"))
            ax.set_title(name, fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    from magvit2.files import atomic_write

    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def _summary(points: Sequence[RDPoint], videos: Sequence[str], codecs: Sequence[str], metrics: Sequence[str],
             notes: Sequence[str]) -> str:
    lines = ["# Rate-distortion: magvit2 codec vs standard codecs", ""]
    lines += [f"- {n}" for n in notes] + [""]
    for metric in metrics:
        arrow = "higher" if _HIGHER_IS_BETTER[metric] else "lower"
        lines += [f"## {metric.upper().replace('_', '-')} at the magvit2 rate ({arrow} is better)", ""]
        head = ["video", "magvit2 bpp", "magvit2"] + [f"{c} @ same bpp" for c in codecs] \
            + [f"{c} bpp for same {metric}" for c in codecs]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in videos:
            ours = [p for p in points if p.video == name and p.codec == "magvit2"]
            for m in ours:
                row = [name, _fmt(m.bpp, 4), _fmt(getattr(m, metric))]
                curves = {c: [p for p in points if p.video == name and p.codec == c] for c in codecs}
                row += [_fmt(interpolate_at_bpp(curves[c], m.bpp, metric)) for c in codecs]
                row += [_fmt(bpp_at_metric(curves[c], getattr(m, metric), metric), 4) for c in codecs]
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["n/a: the magvit2 value lies outside the anchor's swept QP range (no extrapolation).", ""]
    return "\n".join(lines)


def run_rd(videos: Mapping[str, np.ndarray | str | Path] | Sequence[np.ndarray | str | Path], tokenizer: Any,
           out_dir: str | Path, prior: Any = "uniform", prior_obj: Any = None, codec_config: Any = None,
           codecs: Sequence[str] = ("hevc", "vvc", "h264"), qps: Mapping[str, Sequence[int]] | None = None,
           preset: str = "medium", use_ms_ssim: bool = True, use_lpips: bool = True,
           max_frames: int | None = None) -> RDReport:
    """Code every video with magvit2 and sweep the anchors; write ``rd.csv``, ``rd.png`` and ``rd.md`` to ``out_dir``.

    ``videos``: uint8 ``[t, h, w, 3]`` arrays or video paths, as a list or a ``{name: video}`` mapping.
    ``preset`` applies to every anchor (vvenc knows faster/fast/medium/slow/slower).
    """
    from magvit2.codec.io import check_frames
    from magvit2.data.io import fps_to_fraction, read_media

    for c in codecs:
        if c not in ANCHOR_CODECS:
            raise UserError(f"unknown anchor codec {c!r}; expected some of {ANCHOR_CODECS}")
    items = list(videos.items()) if isinstance(videos, Mapping) else [
        (Path(v).stem if isinstance(v, (str, Path)) else f"video{i}", v) for i, v in enumerate(videos)]
    if not items:
        raise UserError("run_rd needs at least one video")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    points: list[RDPoint] = []
    sizes = []
    for name, v in items:
        if isinstance(v, (str, Path)):
            clip = read_media(v, max_frames=max_frames)
            frames, fps = check_frames(clip.frames), fps_to_fraction(clip.fps or 30)
        else:
            frames, fps = check_frames(v)[:max_frames], Fraction(30)
        sizes.append(frames.shape)
        points.append(rd_point_magvit2(frames, tokenizer, prior, prior_obj, codec_config, fps, use_ms_ssim,
                                       use_lpips, video=name))
        for c in codecs:
            q = (qps or {}).get(c, DEFAULT_QPS[c])
            points += rd_curve_anchor(frames, c, q, preset, fps, use_ms_ssim, use_lpips, video=name)
    metrics = ["psnr"] + (["ms_ssim"] if use_ms_ssim else []) + (["lpips"] if use_lpips else [])
    notes = ["videos: " + ", ".join(f"{n} ({s[0]} frames, {s[2]}x{s[1]})" for (n, _), s in zip(items, sizes)),
             "bpp = 8 * file bytes / (frames * width * height); the magvit2 file includes its container header, "
             "anchors count their elementary stream without SEI.",
             f"anchors: constant QP, preset {preset!r}; QPs " + "; ".join(
                 f"{c}: {list((qps or {}).get(c, DEFAULT_QPS[c]))}" for c in codecs),
             "metric values of anchors are interpolated linearly in log(bpp) between swept QPs."]
    if use_ms_ssim:
        from magvit2.eval.metrics import MS_SSIM_BETAS, ms_ssim_scales

        scales = min(ms_ssim_scales(s[1], s[2]) for s in sizes)
        if scales < len(MS_SSIM_BETAS):
            notes.append(f"MS-SSIM uses {scales} of {len(MS_SSIM_BETAS)} scales (frames below 176 px): "
                         "not comparable with standard 5-scale MS-SSIM.")
    names = [n for n, _ in items]
    report = RDReport(points, out / "rd.csv", out / "rd.png", out / "rd.md")
    _write_csv(points, report.csv_path)
    plot_rd(points, names, metrics, report.plot_path)
    report.summary = _summary(points, names, codecs, metrics, notes)
    from magvit2.files import write_text_atomic

    write_text_atomic(report.summary_path, report.summary)
    return report
