"""Audio and video I/O through PyAV: the only place the readers and the generator touch codecs.

Every reader accepts a path or a seekable binary file object (a tar member), so extracted files and
webdataset tars go through the same code.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from .errors import DatasetError
from .interaction import AUDIO_RATE

Source = str | Path | BinaryIO


def read_audio(source: Source, rate: int = AUDIO_RATE) -> np.ndarray:
    """Decode the first audio stream to mono float32 at `rate` (resampled by PyAV when needed)."""
    with av.open(source if not isinstance(source, Path) else str(source), "r") as container:
        if not container.streams.audio:
            return np.zeros(0, np.float32)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def video_rate(source: Source) -> Fraction:
    """The first video stream's average frame rate (30/1, 30000/1001, 45000/1501, ...).

    Raises ValueError when the file has no video stream or no usable rate (empty placeholders).
    """
    with av.open(source if not isinstance(source, Path) else str(source)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
    if not rate or rate <= 0:
        raise ValueError("no frame rate")
    return Fraction(rate)


def write_wav(target: Source, audio: np.ndarray, rate: int = AUDIO_RATE) -> None:
    """Write mono float audio in [-1, 1] as 16-bit PCM WAV (the datasets' format)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)
    with av.open(target if not isinstance(target, Path) else str(target), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        block = 4096
        for start in range(0, len(pcm), block):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + block], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def write_mp4(target: Source, frames: Iterable[np.ndarray], rate: Fraction, size: tuple[int, int]) -> None:
    """Encode RGB uint8 frames (H, W, 3) as H.264 at exactly `rate` frames per second."""
    width, height = size
    with av.open(target if not isinstance(target, Path) else str(target), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "32", "threads": "1"}  # 1 thread: same bytes every run
        stream.codec_context.time_base = 1 / rate
        for k, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def empty_mp4_bytes() -> bytes:
    """A 261-byte MP4 with a movie header and no tracks, like the dataset's empty placeholders."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
    mvhd = _box(
        b"mvhd",
        bytes(4)
        + bytes(8)
        + struct.pack(">II", 1000, 0)
        + struct.pack(">IH", 0x10000, 0x100)
        + bytes(10)
        + struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
        + bytes(24)
        + struct.pack(">I", 1),
    )
    head = ftyp + _box(b"free", b"") + _box(b"mdat", b"")
    pad = 261 - len(head) - 8 - len(mvhd) - 8
    return head + _box(b"moov", mvhd + _box(b"udta", b"\0" * pad))


def empty_wav_bytes(rate: int = AUDIO_RATE) -> bytes:
    """A 58-byte WAV with a header and no samples (fmt with cbSize, fact, empty data), as placeholders have."""
    fmt = struct.pack("<HHIIHHH", 1, 1, rate, rate * 2, 2, 16, 0)
    body = b"WAVE" + _box_le(b"fmt ", fmt) + _box_le(b"fact", struct.pack("<I", 0)) + _box_le(b"data", b"")
    return _box_le(b"RIFF", body)


def _box_le(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload


def lazy_audio(opener: Callable[[], Source], name: str, rate: int = AUDIO_RATE) -> Callable[[], np.ndarray]:
    """A loader that decodes on first call and caches the result (audio is read only when replayed).
    A file that does not decode raises DatasetError naming `name`."""
    cache: list[np.ndarray] = []

    def load() -> np.ndarray:
        if not cache:
            source = opener()
            try:
                cache.append(read_audio(source, rate))
            except (av.FFmpegError, ValueError, OSError) as exc:
                raise DatasetError(f"{name}: audio does not decode ({exc})") from None
            finally:
                if hasattr(source, "close"):
                    source.close()
        return cache[0]

    return load
