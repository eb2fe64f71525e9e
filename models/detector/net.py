"""The detector network: a small single-shot, anchor-free net (TTFNet/CenterNet family) that decodes its own boxes.

Shape: a plain conv backbone down to stride 16 (dilated convolutions there widen the view to about 300 input
pixels, enough for a 300 µm fibre at coarse sampling), a feature pyramid back up to stride 4, and a head that
predicts per output cell and class a centre heat (sigmoid) and, per cell, the distances to the object's four
sides (left, top, right, bottom), so any cell on or near an object can place its box — a fibre's box centre
is often bare glass, the cells along the fibre are not.

:class:`DetectNetExport` wraps it in detectNet's contract: input ``input_0`` [1,3,H,W] scaled
``(x/255 - 0.5)/0.5``; outputs ``scores`` [1,N,C] (class 0 ``BACKGROUND``; each row non-negative and summing
to 1) and ``boxes`` [1,N,4] (normalised x1,y1,x2,y2), N = H/4 * W/4 cells. Heat below its 3x3 neighbourhood's
maximum is zeroed in the graph (CenterNet's peak extraction), so each object leaves one strong cell and
detectNet's clustering and our NMS see few duplicates.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.detector.spec import CLASSES, INPUT_H, INPUT_W, STRIDE

__all__ = ["CLASSES", "INPUT_H", "INPUT_W", "STRIDE", "DetectNetExport", "DetectorNet", "cell_centres",
           "count_parameters", "side_distances"]


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Res(nn.Module):
    """Two 3x3 convolutions with a skip."""

    def __init__(self, c: int, dilation: int = 1) -> None:
        super().__init__()
        self.a = _cbr(c, c, dilation=dilation)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False),
                               nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class DetectorNet(nn.Module):
    """Backbone + pyramid + head; ``forward`` returns raw heat logits [B,K,h,w] and side distances [B,4,h,w].

    Parameters
    ----------
    n_fg : int
        Foreground classes (2: structure, debris).
    width : int
        Channel multiplier (16 gives about 0.6 M parameters).
    """

    def __init__(self, n_fg: int = 2, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3, c4 = width, 2 * width, 3 * width, 6 * width
        # Compute goes where the view is wide (stride 16) and stays thin at stride 4, where cells are many.
        self.stem = nn.Sequential(_cbr(3, c1, 2), _cbr(c1, c2, 2))                            # stride 4
        self.s8 = nn.Sequential(_cbr(c2, c3, 2), _Res(c3))                                    # stride 8
        self.s16 = nn.Sequential(_cbr(c3, c4, 2), _Res(c4), _Res(c4, 2), _Res(c4, 4))         # stride 16
        self.lat8 = nn.Conv2d(c3, c2, 1)
        self.top16 = nn.Conv2d(c4, c2, 1)
        self.lat4 = nn.Conv2d(c2, c2, 1)
        self.fuse8 = _cbr(c2, c2)
        self.fuse4 = _cbr(c2, c2)
        self.shared = _cbr(c2, c2)
        self.heat = nn.Conv2d(c2, n_fg, 1)
        self.box = nn.Conv2d(c2, 4, 1)
        with torch.no_grad():  # start at p = 0.01: the focal loss is stable from the first step
            self.heat.bias.fill_(-4.6)  # type: ignore[union-attr]
            self.box.bias.fill_(1.0)  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Heat logits [B,K,h,w] and raw side distances [B,4,h,w] of a normalised [B,3,H,W] input."""
        f4 = self.stem(x)
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        p8 = self.fuse8(self.lat8(f8) + F.interpolate(self.top16(f16), scale_factor=2.0, mode="nearest"))
        p4 = self.fuse4(self.lat4(f4) + F.interpolate(p8, scale_factor=2.0, mode="nearest"))
        h = self.shared(p4)
        return self.heat(h), self.box(h)


def side_distances(raw: torch.Tensor) -> torch.Tensor:
    """Raw box outputs -> distances to the four sides in input pixels (positive, up to about 1600)."""
    return torch.exp(raw.clamp(-4.0, 6.0)) * float(STRIDE)


def cell_centres(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input-pixel centres of the output cells, shaped [1,1,h,w] each (x, y)."""
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * STRIDE
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * STRIDE
    return xs.view(1, 1, 1, w).expand(1, 1, h, w).contiguous(), ys.view(1, 1, h, 1).expand(1, 1, h, w).contiguous()


class DetectNetExport(nn.Module):
    """The net with preprocessing-free decoding, in jetson-inference detectNet's ONNX contract."""

    cx: torch.Tensor
    cy: torch.Tensor

    def __init__(self, net: DetectorNet, input_hw: tuple[int, int] = (INPUT_H, INPUT_W)) -> None:
        super().__init__()
        self.net = net
        h, w = input_hw[0] // STRIDE, input_hw[1] // STRIDE
        cx, cy = cell_centres(h, w)
        self.register_buffer("cx", cx / input_hw[1])
        self.register_buffer("cy", cy / input_hw[0])
        self.sx = float(STRIDE) / input_hw[1]
        self.sy = float(STRIDE) / input_hw[0]

    def forward(self, input_0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``scores`` [1,N,C] and ``boxes`` [1,N,4] of a normalised [1,3,H,W] input."""
        heat_raw, box_raw = self.net(input_0)
        heat = torch.sigmoid(heat_raw)
        # 1 where the cell is its neighbourhood's maximum, else 0. Compared on the logits, which never
        # saturate (sigmoid rounds neighbours near 1 to the same float, a tie that backends break
        # differently); Sign rather than Equal, which every runtime here supports.
        peak = F.max_pool2d(heat_raw, 3, stride=1, padding=1)
        keep = 1.0 - torch.sign(peak - heat_raw)
        fg = heat * keep
        total = fg.sum(dim=1, keepdim=True)
        fg = fg / torch.clamp(total, min=1.0)  # a valid distribution even when both classes fire
        bg = 1.0 - fg.sum(dim=1, keepdim=True)
        scores = torch.cat([bg, fg], dim=1)                       # [1,C,h,w]
        d = torch.exp(box_raw.clamp(-4.0, 6.0))                   # side distances in cells
        x1 = self.cx - d[:, 0:1] * self.sx
        y1 = self.cy - d[:, 1:2] * self.sy
        x2 = self.cx + d[:, 2:3] * self.sx
        y2 = self.cy + d[:, 3:4] * self.sy
        boxes = torch.clamp(torch.cat([x1, y1, x2, y2], dim=1), 0.0, 1.0)
        n = scores.shape[2] * scores.shape[3]
        scores = scores.reshape(1, scores.shape[1], n).permute(0, 2, 1)
        boxes = boxes.reshape(1, 4, n).permute(0, 2, 1)
        return scores, boxes


def count_parameters(net: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
