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


def test_tokenize_streams_whole_videos_in_groups_of_pictures(micro: Path, long_video: Path, tmp_path: Path,
                                                              monkeypatch, capsys) -> None:
    from magvit2.data.io import read_video
    from magvit2.data.tokens import TokenDataset
    from magvit2.data.transforms import to_tensor
    import magvit2.tokenizer.stream as stream

    count = Counter(monkeypatch)
    encode_chunk = stream._encode_chunk

    def counted_encode_chunk(tok, chunk, state):
        count._step(-chunk.shape[2])
        return encode_chunk(tok, chunk, state)

    monkeypatch.setattr(stream, "_encode_chunk", counted_encode_chunk)
    out = tmp_path / "tokens"
    assert main(["tokenize", "--whole-videos", "--data", str(long_video), "--resolution", "8", "--gop", "17",
                 "--model", str(micro), "-o", str(out)]) == 0
    assert "1 video(s) in groups of 17 frames" in capsys.readouterr().out
    assert count.read == LONG and count.most <= 32 + 17, count.most  # a read chunk and a group, never the video
    monkeypatch.undo()

    ds = TokenDataset(out)
    assert ds.layout == "gops" and ds.grid == (5, 2, 2) and len(ds) == LONG // 17 == ds.manifest["num_items"]
    assert sum(ds[i]["frames"] for i in range(len(ds))) == LONG and ds[0]["label"] == -1
    tok = VideoTokenizer.from_pretrained(micro).eval()
    frames = to_tensor(read_video(long_video, max_frames=34).frames).unsqueeze(0)
    with torch.no_grad():  # a group of pictures is one causal stream: its tokens are encode() of its frames
        for g in range(2):
            assert torch.equal(ds[g]["tokens"], tok.encode(frames[:, :, 17 * g:17 * (g + 1)])[0])


def test_tokenize_whole_videos_pads_the_last_group_resumes_and_refuses_bad_input(micro: Path, tmp_path: Path,
                                                                                 capsys) -> None:
    from magvit2.data.tokens import TokenDataset, shard_name
    from magvit2.data.transforms import to_tensor
    from magvit2.tokenizer.groups import pad_video

    folder = tmp_path / "videos"
    folder.mkdir()
    rng = np.random.default_rng(2)
    clips = {"a.mkv": rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8),
             "b.mkv": rng.integers(0, 256, (9, 8, 8, 3), dtype=np.uint8)}
    for name, frames in clips.items():
        writers.write_video(folder / name, frames, fps=25)
    out = tmp_path / "tokens"
    args = ["tokenize", "--whole-videos", "--data", str(folder), "--resolution", "8", "--gop", "11",
            "--model", str(micro), "-o", str(out)]
    assert main(args) == 0
    ds = TokenDataset(out)
    assert ds.grid == (4, 2, 2)  # 11 frames -> 1 + ceil(10 / 4) latent frames
    assert [ds[i]["frames"] for i in range(len(ds))] == [11, 11, 8, 9]
    tok = VideoTokenizer.from_pretrained(micro).eval()
    last = to_tensor(media_io.read_video(folder / "a.mkv").frames[22:]).unsqueeze(0)  # 8 frames
    with torch.no_grad():  # the short last group: its last frame repeated (to 11, then to the valid 13)
        assert torch.equal(ds[2]["tokens"], tok.encode(pad_video(last, 13, 1))[0])

    first = (out / shard_name(0)).read_bytes()
    (out / shard_name(1)).unlink()
    (out / shard_name(0)).write_bytes(first + b"")  # untouched content, to be skipped on resume
    mtime = (out / shard_name(0)).stat().st_mtime_ns
    assert main(args) == 0  # resumes: only the missing shard is written
    assert (out / shard_name(0)).stat().st_mtime_ns == mtime and len(TokenDataset(out)) == 4
    capsys.readouterr()

    for bad, expected in [(["--gop", "0"], "gop must be >= 1"), (["--resolution", "6"], "multiple of 4"),
                          (["--data", "digits"], "reads video files")]:
        argv = args + bad
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and expected in err and len(err.splitlines()) == 1, err
    assert main(["tokenize", "--data", "digits", "--gop", "9", "--model", str(micro), "-o", str(tmp_path / "x")]) == 2
    assert "--whole-videos only" in capsys.readouterr().err
