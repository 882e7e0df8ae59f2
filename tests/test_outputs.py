"""Every output goes through one atomic writer: files get the permissions a plain ``open(path, "w")``
gives under the umask (not mkstemp's 0600), and a failed write leaves an existing file alone.
Codec files use the ``.mv2c`` extension; handed a real MPEG-2 stream, decompress says what it is."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from magvit2.cli.main import main
from magvit2.codec import FILE_EXTENSION, CodecError, compress_file, decompress, decompress_file
from magvit2.data.writers import write_clips, write_frames, write_image, write_video
from magvit2.files import atomic_write
from magvit2.tokenizer import TokenizerConfig, VideoTokenizer


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plain_mode(tmp: Path) -> int:
    ref = tmp / "plain.txt"
    with open(ref, "w") as f:
        f.write("x")
    return _mode(ref)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tok") / "tok"
    VideoTokenizer(TokenizerConfig.preset("tiny")).save_pretrained(path)
    return path


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_get_the_umask_permissions(umask, mask: int, tmp_path: Path, tok_dir: Path) -> None:
    umask(mask)
    plain = _plain_mode(tmp_path)
    assert plain == 0o666 & ~mask
    frames = np.random.default_rng(0).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    outs = [write_video(tmp_path / "a.mp4", frames, fps=8), write_video(tmp_path / "a.gif", frames, fps=8),
            write_video(tmp_path / "a.mkv", frames, fps=8), write_image(tmp_path / "a.png", frames[0]),
            write_frames(tmp_path / "a.npy", frames), write_clips(tmp_path / "c.png", torch.zeros(2, 3, 5, 8, 8), 8, 2)]
    np.save(tmp_path / "in.npy", frames)
    tok = VideoTokenizer.from_pretrained(tok_dir)
    compress_file(tmp_path / "in.npy", tmp_path / f"x{FILE_EXTENSION}", tok)
    decompress_file(tmp_path / f"x{FILE_EXTENSION}", tmp_path / "y.mkv", tok)
    outs += [tmp_path / f"x{FILE_EXTENSION}", tmp_path / "y.mkv"]
    assert main(["compress", str(tmp_path / "in.npy"), "-o", str(tmp_path / f"cli{FILE_EXTENSION}"),
                 "--model", str(tok_dir)]) == 0
    assert main(["reconstruct", str(tmp_path / "in.npy"), "-o", str(tmp_path / "rec.mp4"), "--model", str(tok_dir)]) == 0
    outs += [tmp_path / f"cli{FILE_EXTENSION}", tmp_path / "rec.mp4"]
    saved = tok.save_pretrained(tmp_path / "model")  # safetensors writes its own 0600 files
    outs += [saved / "model.safetensors", saved / "config.json"]
    assert main(["tokenize", "--whole-videos", "--data", str(tmp_path / "a.mkv"), "--resolution", "16",
                 "--model", str(tok_dir), "-o", str(tmp_path / "tokens")]) == 0
    outs += sorted((tmp_path / "tokens").iterdir())
    assert {p.name: _mode(p) for p in outs} == {p.name: plain for p in outs}
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary file left behind


def test_failed_write_keeps_the_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_decompress_names_an_mpeg2_stream(tmp_path: Path, tok_dir: Path, capsys) -> None:
    import imageio_ffmpeg

    m2v = tmp_path / "clip.m2v"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=32x32:rate=5",
                    "-frames:v", "3", "-c:v", "mpeg2video", "-f", "mpeg2video", str(m2v)], check=True)
    assert m2v.read_bytes()[:4] == b"\x00\x00\x01\xb3"  # an MPEG-2 sequence header
    tok = VideoTokenizer.from_pretrained(tok_dir)
    with pytest.raises(CodecError, match="MPEG-1/2 video elementary stream"):
        decompress(m2v.read_bytes(), tok)
    assert main(["decompress", str(m2v), "-o", str(tmp_path / "out.npy"), "--model", str(tok_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: this is an MPEG-1/2 video elementary stream")
    assert FILE_EXTENSION == ".mv2c" and not (tmp_path / "out.npy").exists()
