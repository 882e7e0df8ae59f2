"""Blur pooling and the StyleGAN discriminator (tiny presets, CPU)."""
from __future__ import annotations

import pytest
import torch

from magvit2.config.base import ConfigError
from magvit2.layers.blur import BlurPool, BlurPool2d, BlurPool3d, blur_kernel, blur_pad
from magvit2.tokenizer.discriminator import DiscriminatorConfig, StyleGANDiscriminator, minibatch_stddev



# ----- blur pooling -----------------------------------------------------------------------
def test_blur_kernel_sums_to_one_and_is_binomial():
    k = blur_kernel()
    assert torch.allclose(k, torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)
    assert k.sum().item() == pytest.approx(1.0)
    # Polyphase property: the even and the odd taps each sum to 1/2, so every stride-2 pass keeps
    # half the mass of an impulse wherever it sits (3 axes -> 1/8), and constants are preserved.
    for pos in [(4, 4, 4), (3, 4, 5)]:
        x = torch.zeros(1, 1, 9, 9, 9)
        x[(0, 0, *pos)] = 1.0
        assert BlurPool3d()(x).sum().item() == pytest.approx(1 / 8, abs=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 9, 17])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_blur_pad_gives_ceil_half(n, k):
    front, back = blur_pad(n, k)
    assert front >= back >= 0
    if n > 1:
        assert (n + front + back - k) // 2 + 1 == (n + 1) // 2


@pytest.mark.parametrize("mode", ["replicate", "reflect", "zeros"])
def test_constant_stays_constant(mode):
    x = torch.full((2, 3, 9, 12, 10), 0.7)
    y = BlurPool3d(padding_mode=mode)(x)
    assert y.shape == (2, 3, 5, 6, 5)
    if mode == "zeros":  # only away from the borders
        y = y[:, :, 1:-1, 1:-1, 1:-1]
    assert torch.allclose(y, torch.full_like(y, 0.7), atol=1e-6)
    y2 = BlurPool2d(padding_mode=mode)(x[:, :, 0])
    y2 = y2[:, :, 1:-1, 1:-1] if mode == "zeros" else y2
    assert torch.allclose(y2, torch.full_like(y2, 0.7), atol=1e-6)


@pytest.mark.parametrize(
    "t,temporal,t_out", [(1, True, 1), (2, True, 1), (5, True, 3), (9, True, 5), (17, True, 9), (17, False, 17)]
)
def test_blurpool3d_shapes(t, temporal, t_out):
    y = BlurPool3d(temporal=temporal)(torch.randn(1, 2, t, 8, 6))
    assert y.shape == (1, 2, t_out, 4, 3)


