"""Location bins for points and boxes, written inside text as ``<loc_N>`` tokens.

UIO-2 writes a box as [y1, x1, y2, x2] and a point as [y, x], each coordinate quantised into
1000 bins over the image side; 3D cuboids use 12 such tokens. A coordinate decodes to its
bin centre, so a round trip is exact to half a bin.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

LOC_PATTERN = re.compile(r"<loc_(\d+)>")


class LocationTokenizer:
    def __init__(self, bins: int = 1000):
        if bins < 2:
            raise ValueError(f"location bins must be >= 2, got {bins}")
        self.bins = bins

    def quantize(self, value: float, size: float) -> int:
        """Bin of a pixel coordinate ``value`` along a side of ``size`` pixels (clipped to the image)."""
        if not np.isfinite(value):
            raise ValueError(f"location must be finite, got {value}")
        if size <= 0:
            raise ValueError(f"image side must be positive, got {size}")
        return int(np.clip(np.floor(value / size * self.bins), 0, self.bins - 1))

    def dequantize(self, bin_index: int, size: float) -> float:
        if not 0 <= bin_index < self.bins:
            raise ValueError(f"location bin must be in [0, {self.bins}), got {bin_index}")
        return (bin_index + 0.5) / self.bins * size

    def token(self, bin_index: int) -> str:
        return f"<loc_{bin_index}>"

    def encode_box(self, box_xyxy: Sequence[float], image_hw: tuple[int, int]) -> str:
        """Box [x1, y1, x2, y2] in pixels -> four tokens in UIO-2's [y1, x1, y2, x2] order."""
        if len(box_xyxy) != 4:
            raise ValueError(f"box must be [x1, y1, x2, y2], got {list(box_xyxy)}")
        x1, y1, x2, y2 = box_xyxy
        h, w = image_hw
        return "".join(self.token(self.quantize(v, s)) for v, s in ((y1, h), (x1, w), (y2, h), (x2, w)))

    def encode_point(self, point_xy: Sequence[float], image_hw: tuple[int, int]) -> str:
        """Point [x, y] in pixels -> two tokens in [y, x] order."""
        if len(point_xy) != 2:
            raise ValueError(f"point must be [x, y], got {list(point_xy)}")
        x, y = point_xy
        h, w = image_hw
        return self.token(self.quantize(y, h)) + self.token(self.quantize(x, w))

    def bins_in(self, text: str) -> list[int]:
        return [int(m) for m in LOC_PATTERN.findall(text) if int(m) < self.bins]

    def decode_boxes(self, text: str, image_hw: tuple[int, int]) -> list[list[float]]:
        """Every complete group of four location tokens in ``text`` -> boxes [x1, y1, x2, y2] in pixels."""
        b = self.bins_in(text)
        h, w = image_hw
        boxes = []
        for i in range(0, len(b) - 3, 4):
            y1, x1, y2, x2 = (self.dequantize(v, s) for v, s in zip(b[i : i + 4], (h, w, h, w)))
            boxes.append([x1, y1, x2, y2])
        return boxes

    def decode_points(self, text: str, image_hw: tuple[int, int]) -> list[list[float]]:
        b = self.bins_in(text)
        h, w = image_hw
        return [[self.dequantize(b[i + 1], w), self.dequantize(b[i], h)] for i in range(0, len(b) - 1, 2)]
