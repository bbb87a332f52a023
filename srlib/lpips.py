"""LPIPS that runs offline: the networks defined here, the weights read as package data.

Kinds (``load(kind)``):

- ``lpips-alex``, ``lpips-vgg``: standard LPIPS v0.1 (Zhang et al., CVPR 2018). The
  linear heads come from the ``lpips`` wheel (``lpips/weights/v0.1/{alex,vgg}.pth``); the
  ImageNet trunk is torchvision's checkpoint ``alexnet-owt-7be5be79.pth`` or
  ``vgg16-397923af.pth`` in torch's hub cache (``$TORCH_HOME/hub/checkpoints/``),
  downloaded there with ``torch.hub`` only when the machine is online.
- ``stlpips-alex``, ``stlpips-vgg``: shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022),
  complete weights from the ``stlpips-pytorch`` wheel
  (``stlpips_pytorch/weights/vST0.0/{alex,vgg}_shift_tolerant.pth``). Its trunks
  replace strided pooling by stride-1 pooling + a blur (binomial [1, 2, 1]^2,
  reflection-padded) with stride 2, and its first AlexNet conv has stride 1.

Both wheels import torchvision, which does not import beside this project's torch, so
they are installed with ``--no-deps`` and never imported: their files are found through
``importlib.metadata``. The distance, as in both reference implementations: inputs in
``[0, 1]`` -> ``[-1, 1]`` -> scaling layer -> trunk; at five layers, unit-normalise the
features over channels, square the difference, weight channels by the linear head (1x1
conv), average over space; sum the five. Returns ``(B,)``.

``LPIPS.spatial_map(x, y)`` is the reference packages' ``spatial=True`` output: each
layer's weighted map (before the average over space) upsampled bilinearly to the input's
size (``align_corners=False``) and the five summed, ``(B, 1, H, W)``; the NTIRE 2021
challenge's diversity score is built on it (``srlib.ntire``). Its spatial mean is the
scalar distance up to the upsampling's weighting of border pixels when a layer's size
does not divide the input's (about 1e-4 relative; exact for integer factors).
"""

from __future__ import annotations

import importlib.metadata
import socket
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("lpips-alex", "lpips-vgg", "stlpips-alex", "stlpips-vgg")

# torchvision's ImageNet checkpoints (file name = what torch.hub caches them as).
TRUNK_FILES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",  # ESRGAN's perceptual loss (srlib.losses)
}
TRUNK_URL = "https://download.pytorch.org/models/"
HEAD_FILES = {
    "lpips-alex": ("lpips", "lpips/weights/v0.1/alex.pth"),
    "lpips-vgg": ("lpips", "lpips/weights/v0.1/vgg.pth"),
    "stlpips-alex": ("stlpips-pytorch", "stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth"),
    "stlpips-vgg": ("stlpips-pytorch", "stlpips_pytorch/weights/vST0.0/vgg_shift_tolerant.pth"),
}
VALUE_TOLERANCE = 1e-3  # how far outside [0, 1] an input may stray (float round-off)


