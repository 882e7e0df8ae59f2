"""Streaming end to end on the command line: `magvit2 info`, a 1,700-frame video through reconstruct and the
codec with bounded memory (a counting reader and writer), and a video cut short."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

import magvit2.data.io as media_io
import magvit2.data.writers as writers
from magvit2.cli.main import main
from magvit2.cli.reconstruct import CHUNK_FRAMES
from magvit2.codec import read_header
from magvit2.codec.compress import READ_CHUNK_FRAMES

codec_compress = importlib.import_module("magvit2.codec.compress")  # the package exports a function of that name
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
    """Frames in flight: read from media files or decoded by the tokenizer, minus frames written to videos or
    encoded by the tokenizer; ``most`` is the largest count seen."""

    def __init__(self, monkeypatch) -> None:
        self.now = self.most = self.read = self.written = 0
        stream_media, write_video = media_io.stream_media, writers.write_video
        encode, decode = VideoTokenizer.encode, VideoTokenizer.decode

        def counted_stream(*args, **kwargs):
            media = stream_media(*args, **kwargs)
            return media._replace(chunks=self._count(media.chunks, "read"))

        def counted_write(path, frames, *args, **kwargs):
            chunks = [frames] if isinstance(frames, np.ndarray) else frames
            return write_video(path, self._count(chunks, "written"), *args, **kwargs)

        def counted_encode(tok, video):
            self._step(-video.shape[2])
            return encode(tok, video)

        def counted_decode(tok, tokens):
            out = decode(tok, tokens)
            self._step(out.shape[2])
            return out

        for module in (media_io, codec_compress):  # the codec binds the reader and writer at import
            monkeypatch.setattr(module, "stream_media", counted_stream)
        for module in (writers, codec_compress):
            monkeypatch.setattr(module, "write_video", counted_write)
        monkeypatch.setattr(VideoTokenizer, "encode", counted_encode)
        monkeypatch.setattr(VideoTokenizer, "decode", counted_decode)

    def _step(self, n: int) -> None:
        self.now += n
        self.most = max(self.most, self.now)

    def _count(self, chunks, what: str):
        for c in chunks:
            setattr(self, what, getattr(self, what) + len(c))
            self._step(len(c) if what == "read" else -len(c))
            yield c


def test_reconstruct_streams_a_long_video(micro: Path, long_video: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    count = Counter(monkeypatch)
    out = tmp_path / "rec.mkv"
    assert main(["reconstruct", str(long_video), "-o", str(out), "--model", str(micro), "--gop", "0"]) == 0
    assert f"{LONG} frame(s) 8x8" in capsys.readouterr().out
    assert video_info(out).num_frames == LONG == count.read == count.written
    assert count.most <= 3 * CHUNK_FRAMES, count.most  # a chunk or two in flight, never the video


def test_codec_streams_a_long_video(micro: Path, long_video: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    count = Counter(monkeypatch)
    code, out = tmp_path / "long.mv2c", tmp_path / "back.mkv"
    assert main(["compress", str(long_video), "-o", str(code), "--model", str(micro), "--gop", "33"]) == 0
    assert count.read == LONG and count.most <= 33 + READ_CHUNK_FRAMES, count.most  # one GOP and a chunk
    header = read_header(code.read_bytes())
    assert [g.frames for g in header.groups] == [33] * (LONG // 33) + [LONG % 33]  # the container records the GOPs
    most_reading = count.most
    count.most = count.now = 0
    assert main(["decompress", str(code), "-o", str(out), "--model", str(micro)]) == 0
    assert f"{LONG} frame(s) 8x8" in capsys.readouterr().out
    assert video_info(out).num_frames == LONG == count.written and count.most <= 33 + 3, (most_reading, count.most)


def test_a_truncated_codec_file_is_refused_in_one_line(micro: Path, tmp_path: Path, capsys) -> None:
    frames = np.random.default_rng(2).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "in.npy", frames)
    code = tmp_path / "x.mv2c"
    assert main(["compress", str(tmp_path / "in.npy"), "-o", str(code), "--model", str(micro), "--gop", "9"]) == 0
    data = code.read_bytes()
    keep = tmp_path / "keep.mkv"
    keep.write_bytes(b"old")
    for cut in (len(data) - 1, len(data) // 2, 10):
        code.write_bytes(data[:cut])
        assert main(["decompress", str(code), "-o", str(keep), "--model", str(micro)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
        assert keep.read_bytes() == b"old"


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
