"""Small captions on rendered frames: who is who (speaker on the left, listener on the right).

The text is drawn once with Pillow into an RGBA patch; each frame only blends the patches in with
numpy (about 0.1 ms at 640x480), so captions cost nothing next to rendering and encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MARGIN = 8  # pixels from the frame's edges
PAD = 4  # pixels around the text inside its box
BOX_RGBA = (20, 24, 28, 150)
TEXT_RGB = (245, 245, 245)


@dataclass(frozen=True)
class _Patch:
    rgb: np.ndarray  # (h, w, 3) float32
    alpha: np.ndarray  # (h, w, 1) float32 in [0, 1]
    x: int
    y: int


class Captions:
    """Captions at the bottom of a (height, width) frame: `left` under the speaker, `right`
    under the listener."""

    def __init__(self, size: tuple[int, int], left: str, right: str):
        width, height = size
        self.size = size
        font_px = max(11, height // 34)
        patches = [_render(text, font_px) for text in (left, right)]
        self._patches = []
        for (rgb, alpha), align in zip(patches, ("left", "right")):
            h, w = alpha.shape[:2]
            w, h = min(w, width // 2 - MARGIN), min(h, height)
            x = MARGIN if align == "left" else width - MARGIN - w
            self._patches.append(_Patch(rgb[:h, :w], alpha[:h, :w], x, height - MARGIN - h))

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Blend the captions into an RGB uint8 frame (in place; returned for convenience)."""
        for p in self._patches:
            h, w = p.alpha.shape[:2]
            region = frame[p.y : p.y + h, p.x : p.x + w].astype(np.float32)
            frame[p.y : p.y + h, p.x : p.x + w] = (region + (p.rgb - region) * p.alpha).astype(np.uint8)
        return frame


def _render(text: str, font_px: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_px)  # Pillow's own font: nothing to find on the system
    left, top, right, bottom = (round(v) for v in font.getbbox(text))
    w, h = right - left + 2 * PAD, bottom - top + 2 * PAD
    image = Image.new("RGBA", (w, h), BOX_RGBA)
    ImageDraw.Draw(image).text((PAD - left, PAD - top), text, font=font, fill=(*TEXT_RGB, 255))
    rgba = np.asarray(image, np.float32)
    return rgba[..., :3], rgba[..., 3:] / 255.0