class Blur(nn.Module):
    """Anti-aliased downsampling (Zhang, ICML 2019) as in ST-LPIPS: reflection pad by 2,
    depthwise 3x3 binomial filter ``filt`` (a checkpoint buffer), stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        k = a[:, None] * a[None, :]
        self.register_buffer("filt", (k / k.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2,
                        groups=x.shape[1])


def _conv(cin: int, cout: int, k: int, stride: int = 1, pad: int | None = None) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if pad is None else pad)


Trunk = tuple[nn.Sequential, tuple[int, ...], tuple[int, ...]]  # layers, taps, channels


def _alexnet(shift_tolerant: bool) -> Trunk:
    """AlexNet's conv trunk (torchvision indices) or its ST-LPIPS variant, tap indices
    (after relu1..relu5) and their channels."""
    chans = (64, 192, 384, 256, 256)
    relu = nn.ReLU
    if not shift_tolerant:
        layers = [
            _conv(3, 64, 11, 4, 2), relu(), nn.MaxPool2d(3, 2),
            _conv(64, 192, 5), relu(), nn.MaxPool2d(3, 2),
            _conv(192, 384, 3), relu(), _conv(384, 256, 3), relu(), _conv(256, 256, 3), relu(),
        ]
        return nn.Sequential(*layers), (1, 4, 7, 9, 11), chans
    layers = [
        _conv(3, 64, 11, 1, 2), Blur(64), relu(), nn.MaxPool2d(3, 1), Blur(64),
        _conv(64, 192, 5), relu(), nn.MaxPool2d(3, 1), Blur(192),
        _conv(192, 384, 3), relu(), _conv(384, 256, 3), relu(), _conv(256, 256, 3), relu(),
    ]
    return nn.Sequential(*layers), (2, 6, 10, 12, 14), chans


VGG_BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}  # 3x3 convs per block


def vgg_trunk(depth: int = 16, shift_tolerant: bool = False) -> Trunk:
    """VGG's conv trunk (torchvision indices) or its ST-LPIPS variant, the indices of the
    last ReLU of each block (relu1_2 ... relu5_3 for VGG16) and their channels."""
    layers: list[nn.Module] = []
    taps, cin, chans = [], 3, (64, 128, 256, 512, 512)
    for block, (cout, n) in enumerate(zip(chans, VGG_BLOCKS[depth], strict=True)):
        if block > 0:
            layers += [nn.MaxPool2d(2, 1), Blur(cin)] if shift_tolerant else [nn.MaxPool2d(2, 2)]
        for _ in range(n):
            layers += [_conv(cin, cout, 3), nn.ReLU()]
            cin = cout
        taps.append(len(layers) - 1)
    return nn.Sequential(*layers), tuple(taps), chans


class LPIPS(nn.Module):
    """``m(x, y) -> (B,)`` perceptual distances; see the module docstring.

    ``x``, ``y``: ``(B, 3, H, W)`` in ``[0, 1]``, same shape, any float dtype the trunk
    runs in. Differentiable with respect to the inputs; parameters frozen; eval mode."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown LPIPS kind {kind!r}; known kinds: {', '.join(KINDS)}")
        self.kind = kind
        st = kind.startswith("stlpips")
        trunk = _alexnet(st) if kind.endswith("alex") else vgg_trunk(16, st)
        self.features, self.taps, chans = trunk
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in chans)
        # LPIPS v0.1's scaling layer (ImageNet statistics in [-1, 1] units); ST-LPIPS
        # checkpoints carry the same values, which load() copies in.
        shift, scale = [-0.030, -0.088, -0.188], [0.458, 0.448, 0.450]
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> None:
        for name, t in (("x", x), ("y", y)):
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] != 3:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{self.kind}: {name} must have shape (B, 3, H, W), got {shape}")
            lo, hi = t.min().item(), t.max().item()
            if lo < -VALUE_TOLERANCE or hi > 1 + VALUE_TOLERANCE:
                raise ValueError(
                    f"{self.kind}: {name} has values in [{lo:.4g}, {hi:.4g}], expected [0, 1]"
                )
        if x.shape != y.shape:
            raise ValueError(
                f"{self.kind}: shapes differ, x {tuple(x.shape)} vs y {tuple(y.shape)}"
            )
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"{self.kind}: images of {tuple(x.shape[-2:])} px are too small; "
                             "need at least 32 x 32")

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((2 * x - 1) - self.shift) / self.scale
        out, taps = [], set(self.taps)
        for i, layer in enumerate(self.features[: self.taps[-1] + 1]):
            x = layer(x)
            if i in taps:
                out.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def layer_maps(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """The five weighted distance maps ``(B, 1, h_l, w_l)``, each at its layer's size."""
        self._check(x, y)
        b = x.shape[0]
        feats = self._taps(torch.cat([x, y]))  # one pass through the trunk for both
        return [lin((f[:b] - f[b:]).pow(2)) for lin, f in zip(self.lins, feats, strict=True)]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return sum(d.mean(dim=(1, 2, 3)) for d in self.layer_maps(x, y))

    def spatial_map(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` per-pixel distances, as the reference packages' ``spatial=True``:
        each layer's map upsampled bilinearly (``align_corners=False``) to the input's
        size, the five summed. Its mean over space is about ``self(x, y)`` (module doc)."""
        maps = self.layer_maps(x, y)
        size = tuple(x.shape[-2:])
        return sum(F.interpolate(d, size=size, mode="bilinear", align_corners=False)
                   for d in maps)


def _package_file(dist: str, rel: str) -> Path:
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the {dist!r} package is not installed; it carries the LPIPS weights. Install it "
            f"without its dependencies: pip install --no-deps {dist}  (or run `make setup`)"
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file of the {dist!r} package is missing")
    return path


def trunk_path(net: str) -> Path:
    """Where torch's hub cache keeps torchvision's ImageNet trunk of ``net`` (alex, vgg)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TRUNK_FILES[net]


def _online(host: str = "download.pytorch.org", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def trunk_state(net: str) -> dict[str, torch.Tensor]:
    """The ``features.*`` weights of torchvision's ImageNet ``net`` from the hub cache,
    downloaded there when missing and online; ``FileNotFoundError`` offline."""
    path = trunk_path(net)
    if not path.is_file():
        if not _online():
            raise FileNotFoundError(
                f"ImageNet trunk {path.name} not found in {path.parent} and the machine is "
                f"offline: put torchvision's {path.name} there (or set TORCH_HOME), or use an "
                "stlpips-* kind, whose weights ship with its package"
            )
        torch.hub.load_state_dict_from_url(TRUNK_URL + path.name, progress=False, check_hash=True)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if k.startswith("features.")}


def available(kind: str) -> bool:
    """Whether ``load(kind)`` finds all its weights on this machine without a download."""
    try:
        _package_file(*HEAD_FILES[kind])
    except FileNotFoundError:
        return False
    return kind.startswith("stlpips") or trunk_path(kind.split("-")[1]).is_file()


def default_kind() -> str:
    """``lpips-alex`` where its ImageNet trunk is on disk, otherwise ``stlpips-alex``."""
    return "lpips-alex" if available("lpips-alex") else "stlpips-alex"


def load(kind: str, device: str | torch.device | None = None) -> LPIPS:
    """A frozen, eval-mode LPIPS network of ``kind`` (see ``KINDS``) on ``device``."""
    model = LPIPS(kind)  # validates kind
    state = torch.load(_package_file(*HEAD_FILES[kind]), map_location="cpu", weights_only=True)
    # Checkpoint keys: "lin{k}.model.1.weight"; ST trunks "net.slice{k}.{index}.{param}"
    # with torchvision's indices, which are also ours.
    mine = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0].startswith("lin"):
            mine[f"lins.{parts[0][3:]}.weight"] = value
        elif parts[0] == "net":
            mine["features." + ".".join(parts[2:])] = value
        elif parts[0] == "scaling_layer":
            getattr(model, parts[1]).copy_(value.view(1, 3, 1, 1))
    if kind.startswith("lpips"):
        mine.update(trunk_state(kind.split("-")[1]))
    missing, unexpected = model.load_state_dict(mine, strict=False)
    if missing or unexpected:
        raise ValueError(f"{kind}: weights do not fit the network (missing {missing}, "
                         f"unexpected {unexpected})")
    model.requires_grad_(False).eval()
    return model.to(device) if device is not None else model
