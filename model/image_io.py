"""PNG files and image grids (OpenCV underneath; images are RGB uint8 everywhere in this project)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from model.example import check_image


def write_png(path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as PNG; creates parent folders."""
    check_image(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write PNG to {path}")
    return path


def read_png(path) -> np.ndarray:
    """Read an image file -> (H, W, 3) uint8 RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path} is not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_grid(rows: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Tile rows of (N, H, W, 3) uint8 images (all the same shape) into one image with white gutters."""
    tiles = [[img for img in row] for row in rows]
    h, w = tiles[0][0].shape[:2]
    n_cols = max(len(r) for r in tiles)
    grid = np.full((len(tiles) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        for c, img in enumerate(row):
            check_image(img, f"grid tile ({r}, {c})")
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y : y + h, x : x + w] = img
    return grid
