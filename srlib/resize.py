"""MATLAB-exact bicubic resizing as matrices, and the operator ``D`` of the study.

Convention (what every standard SR benchmark used to make its LR images): MATLAB's
``imresize(x, scale, 'bicubic')`` with its defaults:

- cubic kernel with a = -0.5 (Keys), support [-2, 2];
- when shrinking (scale < 1) the kernel is widened by 1/scale and scaled by ``scale``
  (antialiasing), so x4 downsampling uses 16 taps;
- output pixel ``i`` (1-based) samples input coordinate ``u = i/scale + 0.5*(1 - 1/scale)``;
- weights of each output pixel are normalised to sum to 1;
- borders are padded symmetrically (``[1..n, n..1]``, edge pixel repeated);
- output size ``ceil(scale * n)``.

Resizing is linear and separable, so per channel ``D(x) = A_h x A_w^T`` with one small
matrix per axis (rows = output pixels). Building the matrices once and applying them as
two matmuls is exact, differentiable, and runs on any device. ``torch.nn.functional.
interpolate(..., antialias=True)`` agrees only away from the borders, and its
non-antialiased bicubic uses a = -0.75: neither is used here.

Everything is on float tensors of shape ``(B, C, H, W)`` or ``(C, H, W)``; values are
not clipped (``[0, 1]`` in, roughly ``[0, 1]`` out, with small bicubic overshoot).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

KERNEL_SUPPORT = 4.0  # width of the cubic kernel, in pixels of the coarser grid


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    ) * ((ax > 1) & (ax <= 2))


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return float(scale)


def output_size(n: int, scale: float) -> int:
    """MATLAB's output length for an input of length ``n``: ``ceil(scale * n)``."""
    return int(math.ceil(_check_scale(scale) * n))


def min_input_size(scale: float) -> int:
    """Smallest input length for which the kernel fits: 4 pixels of the coarser grid."""
    scale = _check_scale(scale)
    return int(math.ceil(KERNEL_SUPPORT / min(scale, 1.0)))


@lru_cache(maxsize=256)
def _weights_np(n_in: int, scale: float) -> np.ndarray:
    """The ``(ceil(scale*n_in), n_in)`` float64 resize matrix of one axis."""
    n_out = output_size(n_in, scale)
    if n_in < min_input_size(scale):
        raise ValueError(
            f"image side of {n_in} px is smaller than the bicubic kernel supports at "
            f"scale {scale}: need at least {min_input_size(scale)} px"
        )
    if scale < 1:  # antialiasing: widen the kernel, keep its integral at 1
        width = KERNEL_SUPPORT / scale

        def kernel(d):
            return scale * cubic(scale * d)
    else:
        width = KERNEL_SUPPORT
        kernel = cubic
    x = np.arange(1, n_out + 1, dtype=np.float64)  # 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # their position in input coordinates
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # (n_out, taps), 1-based
    w = kernel(u[:, None] - idx)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric padding: index k outside [1, n_in] reflects with the edge repeated.
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    src = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    a = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(a, (np.repeat(np.arange(n_out), taps), src.ravel()), w.ravel())
    return a


