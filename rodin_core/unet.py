"""The denoising UNet over rolled-out tri-planes, with 3D-aware convolutions in its residual blocks.

Input and output are rolled-out tri-planes (B, C, R, 3R). Inside, the three planes travel as a plane-major
stack (B*3, ch, r, r) so down/up-sampling never mixes planes at their shared borders; the 3D-aware
convolutions and the attention at the lowest resolution are where planes talk to each other.
Conditioning: time embedding plus an optional latent code z, injected by adaptive group norm (AdaGN), and
optional extra input channels (the upsampler's low-resolution tri-plane).

With `planes=1` the same network is a plain image UNet over (B, C, H, W): ordinary convolutions, attention over
the image's tokens (the portrait model, rodin_core.portrait, draws frontal portraits with it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .aware_conv import AwareConv3D
from .triplane import roll_in, roll_out


@dataclass(frozen=True)
class UNetConfig:
    channels: int = 8  # tri-plane channels (input and output)
    cond_channels: int = 0  # extra input channels concatenated to the noisy tri-plane
    base: int = 64
    mults: tuple[int, ...] = (1, 2, 2)
    blocks: int = 1  # residual blocks per level
    z_dim: int = 0  # latent code size (0 = no latent conditioning)
    attention: bool = True  # self-attention over all three planes at the lowest resolution
    groups: int = 8
    dropout: float = 0.0
    planes: int = 3  # 3: rolled-out tri-planes with 3D-aware convolutions; 1: plain images

    def validate(self) -> None:
        if self.planes not in (1, 3):
            raise ValueError(f"a UNet works on tri-planes (planes=3) or images (planes=1); got {self.planes}")

    def to_dict(self) -> dict:
        return asdict(self)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def block_conv(cin: int, cout: int, planes: int) -> nn.Module:
    """The 3x3 convolution of a residual block: 3D-aware on tri-planes, ordinary on images."""
    return AwareConv3D(cin, cout) if planes == 3 else nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    def __init__(
        self, cin: int, cout: int, emb_dim: int, groups: int, dropout: float, planes: int = 3
    ) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = block_conv(cin, cout, planes)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.ada = nn.Linear(emb_dim, 2 * cout)  # AdaGN: scale and shift of the second norm
        self.dropout = nn.Dropout(dropout)
        self.conv2 = block_conv(cout, cout, planes)
        last = self.conv2.conv if planes == 3 else self.conv2
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.ada(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class TriplaneAttention(nn.Module):
    """Self-attention over the tokens of all three planes of one tri-plane (of the one image, `planes=1`)."""

    def __init__(self, channels: int, groups: int, heads: int = 4, planes: int = 3) -> None:
        super().__init__()
        self.planes = planes
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, r, _ = x.shape
        n = self.planes
        tokens = self.norm(x).reshape(bt // n, n, c, r * r).permute(0, 1, 3, 2).reshape(bt // n, n * r * r, c)
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        out = out.reshape(bt // n, n, r * r, c).permute(0, 1, 3, 2).reshape(bt, c, r, r)
        return x + out


class TriplaneUNet(nn.Module):
    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        ch = config.base
        n = config.planes
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.z_proj = nn.Linear(config.z_dim, emb_dim) if config.z_dim else None
        self.input = nn.Conv2d(config.channels + config.cond_channels, ch, 3, padding=1)
        # Tells the shared kernels which plane they look at.
        self.plane_embedding = nn.Parameter(torch.zeros(n, ch, 1, 1))

        self.down = nn.ModuleList()
        skips = [ch]
        cur = ch
        for level, mult in enumerate(config.mults):
            for _ in range(config.blocks):
                self.down.append(ResBlock(cur, ch * mult, emb_dim, config.groups, config.dropout, n))
                cur = ch * mult
                skips.append(cur)
            if level < len(config.mults) - 1:
                self.down.append(nn.Conv2d(cur, cur, 3, stride=2, padding=1))
                skips.append(cur)
        self.mid1 = ResBlock(cur, cur, emb_dim, config.groups, config.dropout, n)
        self.mid_attn = TriplaneAttention(cur, config.groups, planes=n) if config.attention else nn.Identity()
        self.mid2 = ResBlock(cur, cur, emb_dim, config.groups, config.dropout, n)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.mults))):
            for _ in range(config.blocks + 1):
                self.up.append(
                    ResBlock(cur + skips.pop(), ch * mult, emb_dim, config.groups, config.dropout, n)
                )
                cur = ch * mult
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.out_norm = nn.GroupNorm(config.groups, cur)
        self.output = nn.Conv2d(cur, config.channels, 3, padding=1)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        z: torch.Tensor | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x: (B, C, R, 3R) noisy rolled-out tri-plane (planes=1: (B, C, R, R) image); t: (B,) timesteps;
        z: (B, z_dim); cond: (B, C', R, 3R)."""
        cfg = self.config
        r = x.shape[-2]
        if r % (2 ** (len(cfg.mults) - 1)):
            raise ValueError(f"tri-plane resolution {r} must be divisible by {2 ** (len(cfg.mults) - 1)}")
        if cfg.cond_channels:
            if cond is None or cond.shape[1] != cfg.cond_channels:
                raise ValueError(f"this UNet needs a {cfg.cond_channels}-channel condition tri-plane")
            x = torch.cat([x, cond], dim=1)
        b, n = x.shape[0], cfg.planes
        h = roll_in(x).reshape(b * 3, -1, r, r) if n == 3 else x
        emb = self.time_mlp(timestep_embedding(t, cfg.base))
        if self.z_proj is not None:
            if z is None:
                raise ValueError(
                    "this UNet is latent-conditioned: pass z (zeros for the unconditional branch)"
                )
            emb = emb + self.z_proj(z)
        emb = emb.repeat_interleave(n, dim=0)

        h = self.input(h) + self.plane_embedding.repeat(b, 1, 1, 1)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = layer(h)
        h = self.output(F.silu(self.out_norm(h)))
        return roll_out(h.reshape(b, 3, cfg.channels, r, r)) if n == 3 else h

    def sample_shape(self, batch: int, resolution: int) -> tuple[int, ...]:
        """The shape of `batch` samples at `resolution`: rolled-out tri-planes, or square images."""
        width = 3 * resolution if self.config.planes == 3 else resolution
        return (batch, self.config.channels, resolution, width)
