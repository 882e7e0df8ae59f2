"""The command line: each subcommand on tiny models and real clips, and its one-line errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from magvit2 import TokenizerConfig, VideoTokenizer
from magvit2.cli.main import main
from magvit2.data.packaged import packaged_split
from magvit2.generation.config import LMConfig
from magvit2.generation.pipeline import VideoGenerator, build_lm


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig.preset("tiny"))
    tok.save_pretrained(root / "tok")
    lm_cfg = LMConfig.preset("tiny").override(["grid=[2,8,8]", "num_classes=3"])
    VideoGenerator(build_lm(lm_cfg), tok).save_pretrained(root / "gen")
    return {"tok": root / "tok", "gen": root / "gen"}


@pytest.fixture(scope="module")
def clip() -> Path:
    return packaged_split("test", "videos")[0]  # carphone, QCIF


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_reconstruct_video_and_image(models, clip, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rec.mp4"
    assert main(["reconstruct", str(clip), "-o", str(out), "--model", str(models["tok"]), "--max-frames", "6",
                 "--size", "32"]) == 0
    assert out.is_file() and "PSNR" in capsys.readouterr().out
    from magvit2.data.io import read_video

    assert read_video(out).frames.shape[0] == 6  # 5 + 1 frames: two causal groups, trimmed back
    img = tmp_path / "img.png"
    from magvit2.data.writers import write_image

    write_image(img, (np.random.default_rng(0).random((30, 34, 3)) * 255).astype(np.uint8))
    assert main(["reconstruct", str(img), "-o", str(tmp_path / "img_rec.png"), "--model", str(models["tok"])]) == 0
    from magvit2.data.io import read_image

    assert read_image(tmp_path / "img_rec.png").shape == (30, 34, 3)  # odd sizes padded and cropped back


def test_reconstruct_errors_and_no_clobber(models, clip, tmp_path: Path, capsys) -> None:
    assert main(["reconstruct", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "x.mp4"),
                 "--model", str(models["tok"])]) == 2
    err = _err(capsys)
    assert err.startswith("error:") and "missing.mp4" in err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    keep = tmp_path / "keep.mp4"
    keep.write_bytes(b"precious")
    assert main(["reconstruct", str(bad), "-o", str(keep), "--model", str(models["tok"])]) == 2
    assert "error:" in _err(capsys)
    assert keep.read_bytes() == b"precious"  # nothing overwritten on failure
    assert main(["reconstruct", str(clip), "-o", str(keep), "--model", str(tmp_path)]) == 2
    assert "not a magvit2 model" in _err(capsys)
    assert keep.read_bytes() == b"precious"


def test_compress_decompress_round_trip(models, clip, tmp_path: Path, capsys) -> None:
    coded, npy = tmp_path / "c.mv2c", tmp_path / "c.npy"
    assert main(["compress", str(clip), "-o", str(coded), "--model", str(models["tok"]), "--max-frames", "5",
                 "--size", "32"]) == 0
    assert "bits/pixel" in capsys.readouterr().out
    assert main(["decompress", str(coded), "-o", str(npy), "--model", str(models["tok"])]) == 0
    frames = np.load(npy)
    assert frames.shape[0] == 5 and frames.dtype == np.uint8
    data = bytearray(coded.read_bytes())
    data[len(data) // 2] ^= 0x10
    coded.write_bytes(bytes(data))
    assert main(["decompress", str(coded), "-o", str(tmp_path / "d.npy"), "--model", str(models["tok"])]) == 2
    assert "error:" in _err(capsys) and not (tmp_path / "d.npy").exists()


def test_generate_and_predict(models, clip, tmp_path: Path) -> None:
    out = tmp_path / "g.gif"
    assert main(["generate", "--model", str(models["gen"]), "--class", "1", "--class", "2", "--num", "2",
                 "--steps", "3", "-o", str(out)]) == 0
    assert out.is_file()
    assert main(["generate", "--model", str(models["gen"]), "--class", "7", "-o", str(tmp_path / "x.gif")]) == 2
    p = tmp_path / "p.png"
    assert main(["predict", "--model", str(models["gen"]), "--video", str(clip), "--class", "0", "--steps", "2", "--context", "1",
                 "-o", str(p)]) == 0
    assert p.is_file()


def test_train_cli_and_bad_override(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    args = ["train", "tokenizer", "--config", "tiny", f"out_dir={run}", "steps=2", "batch_size=2",
            "data.num_samples=4", "data.resolution=16", "loss.perceptual_weight=0", "progress=false", "device=cpu"]
    assert main(args) == 0
    assert (run / "export" / "model.safetensors").is_file() and (run / "config.yaml").is_file()
    assert main(["train", "tokenizer", "--config", "tiny", "no_such_key=1"]) == 2
    assert "bad override" in _err(capsys)
    assert main(["train", "tokenizer", "--config", "nonexistent"]) == 2
    assert "neither a TokenizerTrainConfig preset" in _err(capsys)


def test_eval_recon(models, tmp_path: Path, capsys) -> None:
    out = tmp_path / "recon.json"
    assert main(["eval", "recon", "--model", str(models["tok"]), "--data", "synthetic", "--frames", "5",
                 "--resolution", "32", "--max-items", "4", "-o", str(out)]) == 0
    import json

    table = json.loads(out.read_text())
    assert {"psnr", "ssim", "lpips", "codebook_usage", "perplexity"} <= set(table)
    assert table["fvd"].startswith("unavailable")


def test_compress_with_lm_prior_is_lossless_on_tokens(models, clip, tmp_path: Path) -> None:
    """--prior lm codes the tokens under the masked LM; decoding gives exactly the uniform-prior frames."""
    from magvit2.data import MovingShapes, to_uint8, write_video

    src = tmp_path / "shapes.mkv"  # lossless, 5 frames of 32x32: one group on the LM's 2x8x8 grid
    write_video(src, to_uint8(MovingShapes(1, 5, 32, 0)[0]["video"]), fps=8)
    outs = {}
    for prior in ("uniform", "lm"):
        coded, npy = tmp_path / f"{prior}.mv2c", tmp_path / f"{prior}.npy"
        assert main(["compress", str(src), "-o", str(coded), "--lm", str(models["gen"]), "--prior", prior]) == 0
        assert main(["decompress", str(coded), "-o", str(npy), "--lm", str(models["gen"])]) == 0
        outs[prior] = np.load(npy)
    assert np.array_equal(outs["uniform"], outs["lm"])
    assert main(["compress", str(clip), "-o", str(tmp_path / "x.mv2c"), "--prior", "lm"]) == 2
