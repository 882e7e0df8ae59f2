"""Open-MAGVIT2 import: exact parity with their own code, strict key map, round trips, CLI.

Their Encoder, Decoder and LFQ come from the ``open-magvit2`` wheel (installed with ``--no-deps``
by the Makefile), built with small random weights in both of their layouts: same structure,
32 base channels (their GroupNorm has 32 groups, so 32 is the smallest width), small images.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import torch

from magvit2 import TokenizerConfig, VideoTokenizer
from magvit2.cli.main import main
from magvit2.errors import UserError
from magvit2.tokenizer.convert import LAYOUTS, convert_state_dict, from_open_magvit2
from magvit2.tokenizer.inflate import inflate_tokenizer

improved = pytest.importorskip("open_magvit2.taming.modules.diffusionmodules.improved_model",
                               reason="needs the open-magvit2 wheel (make venv installs it)")
lfq_ref = pytest.importorskip("open_magvit2.taming.modules.vqvae.lookup_free_quantize")

#: layout -> (bits, residual blocks, image size); 2^18 as released for 128, 2^14 (the 16384 release) for 256
CASES = {"128": (18, 2, 32), "256": (14, 1, 32)}


class Reference:
    """Open-MAGVIT2's own tokenizer (their classes), with their Lightning state-dict keys."""

    def __init__(self, layout: str, seed: int = 0) -> None:
        bits, blocks, size = CASES[layout]
        torch.manual_seed(seed)
        dd = dict(ch=32, out_ch=3, in_channels=3, num_res_blocks=blocks, z_channels=bits,
                  ch_mult=list(LAYOUTS[layout]), resolution=size)
        self.encoder, self.decoder = improved.Encoder(**dd).eval(), improved.Decoder(**dd).eval()
        self.quantize = lfq_ref.LFQ(dim=bits, codebook_size=2**bits).eval()
        with torch.no_grad():  # non-trivial affine GroupNorms (their init is 1 and 0)
            for m in [*self.encoder.modules(), *self.decoder.modules()]:
                if isinstance(m, torch.nn.GroupNorm) and m.affine:
                    m.weight.add_(0.2 * torch.randn_like(m.weight))
                    m.bias.add_(0.2 * torch.randn_like(m.bias))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**{f"encoder.{k}": v for k, v in self.encoder.state_dict().items()},
                **{f"decoder.{k}": v for k, v in self.decoder.state_dict().items()}}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[b, 3, h, w]`` -> (indices ``[b, h', w']``, reconstruction ``[b, 3, h, w]``)."""
        z = self.encoder(images)
        quant, _, idx = self.quantize(z)
        return idx.view(z.shape[0], *z.shape[2:]), self.decoder(quant)


def _lightning_ckpt(raw: dict[str, torch.Tensor], ema: dict[str, torch.Tensor]) -> dict:
    """A checkpoint laid out like theirs: raw weights, EMA buffers (dots removed), loss weights, trainer state."""
    state = dict(raw)
    state.update({"model_ema." + k.replace(".", ""): v for k, v in ema.items()})
    state.update({"model_ema.decay": torch.tensor(0.999), "model_ema.num_updates": torch.tensor(-1, dtype=torch.int),
                  "model_ema.lossdiscriminatorweight": torch.zeros(2), "loss.discriminator.weight": torch.zeros(2)})
    return {"epoch": 3, "global_step": 100, "pytorch-lightning_version": "2.3.0", "state_dict": state}


def _images(n: int = 2, size: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _one_line_error(fn, *names: str) -> str:
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in names), msg
    return msg


# ----- parity ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", sorted(CASES))
def test_converted_tokenizer_equals_open_magvit2(layout: str) -> None:
    ref = Reference(layout)
    tok = from_open_magvit2(ref.state_dict(), ema=False)
    assert tok.config.channel_multipliers == LAYOUTS[layout] and tok.config.bits == CASES[layout][0]
    x = _images()
    idx, rec = ref(x)
    with torch.no_grad():
        ours = tok.encode(x[:, :, None])  # an image is a one-frame video
        ours_rec = tok.decode(ours)
    assert torch.equal(ours[:, 0], idx)
    assert (ours_rec[:, :, 0] - rec).abs().max() <= 1e-4


def test_ema_or_raw_is_chosen_explicitly(tmp_path: Path) -> None:
    ref, raw = Reference("128"), Reference("128", seed=5)
    path = tmp_path / "imagenet_128_L.ckpt"
    torch.save(_lightning_ckpt(raw.state_dict(), ref.state_dict()), path)
    x = _images()
    idx, rec = ref(x)
    tok = from_open_magvit2(path, ema=True)
    with torch.no_grad():
        assert torch.equal(tok.encode(x[:, :, None])[:, 0], idx)
        assert (tok.decode(tok.encode(x[:, :, None]))[:, :, 0] - rec).abs().max() <= 1e-4
    raw_tok = from_open_magvit2(path, ema=False)
    assert torch.equal(raw_tok.encoder.conv_in.weight[:, :, 0], raw.encoder.conv_in.weight)
    no_ema = tmp_path / "raw.ckpt"
    torch.save({"state_dict": raw.state_dict()}, no_ema)
    _one_line_error(lambda: from_open_magvit2(no_ema, ema=True), "no EMA weights")


def test_round_trip_through_save_and_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state = Reference("256").state_dict()
    tok = from_open_magvit2(state, ema=False)
    tok.save_pretrained(tmp_path / "m")
    back = VideoTokenizer.from_pretrained(tmp_path / "m")
    save_file(state, str(tmp_path / "state.safetensors"))  # their state dict as safetensors reads the same
    from_safetensors = from_open_magvit2(tmp_path / "state.safetensors", ema=False)
    assert back.config == tok.config == from_safetensors.config
    x = _images()[:, :, None]
    with torch.no_grad():
        idx = tok.encode(x)
        assert torch.equal(back.encode(x), idx) and torch.equal(from_safetensors.encode(x), idx)
        assert torch.equal(back.decode(idx), tok.decode(idx))


def test_inflated_open_magvit2_matches_image_model_on_static_video() -> None:
    image = from_open_magvit2(Reference("128").state_dict(), ema=False)
    video_cfg = dataclasses.replace(image.config, temporal_kernel=3, temporal_downsample=(False, True, True))
    video = inflate_tokenizer(image, video_cfg).eval()
    img = _images()[:, :, None]
    static = img.expand(-1, -1, 9, -1, -1).contiguous()
    with torch.no_grad():
        ref_idx = image.encode(img)
        ref_rec = image.decode(ref_idx)
        idx = video.encode(static)
        rec = video.decode(idx)
    assert idx.shape[1] == 3 and torch.equal(idx, ref_idx.expand_as(idx))
    assert (rec - ref_rec.expand_as(rec)).abs().max() <= 1e-4


# ----- strict key map and one-line errors --------------------------------------------------------------
def test_mismatches_name_the_first_key_or_shape(tmp_path: Path) -> None:
    state = Reference("128").state_dict()
    missing = {k: v for k, v in state.items() if k != "decoder.adaptive.2.gamma.weight"}
    _one_line_error(lambda: convert_state_dict(missing, ema=False), "missing key", "decoder.adaptive.2.gamma.weight")
    extra = {**state, "encoder.down.0.block.0.conv1.bias": torch.zeros(32)}
    _one_line_error(lambda: convert_state_dict(extra, ema=False), "unexpected key", "encoder.down.0.block.0.conv1.bias")
    _one_line_error(lambda: convert_state_dict(state, ema=False, layout="256"),
                    "shape mismatch", "encoder.down.1.block.0.norm2.weight", "checkpoint (64,)", "needs (32,)")
    _one_line_error(lambda: convert_state_dict(Reference("256").state_dict(), ema=False, layout="128"),
                    "shape mismatch", "encoder.down.1.block.0.norm2.weight")
    foreign = tmp_path / "foreign.ckpt"  # one of our own models is not theirs
    torch.save(VideoTokenizer(TokenizerConfig.preset("tiny")).state_dict(), foreign)
    _one_line_error(lambda: from_open_magvit2(foreign, ema=False), "missing key", "encoder.conv_in.weight")
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": state}, truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    _one_line_error(lambda: from_open_magvit2(truncated, ema=False), "truncated.ckpt", "not a readable")


def test_checkpoint_with_python_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": Reference("256").state_dict(), "hyper_parameters": argparse.Namespace(lr=1e-4)}, path)
    _one_line_error(lambda: from_open_magvit2(path, ema=False), "weights_only=True")


# ----- command line on real frames ---------------------------------------------------------------------
def test_cli_convert_then_compress_and_evaluate(tmp_path: Path, capsys) -> None:
    from magvit2.codec import FILE_EXTENSION
    from magvit2.data.packaged import packaged_split

    ckpt = tmp_path / "imagenet_128_L.ckpt"
    ref = Reference("128")
    torch.save(_lightning_ckpt(Reference("128", seed=3).state_dict(), ref.state_dict()), ckpt)
    out = tmp_path / "om2"
    assert main(["convert", "open-magvit2", str(ckpt), "-o", str(out), "--ema"]) == 0
    assert "2^18 codes" in capsys.readouterr().out
    tok = VideoTokenizer.from_pretrained(out)
    x = _images()
    with torch.no_grad():
        assert torch.equal(tok.encode(x[:, :, None])[:, 0], ref(x)[0])
    # An existing output is never touched; a missing choice of weights is a usage error.
    assert main(["convert", "open-magvit2", str(ckpt), "-o", str(out), "--no-ema"]) == 2
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "open-magvit2", str(ckpt), "-o", str(tmp_path / "x")])
    assert main(["convert", "open-magvit2", str(tmp_path / "nope.ckpt"), "-o", str(tmp_path / "y"), "--ema"]) == 2
    assert not (tmp_path / "y").exists()

    clip = packaged_split("test", "videos")[0]  # carphone: real frames
    coded, frames = tmp_path / f"c{FILE_EXTENSION}", tmp_path / "c.npy"
    assert main(["compress", str(clip), "-o", str(coded), "--model", str(out), "--max-frames", "3", "--size", "32"]) == 0
    assert main(["decompress", str(coded), "-o", str(frames), "--model", str(out)]) == 0
    import numpy as np

    assert np.load(frames).shape[0] == 3
    table = tmp_path / "recon.json"
    assert main(["eval", "recon", "--model", str(out), "--data", "packaged", "--frames", "1", "--resolution", "32",
                 "--max-items", "2", "-o", str(table)]) == 0
    assert table.is_file()


def test_whole_clip_norms_are_not_causal_and_refuse_streams() -> None:
    from magvit2.tokenizer.stream import encode_stream

    cfg = TokenizerConfig.preset("tiny", adaptive_norm="global-stats-linear", norm_scope="clip", first_frame_phase="first")
    tok = VideoTokenizer(cfg).eval()
    assert not cfg.causal
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    later = video.clone()
    later[:, :, 4:] = -later[:, :, 4:]
    with torch.no_grad():  # a change to the last frame reaches the first frame's latent
        assert not torch.equal(tok.encode_latent(video)[:, :, 0], tok.encode_latent(later)[:, :, 0])
    _one_line_error(lambda: list(encode_stream(tok, [video])), "cannot run on a stream")
    # reconstruct (any length) codes it clip by clip: each keyframe interval is one clip
    from magvit2.tokenizer.groups import reconstruct_video
    from magvit2.tokenizer.stream import reconstruct_stream

    long = torch.rand(1, 3, 8, 32, 32) * 2 - 1
    streamed = torch.cat(list(reconstruct_stream(tok, long.split([3, 5], dim=2), gop=5)), dim=2)
    assert torch.equal(streamed, reconstruct_video(tok, long, 5))
    _one_line_error(lambda: list(reconstruct_stream(tok, [long], gop=None)), "keyframe interval")
    with pytest.raises(ValueError, match="global-stats-linear"):
        TokenizerConfig.preset("tiny", norm_scope="clip")


def test_inflated_open_magvit2_variants_stream_exactly() -> None:
    """The image variants (latent-statistics norms, no biases, no latent norm) stay causal: streamed = whole."""
    image = from_open_magvit2(Reference("128").state_dict(), ema=False)
    video_cfg = dataclasses.replace(image.config, temporal_kernel=3, temporal_downsample=(False, True, True))
    tok = inflate_tokenizer(image, video_cfg).eval()
    with torch.no_grad():  # inflation zeroes the earlier temporal taps: make them matter
        for p in tok.parameters():
            if p.ndim == 5 and p.shape[2] > 1:
                p[:, :, :-1].normal_(0, 0.02)
    video = torch.rand(1, 3, 9, 16, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1
    whole = tok.encode(video)
    for sizes in ([1] * 9, [2, 3, 4]):
        assert torch.equal(torch.cat(list(tok.encode_stream(video.split(sizes, dim=2))), dim=1), whole), sizes
    ref = tok.decode(whole)
    parts = list(tok.decode_stream(whole.split([1, 2], dim=1)))
    assert (torch.cat(parts, dim=2) - ref).abs().max() <= 1e-4
