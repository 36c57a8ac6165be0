"""Rodin's 3D-aware convolution on tri-planes.

Each plane is convolved together with what the other two planes hold along the lines through it: for plane
XY (rows = y, cols = x), the XZ plane averaged over z gives one value per x, broadcast down every column;
the YZ plane averaged over z gives one value per y, broadcast along every row. Same for XZ and YZ with
their own axes (see the table below). The three are concatenated along channels and convolved.

Plane layout (rodin_core.triplane): XY [row y, col x], XZ [row z, col x], YZ [row z, col y]. Every axis
runs the same way on every plane, so no flips are needed: only which dimension is pooled and whether the
pooled vector runs along columns or rows.
"""

from __future__ import annotations

import torch
from torch import nn

# For each target plane: (source plane, pooled dim) giving the column-indexed vector, then the row-indexed one.
# Pooled dim -2 averages over rows (keeps the column axis), -1 over columns (keeps the row axis).
AXIS_CONTEXT: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((1, -2), (2, -2)),  # XY: cols x <- XZ over z;   rows y <- YZ over z
    ((0, -2), (2, -1)),  # XZ: cols x <- XY over y;   rows z <- YZ over y
    ((0, -1), (1, -1)),  # YZ: cols y <- XY over x;   rows z <- XZ over x
)


def axis_context(planes: torch.Tensor) -> torch.Tensor:
    """(B, 3, C, R, R) -> (B, 3, 2C, R, R): for each plane, the pooled other planes broadcast over it."""
    r = planes.shape[-1]
    out = []
    for (col_src, col_dim), (row_src, row_dim) in AXIS_CONTEXT:
        col_vec = planes[:, col_src].mean(dim=col_dim)  # (B, C, R) indexed by column
        row_vec = planes[:, row_src].mean(dim=row_dim)  # (B, C, R) indexed by row
        out.append(
            torch.cat(
                [col_vec[:, :, None, :].expand(-1, -1, r, -1), row_vec[:, :, :, None].expand(-1, -1, -1, r)],
                dim=1,
            )
        )
    return torch.stack(out, dim=1)


class AwareConv3D(nn.Module):
    """3D-aware convolution: (B*3, C_in, R, R) plane stack -> (B*3, C_out, R, R).

    Works on the plane-major stack the UNet carries (planes of one tri-plane next to each other in the batch)
    so that every other layer can treat planes as images; the kernel is shared by the three planes.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3 * in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bt, c, r, _ = x.shape
        planes = x.reshape(bt // 3, 3, c, r, r)
        stacked = torch.cat([planes, axis_context(planes)], dim=2)
        return self.conv(stacked.reshape(bt, 3 * c, r, r))
