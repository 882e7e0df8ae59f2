"""Video understanding: the motion task needs several frames, token and pixel classifiers,
masked pre-training counts only masked positions, save/load, and the command line."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from magvit2.cli.main import main
from magvit2.tokenizer.config import TokenizerConfig
from magvit2.data.motion import MOTIONS, MotionDigits
from magvit2.generation.transformer import SubTokenEmbedding
from magvit2.quantizers.factorize import split_indices
from magvit2.tokenizer.model import VideoTokenizer
from magvit2.understanding import (
    ClassifierConfig,
    ClassifierTrainConfig,
    ClassifierTrainer,
    ClipCache,
    ClipClassifier,
    MaskedVideoModel,
    VideoClassifier,
    masked_pixel_loss,
    masked_token_loss,
    sample_mask,
)
from magvit2.understanding.trainer import load_frozen_tokenizer

SPEEDS = ("right-slow", "right-fast")  # two motion classes that differ only in speed: one frame cannot tell them


# ----- the task -----------------------------------------------------------------
def test_motion_digits_labels_and_determinism() -> None:
    ds = MotionDigits("train", num_samples=20, num_frames=5, resolution=32)
    assert ds.class_names == MOTIONS
    labels = [ds[i]["label"] for i in range(20)]
    assert labels == [i % 10 for i in range(20)] == [ds.label(i) for i in range(20)]
    assert torch.equal(ds[3]["video"], MotionDigits("train", num_samples=20, num_frames=5)[3]["video"])
    assert ds[0]["video"].shape == (3, 5, 32, 32)
    sub = MotionDigits("test", num_samples=4, motions=SPEEDS, target="digit")
    assert sub.class_names == tuple(str(k) for k in range(10)) and sub.motions == SPEEDS
    with pytest.raises(ValueError, match="subset"):
        MotionDigits(motions=("sideways",))


@pytest.fixture(scope="module")
def speed_clips() -> tuple[ClipCache, ClipCache]:
    """The two-speed task, tokenized once by the shipped digits tokenizer: 128 training, 96 held-out clips."""
    torch.set_num_threads(1)
    tok = load_frozen_tokenizer("", "cpu")
    train = ClipCache.build(MotionDigits("train", 128, 9, 32, motions=SPEEDS), tok)
    test = ClipCache.build(MotionDigits("test", 96, 9, 32, motions=SPEEDS), tok)
    return train, test


def _fit(inputs: str, clips: tuple[ClipCache, ClipCache], out: Path) -> float:
    cfg = ClassifierTrainConfig.preset("tiny")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, inputs=inputs), out_dir=str(out), steps=60, batch_size=16,
                              eval_items=96, optim=dataclasses.replace(cfg.optim, lr=3e-3))
    return ClassifierTrainer(cfg, *clips).fit()["eval_accuracy"]


def test_token_classifier_learns_motion(speed_clips, tmp_path: Path) -> None:
    assert _fit("tokens", speed_clips, tmp_path) >= 0.75  # chance: 0.5


def test_single_frame_classifier_is_near_chance(speed_clips, tmp_path: Path) -> None:
    assert _fit("frame", speed_clips, tmp_path) <= 0.65  # the same budget, one frame: chance 0.5


# ----- the networks ---------------------------------------------------------------
def test_token_classifier_uses_the_generators_sub_token_embedding() -> None:
    model = VideoClassifier(ClassifierConfig.preset("tiny", grid=(2, 4, 4)))
    assert type(model.embed) is SubTokenEmbedding
    tokens = torch.randint(0, 2**10, (2, 2, 4, 4))
    sub = split_indices(tokens.flatten(1), model.config.bits_per_group)
    expected = sum(model.embed.tables[g](sub[..., g]) for g in range(2)) + model.pos()
    assert torch.allclose(model.embed_inputs(tokens), expected)
    assert model(tokens).logits.shape == (2, 10)


def test_tubelets_follow_the_token_grid() -> None:
    tok = VideoTokenizer(TokenizerConfig.preset("tiny"))
    video = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    model = VideoClassifier(ClassifierConfig.preset("tiny", inputs="pixels", grid=(3, 4, 4)))
    patches = model.embed.patches(video)
    assert tok.config.latent_shape(9, 16, 16) == (3, 4, 4) and patches.shape == (2, 48, 3 * 4 * 4 * 4)
    first = patches[:, 0].reshape(2, 4, 4, 4, 3)  # tubelet 0 = frame 0 (repeated), rows 0-3, columns 0-3
    assert torch.equal(first[:, 3], video[:, :, 0, :4, :4].permute(0, 2, 3, 1)) and torch.equal(first[:, 0], first[:, 3])
    second = patches[:, 16].reshape(2, 4, 4, 4, 3)  # tubelet (1, 0, 0) = frames 1-4
    assert torch.equal(second, video[:, :, 1:5, :4, :4].permute(0, 2, 3, 4, 1))
    frame = VideoClassifier(ClassifierConfig.preset("tiny", inputs="frame", grid=(3, 4, 4)))
    assert frame(video).hidden.shape == (2, 16, 64)


def test_sample_mask_counts_and_tubes() -> None:
    g = torch.Generator().manual_seed(0)
    m = sample_mask(5, (3, 4, 4), 0.5, "random", generator=g)
    assert m.shape == (5, 48) and (m.sum(1) == 24).all()
    tube = sample_mask(5, (3, 4, 4), 0.25, "tube", generator=g).reshape(5, 3, 16)
    assert (tube.sum(-1) == 4).all() and (tube == tube[:, :1]).all()


# ----- masked pre-training counts masked positions only ------------------------------
def test_pretraining_losses_read_only_masked_positions() -> None:
    torch.manual_seed(0)
    b, n, g, k = 2, 12, 2, 8
    masked = torch.zeros(b, n, dtype=torch.bool)
    masked[:, ::3] = True
    logits = torch.randn(b, n, g, k, requires_grad=True)
    targets = torch.randint(0, k, (b, n, g))
    loss = masked_token_loss(logits, targets, masked).loss
    loss.backward()
    assert (logits.grad[~masked] == 0).all() and (logits.grad[masked] != 0).any()
    other = torch.where(masked[..., None], targets, (targets + 1) % k)  # other targets where visible
    assert torch.equal(masked_token_loss(logits, other, masked).loss, loss)
    pred, target = torch.randn(b, n, 5, requires_grad=True), torch.randn(b, n, 5)
    mse = masked_pixel_loss(pred, target, masked).loss
    mse.backward()
    assert (pred.grad[~masked] == 0).all() and (pred.grad[masked] != 0).any()
    assert torch.equal(masked_pixel_loss(pred, torch.where(masked[..., None], target, 0.0), masked).loss, mse)


@pytest.mark.parametrize("targets", ["tokens", "pixels"])
def test_masked_model_hides_masked_inputs_and_ignores_visible_targets(targets: str) -> None:
    torch.manual_seed(0)
    cfg = ClassifierConfig.preset("tiny", inputs="pixels", grid=(3, 4, 4), bits=8)
    model = MaskedVideoModel(VideoClassifier(cfg), targets, normalize_pixels=False).eval()
    video = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    tokens = torch.randint(0, 256, (2, 3, 4, 4))
    masked = torch.zeros(2, 48, dtype=torch.bool)
    masked[:, 20:40] = True  # positions 20..39: latent frames 1 and 2
    base = model(video, masked, tokens).loss
    # visible positions' targets never count (token targets; pixel targets come from the video itself)
    if targets == "tokens":
        changed = tokens.clone().flatten(1)
        changed[:, :20] = (changed[:, :20] + 1) % 256
        assert torch.equal(model(video, masked, changed.reshape(2, 3, 4, 4)).loss, base)
        hit = tokens.clone().flatten(1)
        hit[:, 25] = (hit[:, 25] + 1) % 256
        assert not torch.equal(model(video, masked, hit.reshape(2, 3, 4, 4)).loss, base)
    # the pixels of a masked tubelet are hidden from the network: position 21 = latent 1, row 1, column 1
    hidden = video.clone()
    hidden[:, :, 1:5, 4:8, 4:8] = 0.0
    feats = model.backbone.features(video, masked)
    assert torch.equal(model.backbone.features(hidden, masked), feats)
    visible = video.clone()
    visible[:, :, 0, 4:8, 4:8] = 0.0  # position 5 (latent 0) is visible: the features change
    assert not torch.allclose(model.backbone.features(visible, masked), feats)


# ----- save / load and the command line ----------------------------------------------
@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tok") / "tok"
    VideoTokenizer(TokenizerConfig.preset("tiny")).save_pretrained(path)
    return path


def test_clip_classifier_round_trip(tiny_tokenizer: Path, tmp_path: Path) -> None:
    tok = VideoTokenizer.from_pretrained(tiny_tokenizer)
    clf = ClipClassifier(VideoClassifier(ClassifierConfig.preset("tiny", grid=(3, 4, 4), bits=8)), tok, SPEEDS[:1] * 10)
    clf.save_pretrained(tmp_path / "clf")
    again = ClipClassifier.from_pretrained(tmp_path / "clf")
    video = torch.rand(2, 3, 9, 16, 16) * 2 - 1
    assert torch.equal(again.predict(video), clf.predict(video)) and again.class_names == clf.class_names


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1] if err else ""


def test_cli_train_pretrain_finetune_and_eval(tiny_tokenizer: Path, tmp_path: Path, capsys) -> None:
    small = ["steps=2", "batch_size=4", "data.num_samples=8", "eval_items=8"]
    assert main(["train", "classifier", "--inputs", "tokens", "--tokenizer", str(tiny_tokenizer), "--config", "tiny",
                 f"out_dir={tmp_path / 'tok'}", *small]) == 0
    assert main(["train", "pretrain", "--targets", "tokens", "--tokenizer", str(tiny_tokenizer), "--config", "tiny",
                 f"out_dir={tmp_path / 'pre'}", *small[:3]]) == 0
    assert main(["train", "classifier", "--inputs", "pixels", "--config", "tiny", f"out_dir={tmp_path / 'ft'}",
                 f"init_from={tmp_path / 'pre' / 'export'}", "label_fraction=0.5", *small]) == 0
    shards = tmp_path / "shards"  # token shards from `magvit2 tokenize`: the classifier takes their tokenizer
    assert main(["tokenize", "--model", str(tiny_tokenizer), "--data", "motion", "-o", str(shards), "--frames", "9",
                 "--resolution", "32", "--num-samples", "8"]) == 0
    assert main(["train", "classifier", "--inputs", "tokens", "--config", "tiny", f"tokens={shards}",
                 f"out_dir={tmp_path / 'shard-run'}", *small]) == 0
    assert ClipClassifier.from_pretrained(tmp_path / "shard-run" / "export").tokenizer.config.bits == 8
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["eval", "classify", "--model", str(tmp_path / "tok" / "export"), "--data", "motion",
                 "--max-items", "10", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy:" in printed and "counterclockwise" in printed
    table = (out / "confusion.csv").read_text().splitlines()
    assert len(table) == 11 and sum(int(x) for row in table[1:] for x in row.split(",")[1:]) == 10
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    before = (out / "confusion.csv").read_bytes()
    assert main(["eval", "classify", "--model", str(tmp_path / "missing"), "-o", str(out)]) == 2
    assert _err(capsys).startswith("error:") and (out / "confusion.csv").read_bytes() == before
    assert main(["train", "classifier", "--targets", "tokens", "--config", "tiny"]) == 2
    assert "--targets" in _err(capsys)
