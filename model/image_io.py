"""PNG files and image grids (OpenCV underneath; images are RGB uint8 everywhere in this project)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def _check_rgb(image: np.ndarray, name: str = "image") -> None:
    if not (
        isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8
    ):
        got = f"{tuple(image.shape)} {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name} must be HxWx3 uint8 RGB, got {got}")


def write_png(path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image as PNG; creates parent folders."""
    _check_rgb(image)
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
            _check_rgb(img, f"grid tile ({r}, {c})")
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y : y + h, x : x + w] = img
    return grid