@lru_cache(maxsize=256)
def _matrix(n_in: int, scale: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.from_numpy(_weights_np(n_in, scale)).to(device=device, dtype=dtype)


@lru_cache(maxsize=256)
def _pinv(n_in: int, scale: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    """``A^+ = A^T (A A^T)^-1`` of the down matrix, computed in float64."""
    a = _weights_np(n_in, scale)
    p = a.T @ np.linalg.inv(a @ a.T)
    return torch.from_numpy(p).to(device=device, dtype=dtype)


def resize_matrix(
    n_in: int, scale: float, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The cached ``(ceil(scale*n_in), n_in)`` matrix that resizes one axis like MATLAB."""
    return _matrix(int(n_in), _check_scale(scale), dtype, str(torch.device(device)))


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (3, 4):
        raise ValueError(
            f"{name} must have shape (B, C, H, W) or (C, H, W), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got dtype {x.dtype}")


def _span(a: torch.Tensor) -> int:
    """The widest run of input pixels that one output pixel of the matrix ``a`` reads
    (first to last non-zero weight of a row): pixels this far apart share no output."""
    nz = a != 0
    idx = torch.arange(a.shape[1], device=a.device).expand_as(a)
    first = torch.where(nz, idx, a.shape[1]).min(dim=1).values
    last = torch.where(nz, idx, -1).max(dim=1).values
    return int((last - first).max()) + 1


def _apply(x: torch.Tensor, a_h: torch.Tensor, a_w: torch.Tensor) -> torch.Tensor:
    # (h, H) @ (..., H, W) @ (W, w): two matmuls, batched over leading dimensions.
    return a_h @ x @ a_w.transpose(0, 1)


def imresize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Resize like MATLAB's ``imresize(x, scale, 'bicubic')``.

    Args:
        x: float tensor ``(B, C, H, W)`` or ``(C, H, W)``, any device, any float dtype.
        scale: positive factor; ``< 1`` shrinks (antialiased), ``> 1`` enlarges.
    Returns:
        ``(..., ceil(scale*H), ceil(scale*W))``, same dtype and device, differentiable.
    """
    scale = _check_scale(scale)
    _check_image(x)
    h, w = x.shape[-2:]
    dev = str(x.device)
    for side in (h, w):
        if side < min_input_size(scale):
            raise ValueError(
                f"image of size {h}x{w} is smaller than the bicubic kernel supports at "
                f"scale {scale}: each side needs at least {min_input_size(scale)} px"
            )
    return _apply(x, _matrix(h, scale, x.dtype, dev), _matrix(w, scale, x.dtype, dev))


class BicubicDegradation:
    """The study's operator ``D`` for an integer scale ``s``: MATLAB bicubic x(1/s).

    ``down``: ``D``, HR ``(H, W)`` -> LR ``(H/s, W/s)`` (H, W must be multiples of s).
    ``up``: MATLAB bicubic x s, the bicubic baseline (not an inverse of ``D``).
    ``pinv``: ``D^+ = A_h^+ y (A_w^+)^T``, the least-norm HR image that downsamples to y.
    ``project(sr, lr)``: ``sr + D^+(lr - D sr)``, so that ``D(project(sr, lr)) == lr``.
    ``split(x)``: ``(D^+ D x, x - D^+ D x)``, orthogonal range and null-space parts.
    ``project_box(sr, lr)``: the closest image to ``sr`` that is consistent and in [0, 1].

    All methods take float tensors ``(B, C, H, W)`` or ``(C, H, W)`` on any device and
    are differentiable. Matrices are cached per (size, scale, dtype, device).
    """

    def __init__(self, scale: int):
        if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
            raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
        self.scale = int(scale)

    def __repr__(self) -> str:
        return f"BicubicDegradation(scale={self.scale})"

    def _hr_sides(self, x: torch.Tensor, name: str) -> tuple[int, int]:
        _check_image(x, name)
        h, w = x.shape[-2:]
        s = self.scale
        if h % s or w % s:
            raise ValueError(
                f"{name} of size {h}x{w} is not a multiple of the scale {s}: "
                f"mod-crop HR images to a multiple of {s} first"
            )
        return h, w

    def down(self, hr: torch.Tensor) -> torch.Tensor:
        """``D(hr)``: ``(..., H, W)`` -> ``(..., H/s, W/s)``, unquantised."""
        self._hr_sides(hr, "hr")
        return imresize(hr, 1.0 / self.scale)

    def up(self, lr: torch.Tensor) -> torch.Tensor:
        """MATLAB bicubic upsampling x s: ``(..., h, w)`` -> ``(..., s*h, s*w)``."""
        return imresize(lr, float(self.scale))

    def pinv(self, lr: torch.Tensor) -> torch.Tensor:
        """``D^+(lr)``: ``(..., h, w)`` -> ``(..., s*h, s*w)``."""
        _check_image(lr, "lr")
        h, w = lr.shape[-2:]
        s, dev = self.scale, str(lr.device)
        for side in (h, w):
            if side * s < min_input_size(1.0 / s):
                raise ValueError(
                    f"lr of size {h}x{w} is too small for the x{s} operator: "
                    f"each side needs at least {min_input_size(1.0 / s) // s} px"
                )
        p_h = _pinv(h * s, 1.0 / s, lr.dtype, dev)
        p_w = _pinv(w * s, 1.0 / s, lr.dtype, dev)
        return _apply(lr, p_h, p_w)

    def project(self, sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """The consistency projection: the closest image to ``sr`` with ``D(.) == lr``."""
        h, w = self._hr_sides(sr, "sr")
        if lr.shape[-2:] != (h // self.scale, w // self.scale):
            raise ValueError(
                f"lr has size {tuple(lr.shape[-2:])}, expected {(h // self.scale, w // self.scale)}"
                f" for sr of size {(h, w)} at scale {self.scale}"
            )
        return sr + self.pinv(lr - self.down(sr))

    def project_box(self, sr: torch.Tensor, lr: torch.Tensor, iters: int = 100,
                    tol: float = 1e-6) -> tuple[torch.Tensor, dict[str, float]]:
        """The projection of ``sr`` onto ``{x : D x = lr}`` intersected with the box
        ``[0, 1]^n``: consistent, and still consistent once clipped for saving.

        Dykstra's alternating projections (Boyle and Dykstra 1986) between the box (a clamp)
        and the consistent set (``project``), in float64, which converge to the closest point
        of the intersection (plain alternating projections converge to some point of it,
        not the closest). Stops after ``iters`` rounds or once the iterate, which always
        ends on the consistent set, lies within ``tol`` of the box. Returns it (float64) and
        ``{"iters": rounds run, "box_violation": largest distance outside [0, 1],
        "lr_error": largest |D x - lr|}``. Not differentiable through its rounds (the
        training path is straight-through, ``srlib.models.project_box64``)."""
        x, lr64 = sr.double(), lr.double()
        p, q = torch.zeros_like(x), torch.zeros_like(x)
        done, violation = 0, float("inf")
        for done in range(1, iters + 1):  # noqa: B007 (the count is reported)
            y = (x + p).clamp(0.0, 1.0)
            p = x + p - y
            x_next = self.project(y + q, lr64)
            q = y + q - x_next
            x = x_next
            violation = float((x - x.clamp(0.0, 1.0)).abs().max())
            if violation <= tol:
                break
        return x, {"iters": done, "box_violation": violation,
                   "lr_error": float((self.down(x) - lr64).abs().max())}

    def round_consistent(self, x: torch.Tensor, lr: torch.Tensor, sweeps: int = 2
                         ) -> torch.Tensor:
        """``x`` rounded to the 8-bit grid (``k / 255``) so that ``D`` of the result is as
        close to ``lr`` as a greedy search finds: rounding with its error pushed into the
        null space of ``D``, for saving a consistent image (``project_box``'s) as a PNG.

        Starts from plain rounding (``srlib.metrics.quantize``) and only moves a pixel to
        the other of its two nearest 8-bit levels (``floor`` or ``ceil`` of ``255 x``,
        within ``[0, 255]``), where that lowers ``||D(result) - lr||^2``; so the result is
        never further from ``x`` than one level per pixel, and never less consistent than
        plain rounding (in float64, exactly: every accepted move lowers the residual).
        Pixels are visited in phases of a ``stride x stride`` grid, ``stride`` the widest
        span of HR pixels one LR pixel reads (16 at x4): within a phase no two pixels reach
        a common LR pixel, so their moves add exactly and run as one batched step.
        ``sweeps`` passes over the phases. ``x``: ``(..., 3, H, W)`` in ``[0, 1]`` (values
        outside are clipped first); returns float64 on the 8-bit grid, ``x``'s shape."""
        h, w = self._hr_sides(x, "x")
        dev = str(x.device)
        a_h = _matrix(h, 1.0 / self.scale, torch.float64, dev)
        a_w = _matrix(w, 1.0 / self.scale, torch.float64, dev)
        v = x.double().clamp(0.0, 1.0) * 255.0
        k = torch.floor(v + 0.5)  # plain rounding, as quantize
        lo, hi = torch.floor(v), torch.ceil(v)
        res = _apply(k / 255.0, a_h, a_w) - lr.double()  # D(result) - lr
        stride = max(_span(a_h), _span(a_w))
        for _ in range(sweeps):
            for py in range(min(stride, h)):
                for px in range(min(stride, w)):
                    ah, aw = a_h[:, py::stride], a_w[:, px::stride]
                    g = ah.transpose(0, 1) @ res @ aw  # D^T res at the phase's pixels
                    c = ah.pow(2).sum(0)[:, None] * aw.pow(2).sum(0)[None, :]
                    kk = k[..., py::stride, px::stride]
                    step = torch.zeros_like(kk)
                    best = torch.zeros_like(kk)  # the change of ||res||^2 (x 255^2)
                    for d in (1.0, -1.0):
                        ok = (kk + d >= lo[..., py::stride, px::stride]) & \
                             (kk + d <= hi[..., py::stride, px::stride])
                        gain = 2 * d * 255.0 * g + c
                        take = ok & (gain < best)
                        step = torch.where(take, d, step)
                        best = torch.where(take, gain, best)
                    if bool(step.any()):
                        k[..., py::stride, px::stride] = kk + step
                        res = res + _apply(step / 255.0, ah, aw)
        return k / 255.0

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = range + null`` with ``range = D^+ D x`` and ``D(null) = 0``."""
        rng = self.pinv(self.down(x))
        return rng, x - rng
