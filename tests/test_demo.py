"""`make demo` on the shipped models: the report's compression table (both priors, both anchors), and its bitstream."""
from __future__ import annotations

import math
import re

import pytest
import torch

from magvit2.codec import VideoCodec
from magvit2.demo import run_demo
from magvit2.models import load_tokenizer


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return run_demo(tmp_path_factory.mktemp("demo"), steps=2)


def _rows(report: str) -> dict[str, list[float]]:
    rows = {}
    for line in report.splitlines():
        m = re.match(r"\| (magvit2 \(\w+ prior\)|x264|x265)[^|]* \| ([\d.]+) \| ([\d.na]+) \| ([\d.na]+) \|$", line)
        if m:
            rows[m.group(1)] = [float(m.group(i)) for i in (2, 3, 4)]
    return rows


def test_demo_compares_with_x264_and_x265_at_its_own_rate(demo) -> None:
    rows = _rows(demo.report.read_text())
    assert set(rows) == {"magvit2 (uniform prior)", "magvit2 (context prior)", "x264", "x265"}
    context = rows.pop("magvit2 (context prior)")
    bpp = rows["magvit2 (uniform prior)"][0]
    for name, (b, p, lp) in rows.items():
        assert b == bpp and math.isfinite(p) and 0 <= lp <= 1, (name, rows)
    # the context prior codes the same tokens (same pixels) in fewer bits
    assert context[1:] == rows["magvit2 (uniform prior)"][1:] and context[0] < 0.97 * bpp, context
    assert torch.is_grad_enabled()  # the demo does not switch autograd off for its caller


def test_demo_bitstream_decodes_to_the_reported_rate(demo) -> None:
    data = (demo.out_dir / "carphone.mv2c").read_bytes()
    dec = VideoCodec(load_tokenizer()).decode(data)
    t, h, w = dec.frames.shape[:3]
    assert round(len(data) * 8 / (t * h * w), 4) == _rows(demo.report.read_text())["magvit2 (uniform prior)"][0]
    assert (demo.out_dir / "rd.png").stat().st_size > 0 and (demo.out_dir / "digits_generated.png").is_file()
