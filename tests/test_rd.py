"""Anchors (x264 / x265 / vvenc through FFmpeg) and the rate-distortion machinery."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from magvit2.eval.anchors import encode_anchor
from magvit2.eval.rd import RDPoint, bpp_at_metric, interpolate_at_bpp, rd_curve_anchor, run_rd


def _clip(t: int, h: int, w: int) -> np.ndarray:
    """A smooth moving pattern with some texture: compressible, but not trivially."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [(128 + 100 * np.sin(0.15 * (xx + 2 * i) + 0.1 * yy + np.arange(3)[:, None, None])).transpose(1, 2, 0)
              for i in range(t)]
    return np.clip(np.stack(frames) + rng.normal(0, 6, (t, h, w, 3)), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255**2 / mse)


@pytest.mark.parametrize("codec,preset", [("h264", "medium"), ("hevc", "medium"), ("vvc", "faster")])
def test_anchor_rate_falls_with_qp(codec: str, preset: str) -> None:
    frames = _clip(5, 64, 64)
    results = [encode_anchor(frames, codec, qp, preset=preset) for qp in (22, 37, 51)]
    for r in results:
        assert r.frames.shape == frames.shape and r.frames.dtype == np.uint8
        assert r.bits_per_pixel == pytest.approx(8 * r.num_bytes / (5 * 64 * 64))
    bpps = [r.bits_per_pixel for r in results]
    psnrs = [_psnr(frames, r.frames) for r in results]
    assert bpps[0] > bpps[1] > bpps[2] > 0
    assert psnrs[0] > psnrs[2] and psnrs[0] > 30  # decodable and faithful at low QP


def test_anchor_odd_size_and_bad_arguments() -> None:
    frames = _clip(3, 30, 42)
    r = encode_anchor(frames, "hevc", 30)
    assert r.frames.shape == frames.shape and _psnr(frames, r.frames) > 28
    assert r.bits_per_pixel == pytest.approx(8 * r.num_bytes / (3 * 30 * 42))
    with pytest.raises(ValueError, match="codec"):
        encode_anchor(frames, "av2", 30)
    with pytest.raises(ValueError, match="qp"):
        encode_anchor(frames, "h264", 60)
    with pytest.raises(ValueError, match="uint8"):
        encode_anchor(frames.astype(np.float32), "h264", 30)


def _line(a: float, b: float, rates: list[float]) -> list[RDPoint]:
    return [RDPoint("toy", f"r{r}", r, psnr=a + b * math.log(r), lpips=0.5 - 0.1 * math.log(r)) for r in rates]


def test_interpolation_is_exact_on_a_log_linear_curve() -> None:
    pts = _line(30.0, 4.0, [0.8, 0.02, 0.1, 0.3])  # unsorted on purpose
    for bpp in (0.02, 0.05, 0.1, 0.17, 0.8):
        assert interpolate_at_bpp(pts, bpp, "psnr") == pytest.approx(30.0 + 4.0 * math.log(bpp), abs=1e-9)
        assert interpolate_at_bpp(pts, bpp, "lpips") == pytest.approx(0.5 - 0.1 * math.log(bpp), abs=1e-9)
        value = 30.0 + 4.0 * math.log(bpp)
        assert bpp_at_metric(pts, value, "psnr") == pytest.approx(bpp, rel=1e-9)
        assert bpp_at_metric(pts, 0.5 - 0.1 * math.log(bpp), "lpips") == pytest.approx(bpp, rel=1e-9)
    assert math.isnan(interpolate_at_bpp(pts, 0.01, "psnr")) and math.isnan(interpolate_at_bpp(pts, 1.0, "psnr"))
    assert math.isnan(bpp_at_metric(pts, 100.0, "psnr")) and math.isnan(bpp_at_metric(pts, 0.0, "psnr"))
    assert math.isnan(interpolate_at_bpp(pts, 0.1, "ms_ssim"))  # not measured
    with pytest.raises(ValueError, match="metric"):
        interpolate_at_bpp(pts, 0.1, "vmaf")


def test_rd_curve_anchor_and_run_rd(tmp_path) -> None:
    import magvit2.tokenizer as vt  # our own package: an import error must fail the test, not skip it
    frames = _clip(5, 32, 32)
    curve = rd_curve_anchor(frames, "hevc", (27, 42), use_lpips=False)
    assert [p.setting for p in curve] == ["qp=27", "qp=42"] and curve[0].bpp > curve[1].bpp
    assert curve[0].psnr == pytest.approx(_psnr(frames, encode_anchor(frames, "hevc", 27).frames), abs=0.05)
    assert 0 < curve[1].ms_ssim <= curve[0].ms_ssim <= 1

    torch.manual_seed(0)
    tok = vt.VideoTokenizer(vt.TokenizerConfig.preset("tiny")).eval()
    report = run_rd({"clip": frames}, tok, tmp_path, codecs=("hevc", "h264"), qps={"hevc": (27, 51), "h264": (27, 51)},
                    use_lpips=False)
    rows = list(csv.DictReader(report.csv_path.open()))
    assert [r["codec"] for r in rows] == ["magvit2", "hevc", "hevc", "h264", "h264"]
    ours = report.points[0]
    # tiny tokenizer: 2x8x8 tokens of 8 bits + header, uniform prior
    assert ours.bpp == pytest.approx(8 * ours.num_bytes / (5 * 32 * 32)) and ours.num_bytes > 2 * 8 * 8
    assert report.plot_path.stat().st_size > 1000 and report.plot_path.read_bytes()[:4] == b"\x89PNG"
    text = report.summary_path.read_text()
    assert "magvit2 bpp" in text and "hevc @ same bpp" in text and "MS-SSIM uses" in text
    expected = interpolate_at_bpp([p for p in report.points if p.codec == "hevc"], ours.bpp, "psnr")
    assert (f"{expected:.3f}" if math.isfinite(expected) else "n/a") in text
