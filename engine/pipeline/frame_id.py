"""A frame id drawn into the pixels, to cross-check which frame a client really presented.

`dyadic profile` maps each frame a browser presents to the server's frame through the RTP clock;
with `{"type": "trace", "on": true, "frame_id": true}` the session also writes the frame's index
into the bottom-left corner of the picture, and the page reads it back from the presented frame
(client/latency.js), so the two mappings can be compared frame by frame.

The code is a row of CELL x CELL squares on the bottom edge: a white and a black guard cell, then
BITS cells of the index, least significant bit first (white = 1). CELL = 16 puts every square on
its own H.264 macroblock (480 = 30 x 16), so even ultrafast x264 keeps them far from the 50 %
threshold; the reader averages the inner half of each cell. Not drawn unless asked: it is visible.
"""

from __future__ import annotations

import numpy as np

CELL = 16
BITS = 16  # the index modulo 65536: 36 minutes at 30 FPS before it wraps
CELLS = BITS + 2
WHITE, BLACK = 235, 16  # video range: survives the RGB -> YUV -> RGB round trip unclipped
MODULO = 1 << BITS


def fits(width: int, height: int) -> bool:
    return width >= CELLS * CELL and height >= 2 * CELL


def stamp(rgb: np.ndarray, index: int) -> None:
    """Write `index` (mod 65536) into the bottom-left of rgb (H, W, 3) uint8, in place."""
    h, w = rgb.shape[:2]
    if not fits(w, h):
        return
    bits = [1, 0] + [(index >> b) & 1 for b in range(BITS)]
    row = rgb[h - CELL : h]
    for i, bit in enumerate(bits):
        row[:, i * CELL : (i + 1) * CELL] = WHITE if bit else BLACK


def read(rgb: np.ndarray) -> int | None:
    """The index drawn by stamp(), or None when the guard cells are not there."""
    h, w = rgb.shape[:2]
    if not fits(w, h):
        return None
    q = CELL // 4
    luma = rgb[h - CELL + q : h - q].astype(np.float32).mean(axis=(0, 2))  # the inner rows, per column
    levels = [luma[i * CELL + q : (i + 1) * CELL - q].mean() for i in range(CELLS)]
    bits = [level > (WHITE + BLACK) / 2 for level in levels]
    if not bits[0] or bits[1]:
        return None
    return sum(1 << b for b, on in enumerate(bits[2:]) if on)
