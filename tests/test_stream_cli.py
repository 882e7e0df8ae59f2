"""Streaming end to end on the command line: `magvit2 info`, a 1,700-frame video through reconstruct and the
codec with bounded memory (a counting reader and writer), and a video cut short."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import magvit2.data.io as media_io
import magvit2.data.writers as writers
from magvit2.cli.main import main
from magvit2.cli.reconstruct import CHUNK_FRAMES
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.data.io import video_info
from magvit2.tokenizer import VideoTokenizer
from magvit2.tokenizer.stream import temporal_receptive_field

LONG = 1700


def test_info_prints_the_receptive_field(capsys) -> None:
    assert main(["info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    rf = temporal_receptive_field(TokenizerConfig.preset("tiny"))
    assert f"{rf.encoder} input frames per latent frame" in out and "longer than the trained clips (17)" in out
    assert main(["info", "--preset", "nope"]) == 2
    assert "unknown TokenizerConfig preset" in capsys.readouterr().err


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> Path:
    """A test-sized tokenizer (8x8 frames -> 2x2 tokens) saved as a model directory."""
    torch.manual_seed(0)
    cfg = TokenizerConfig(base_channels=4, channel_multipliers=(1, 1, 1), num_res_blocks=1,
                          temporal_downsample=(True, True), num_groups=2, bits=4, group_frames=17)
    return VideoTokenizer(cfg).save_pretrained(tmp_path_factory.mktemp("micro") / "tok")


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long.mkv"
    rng = np.random.default_rng(0)
    writers.write_video(path, (rng.integers(0, 256, (100, 8, 8, 3), dtype=np.uint8) for _ in range(LONG // 100)),
                        fps=25)
    return path


class Counter:
    """Frames read from media files minus frames written to videos, and the largest difference seen."""

    def __init__(self, monkeypatch) -> None:
        self.read = self.written = self.most = 0
        stream_media, write_video = media_io.stream_media, writers.write_video

        def counted_stream(*args, **kwargs):
            media = stream_media(*args, **kwargs)
            return media._replace(chunks=self._count(media.chunks, +1))

        def counted_write(path, frames, *args, **kwargs):
            chunks = [frames] if isinstance(frames, np.ndarray) else frames
            return write_video(path, self._count(chunks, -1), *args, **kwargs)

        monkeypatch.setattr(media_io, "stream_media", counted_stream)
        monkeypatch.setattr(writers, "write_video", counted_write)

    def _count(self, chunks, sign: int):
        for c in chunks:
            if sign > 0:
                self.read += len(c)
            else:
                self.written += len(c)
            self.most = max(self.most, self.read - self.written)
            yield c


def test_reconstruct_streams_a_long_video(micro: Path, long_video: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    count = Counter(monkeypatch)
    out = tmp_path / "rec.mkv"
    assert main(["reconstruct", str(long_video), "-o", str(out), "--model", str(micro), "--gop", "0"]) == 0
    assert f"{LONG} frame(s) 8x8" in capsys.readouterr().out
    assert video_info(out).num_frames == LONG == count.read == count.written
    assert count.most <= 3 * CHUNK_FRAMES, count.most  # a chunk or two in flight, never the video


def test_a_video_cut_short_is_one_line_and_keeps_the_old_output(micro: Path, tmp_path: Path, capsys) -> None:
    clip = tmp_path / "clip.mp4"
    writers.write_video(clip, np.random.default_rng(1).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8), fps=25)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    keep = tmp_path / "keep.mkv"
    keep.write_bytes(b"old")
    assert main(["reconstruct", str(cut), "-o", str(keep), "--model", str(micro)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "cut.mp4" in err and len(err.splitlines()) == 1
    assert keep.read_bytes() == b"old"
