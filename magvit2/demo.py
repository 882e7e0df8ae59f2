"""The main job, end to end on the shipped models: ``magvit2 demo`` / ``make demo``.

1. Reconstructs and compresses a real held-out clip (the packaged ``carphone``
   clip) with the default tokenizer, and compares PSNR / LPIPS at the codec's
   bits per pixel against x265 (HEVC) swept over QP and interpolated to the same bpp.
2. Generates class-conditional moving digits and continues a real (held-out)
   moving-digits clip with the shipped generator.
3. Writes everything under ``outputs/demo/`` with a Markdown report that links it.

Without shipped models (a build that has not trained them yet) it falls back
to untrained tiny models and says so in the report.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["run_demo", "DemoResult"]


@dataclass
class DemoResult:
    out_dir: Path
    report: Path
    lines: list[str] = field(default_factory=list)


def _log(res: DemoResult, line: str) -> None:
    print(line, flush=True)
    res.lines.append(line)


def _tokenizer(res: DemoResult):
    from magvit2.models import load_tokenizer
    from magvit2.pretrained import default_model_dir
    from magvit2.tokenizer import TokenizerConfig, VideoTokenizer

    try:
        path = default_model_dir("tokenizer")
        return load_tokenizer(path), f"shipped `{path.name}`", path
    except FileNotFoundError:
        torch.manual_seed(0)
        _log(res, "WARNING: no shipped tokenizer in this build; using an UNTRAINED tiny tokenizer (results are noise).")
        return VideoTokenizer(TokenizerConfig.preset("tiny")).eval(), "untrained tiny (no shipped weights)", None


def _context_prior(tok, model_dir: Path | None):
    """The context prior fitted beside the tokenizer in ``model_dir``, or None (the untrained fallback, or a
    build without one)."""
    from magvit2.codec import PriorSource, load_prior

    if model_dir is None:
        return None
    try:
        return load_prior("context", PriorSource(tok, model_dir))
    except FileNotFoundError:
        return None


def _generator(res: DemoResult):
    from magvit2.models import load_generator
    from magvit2.pretrained import default_model_dir

    try:
        path = default_model_dir("digits-lm")
        return load_generator(path), f"shipped `{path.name}`"
    except FileNotFoundError:
        _log(res, "WARNING: no shipped digits generator in this build; skipping generation.")
        return None, "none"


def _reconstruction_and_codec(res: DemoResult, out: Path, size: int, frames_n: int) -> list[str]:
    from magvit2.codec import FILE_EXTENSION, CodecConfig, VideoCodec
    from magvit2.data.io import read_media
    from magvit2.data.packaged import packaged_split
    from magvit2.data.transforms import crop_to_multiple, resize_short_side, to_tensor, to_uint8
    from magvit2.data.writers import make_grid, write_image, write_video
    from magvit2.eval.metrics import lpips, psnr
    from magvit2.eval.rd import interpolate_at_bpp, rd_curve_anchor, plot_rd
    from magvit2.files import write_bytes_atomic

    tok, tok_name, tok_dir = _tokenizer(res)
    clip_path = packaged_split("test", "videos")[0]
    clip = read_media(clip_path, max_frames=frames_n)
    frames = to_uint8(crop_to_multiple(resize_short_side(to_tensor(clip.frames)[None], size), 8)[0])
    t, h8, w8 = frames.shape[:3]
    _log(res, f"clip: {clip_path.name} (held out from training), {t} frames at {w8}x{h8}; tokenizer: {tok_name}")

    t0 = time.perf_counter()
    config = CodecConfig(group_frames=tok.config.group_frames)
    codec = VideoCodec(tok, "uniform", config)
    enc = codec.encode(frames, clip.fps or 25.0)
    dec = codec.decode(enc.data)
    dt = time.perf_counter() - t0
    bitstream = f"carphone{FILE_EXTENSION}"
    write_bytes_atomic(out / bitstream, enc.data)
    real, ours = to_tensor(frames)[None], to_tensor(dec.frames)[None]
    m_psnr, m_lpips = float(psnr(real, ours).mean()), float(lpips(real, ours).mean())
    bpp = enc.stats.bits_per_pixel
    _log(res, f"magvit2: {enc.stats.num_bytes} bytes, {bpp:.4f} bpp, PSNR {m_psnr:.2f} dB, LPIPS {m_lpips:.4f} "
              f"({t / dt:.1f} frames/s encode+decode)")
    ours_rows = [f"| magvit2 (uniform prior) | {bpp:.4f} | {m_psnr:.2f} | {m_lpips:.4f} |"]
    context = _context_prior(tok, tok_dir)
    ctx_bpp = math.nan
    if context is not None:  # the same tokens, so the same pixels, coded with fewer bits
        cenc = VideoCodec(tok, context, config).encode(frames, clip.fps or 25.0)
        if not all(torch.equal(a, b) for a, b in zip(cenc.tokens, enc.tokens)):
            raise RuntimeError("the context prior changed the tokens; a prior may only change the bits")
        ctx_bpp = cenc.stats.bits_per_pixel
        _log(res, f"magvit2, context prior: {cenc.stats.num_bytes} bytes, {ctx_bpp:.4f} bpp "
                  f"({100 * (1 - cenc.stats.num_bytes / enc.stats.num_bytes):.1f}% fewer bytes, same tokens)")
        ours_rows.append(f"| magvit2 (context prior) | {ctx_bpp:.4f} | {m_psnr:.2f} | {m_lpips:.4f} |")

    points, anchor_rows, notes = [], [], []
    for codec, encoder in (("h264", "x264"), ("hevc", "x265")):
        pts = rd_curve_anchor(frames, codec, qps=(22, 27, 32, 37, 42, 47, 51), fps=clip.fps or 25.0,
                              use_ms_ssim=False, video="carphone")
        points += pts
        x_psnr, x_lpips = interpolate_at_bpp(pts, bpp, "psnr"), interpolate_at_bpp(pts, bpp, "lpips")
        lo = min(p.bpp for p in pts)
        _log(res, f"{encoder} medium at the same bpp: PSNR {x_psnr:.2f} dB, LPIPS {x_lpips:.4f}")
        anchor_rows.append(f"| {encoder} medium, interpolated to the same bpp | {bpp:.4f} | {x_psnr:.2f} | {x_lpips:.4f} |")
        if math.isnan(x_psnr):
            notes.append(f"{encoder} cannot reach {bpp:.4f} bpp on this clip; its lowest is {lo:.4f}.")
            _log(res, notes[-1])

    # Files: clips, side-by-side image, RD plot.
    write_video(out / "carphone_original.mp4", frames, fps=clip.fps or 25.0)
    write_video(out / "carphone_magvit2.mp4", dec.frames, fps=clip.fps or 25.0)
    side = np.concatenate([frames, dec.frames], axis=2)
    write_video(out / "carphone_side_by_side.gif", side, fps=clip.fps or 25.0)
    picks = [0, t // 2, t - 1]
    write_image(out / "carphone_comparison.png", make_grid([frames[i] for i in picks] + [dec.frames[i] for i in picks], nrow=3))
    from magvit2.eval.rd import RDPoint

    ours = [RDPoint("magvit2", "uniform", bpp, m_psnr, math.nan, m_lpips, enc.stats.num_bytes, dt, "carphone")]
    if context is not None:
        ours.append(RDPoint("magvit2 + context prior", "context", ctx_bpp, m_psnr, math.nan, m_lpips,
                            video="carphone"))
    plot_rd(points + ours, ["carphone"], ["psnr", "lpips"], out / "rd.png")
    return [
        "## Reconstruction and compression",
        f"Clip `{clip_path.name}` ({t} frames, {w8}x{h8}), held out from training. Tokenizer: {tok_name}.",
        "",
        "| codec | bits/pixel | PSNR (dB) | LPIPS |",
        "|---|---|---|---|",
        *ours_rows,
        *anchor_rows,
        "",
        *[f"{n}\n" for n in notes],
        "Top row original, bottom row magvit2 (first, middle, last frame):",
        "",
        "![comparison](carphone_comparison.png)",
        "",
        "Rate-distortion (x264 and x265 sweeps vs the magvit2 points): ![rd](rd.png)",
        "",
        "Clips: [original](carphone_original.mp4), [magvit2](carphone_magvit2.mp4), "
        f"[side by side](carphone_side_by_side.gif), bitstream [{bitstream}]({bitstream}).",
        "",
    ]


def _generation(res: DemoResult, out: Path, steps: int) -> list[str]:
    from magvit2.data import DataConfig, build_dataset
    from magvit2.data.writers import write_clips

    gen, name = _generator(res)
    if gen is None:
        return ["## Generation", "", "No shipped generator in this build.", ""]
    from magvit2.pretrained import default_model_dir
    from magvit2.pretrained.cards import read_card

    guidance = read_card(default_model_dir("digits-lm"))["generation"]["guidance"]  # the scale on the model card
    labels = list(range(gen.config.num_classes))
    t0 = time.perf_counter()
    videos = gen.generate(labels, steps=steps, seed=0, guidance_scale=guidance)
    _log(res, f"generated {len(labels)} class-conditional digit clips in {time.perf_counter() - t0:.1f} s ({name})")
    write_clips(out / "digits_generated.gif", videos, fps=6, nrow=len(labels))
    write_clips(out / "digits_generated.png", videos, fps=6, nrow=len(labels))
    size = gen.config.grid[1] * gen.tokenizer.config.spatial_factor
    data = build_dataset(DataConfig(source="digits", num_frames=gen.num_frames, resolution=size,
                                    digit_size=size // 2), train=False)
    real = torch.stack([data[i]["video"] for i in range(4)])
    pred = gen.predict(real, context_frames=5, steps=steps, seed=1)
    write_clips(out / "digits_continued.gif", torch.cat([real, pred]), fps=6, nrow=4)
    write_clips(out / "digits_continued.png", torch.cat([real, pred]), fps=6, nrow=4)
    _log(res, "continued 4 held-out moving-digit clips from their first 5 frames")
    return [
        "## Generation (moving digits)",
        f"Generator: {name}. One clip per class 0-9 (rows: classes, columns: frames), {steps} MaskGIT steps, "
        f"guidance {guidance:g}:",
        "",
        "![generated](digits_generated.png)",
        "",
        "Frame prediction from 5 real frames (first 4 rows real, last 4 continued):",
        "",
        "![continued](digits_continued.png)",
        "",
        "Animated: [generated](digits_generated.gif), [continued](digits_continued.gif).",
        "",
    ]


def run_demo(out_dir: str | Path = "outputs/demo", size: int = 64, frames: int = 17, steps: int = 12) -> DemoResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(out, out / "report.md")
    from tqdm import tqdm

    from magvit2.files import write_text_atomic

    md = ["# magvit2 demo", ""]
    with torch.no_grad(), tqdm(total=2, desc="demo", unit="stage") as bar:
        md += _reconstruction_and_codec(res, out, size, frames)
        bar.update(1)
        md += _generation(res, out, steps)
        bar.update(1)
    md += ["## Log", "", "```", *res.lines, "```", ""]
    write_text_atomic(res.report, "\n".join(md))
    print(f"report: {res.report}")
    return res