def test_blurpool2d_odd_size_and_wrong_rank():
    assert BlurPool2d()(torch.randn(1, 2, 7, 5)).shape == (1, 2, 4, 3)
    with pytest.raises(ValueError, match="expects"):
        BlurPool2d()(torch.randn(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="dims"):
        BlurPool(4)


def test_one_frame_video_matches_image_blur():
    img = torch.randn(2, 3, 8, 8)
    vid = BlurPool3d(temporal=True)(img[:, :, None])
    assert vid.shape == (2, 3, 1, 4, 4)
    assert torch.allclose(vid[:, :, 0], BlurPool2d()(img), atol=1e-6)


def test_blur_matches_brute_force_outer_product_kernel():
    """Separable passes equal one depthwise conv with the 3D outer-product kernel (interior, zero pad)."""
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    k1 = blur_kernel().double()
    k3 = torch.einsum("i,j,k->ijk", k1, k1, k1)
    assert k3.sum().item() == pytest.approx(1.0)
    ref = torch.nn.functional.conv3d(
        torch.nn.functional.pad(x, (1, 1, 1, 1, 1, 1)), k3.expand(2, 1, 4, 4, 4), stride=2, groups=2
    )
    y = BlurPool3d(padding_mode="zeros").double()(x)
    assert torch.allclose(y, ref, atol=1e-12)


def test_checkerboard_is_removed_but_aliases_under_subsampling():
    i = torch.arange(16)
    board = ((i[:, None] + i[None, :]) % 2 * 2 - 1).float()[None, None]  # +-1 one-pixel checkerboard
    strided = board[..., ::2, ::2]  # plain stride-2 subsampling aliases it to a constant of magnitude 1
    assert strided.abs().min().item() == 1.0
    blurred = BlurPool2d()(board)
    interior = blurred[..., 1:-1, 1:-1]
    assert interior.abs().max().item() < 1e-6  # [1,3,3,1] has a zero at Nyquist
    assert blurred.abs().mean().item() < 0.2 * strided.abs().mean().item()  # borders included
    # Temporal flicker (frames alternating +-1) is removed by the temporal blur too.
    flicker = (torch.arange(16) % 2 * 2 - 1).float().reshape(1, 1, 16, 1, 1).expand(1, 1, 16, 4, 4)
    assert flicker[:, :, ::2].abs().min().item() == 1.0
    assert BlurPool3d()(flicker)[:, :, 1:-1].abs().max().item() < 1e-6


def test_blur_kernel_buffer_not_in_state_dict():
    assert "kernel" not in BlurPool3d().state_dict()


# ----- discriminator ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny3d():
    torch.manual_seed(0)
    return StyleGANDiscriminator(DiscriminatorConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def tiny2d():
    torch.manual_seed(0)
    return StyleGANDiscriminator(DiscriminatorConfig.preset("tiny-image")).eval()


@pytest.mark.parametrize("t", [1, 5, 9, 17])
def test_video_discriminator_shapes(tiny3d, t):
    x = torch.randn(2, 3, t, 16, 16)
    assert tiny3d(x).shape == (2,)
    assert tiny3d(torch.randn(3, 3, t, 32, 24)).shape == (3,)  # other sizes via adaptive head pooling


def test_feature_shapes_and_presets():
    d = StyleGANDiscriminator(DiscriminatorConfig.preset("tiny"))
    seen = []
    d.blocks[-1].register_forward_hook(lambda mod, inp, out: seen.append(tuple(out.shape[2:])))
    for t, want in [(17, (5, 4, 4)), (1, (1, 4, 4)), (5, (2, 4, 4))]:
        assert d.feature_shape(t, 16, 16) == want
        d(torch.randn(1, 3, t, 16, 16))
        assert seen[-1] == want  # the formula matches the network
    for name, t in [("video-17x128", 17), ("image-128", 1)]:
        cfg = DiscriminatorConfig.preset(name)
        assert cfg.spatial_factor == 32
        # At the preset resolution the last map already has the head size (pooling is the identity).
        assert cfg.feature_shape(t, 128, 128) == (1, 4, 4)


def test_image_discriminator_accepts_images_and_one_frame_videos(tiny2d):
    img = torch.randn(2, 3, 16, 16)
    out = tiny2d(img)
    assert out.shape == (2,)
    assert torch.equal(tiny2d(img[:, :, None]), out)
    with pytest.raises(ValueError, match="t == 1"):
        tiny2d(torch.randn(2, 3, 5, 16, 16))


def test_video_discriminator_treats_image_as_one_frame(tiny3d):
    img = torch.randn(2, 3, 16, 16)
    assert torch.equal(tiny3d(img), tiny3d(img[:, :, None]))


def test_samples_are_scored_independently(tiny3d):
    x = torch.randn(3, 3, 5, 16, 16)
    full = tiny3d(x)
    assert torch.allclose(full[1:2], tiny3d(x[1:2]), atol=1e-5)


def test_temporal_order_matters(tiny3d):
    x = torch.randn(1, 3, 5, 16, 16)
    assert not torch.allclose(tiny3d(x), tiny3d(x.flip(2)))


def test_clear_errors(tiny3d):
    with pytest.raises(ValueError, match="divisible by 4"):
        tiny3d(torch.randn(1, 3, 5, 18, 16))
    with pytest.raises(ValueError, match="input channels"):
        tiny3d(torch.randn(1, 4, 5, 16, 16))
    with pytest.raises(ValueError, match="expects"):
        tiny3d(torch.randn(3, 16, 16))


@pytest.mark.parametrize("name,shape", [("tiny", (2, 3, 5, 16, 16)), ("tiny-image", (2, 3, 16, 16))])
def test_gradients_reach_inputs_and_weights(name, shape):
    torch.manual_seed(0)
    d = StyleGANDiscriminator(DiscriminatorConfig.preset(name))
    x = torch.randn(*shape, requires_grad=True)
    d(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in d.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert d.stem.weight.grad.abs().sum() > 0


def test_minibatch_stddev_matches_brute_force():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 5)
    y = minibatch_stddev(x, group=2)
    assert y.shape == (4, 4, 2, 5)
    assert torch.equal(y[:, :3], x)
    # Groups are samples {0, 2} and {1, 3}.
    for members in ([0, 2], [1, 3]):
        std = x[members].std(dim=0, unbiased=False).mean()
        for m in members:
            assert torch.allclose(y[m, 3], torch.full((2, 5), std.item()), atol=1e-3)
    with pytest.raises(ValueError, match="divisible"):
        minibatch_stddev(torch.randn(3, 2, 4), group=2)


def test_discriminator_with_minibatch_std_and_box_pooling():
    cfg = DiscriminatorConfig.preset("tiny", minibatch_std_group=2, blur=False)
    d = StyleGANDiscriminator(cfg)
    assert d(torch.randn(4, 3, 5, 16, 16)).shape == (4,)
    assert d.blocks[0].down.taps == (1, 1)


def test_config_validation_and_round_trip(tmp_path):
    cfg = DiscriminatorConfig.preset("video-17x128")
    path = tmp_path / "d.yaml"
    cfg.to_yaml(path)
    assert DiscriminatorConfig.from_yaml(path) == cfg
    assert DiscriminatorConfig.load("tiny", ["dims=2", "temporal_downsample=[]"]).dims == 2
    with pytest.raises(ConfigError, match="dims"):
        DiscriminatorConfig.preset("tiny", dims=4)
    with pytest.raises(ConfigError, match="2D"):
        DiscriminatorConfig.preset("tiny", dims=2)
    with pytest.raises(ConfigError, match="entries"):
        DiscriminatorConfig.preset("tiny", temporal_downsample=(True,))
