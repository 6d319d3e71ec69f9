"""Argument types of the command line: each turns one option's text into its value, or says in
one line what is wrong with it (argparse prints that line and exits with code 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """A problem the user can fix (bad option, missing file): printed as one line, exit code 2."""


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, not {text!r}") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320) or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be even, 16..7680 x 16..4320")
    return w, h


def _parsed(text: str, kind: Callable[[str], Any] = float, what: str = "a number") -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_float(text: str) -> float:
    v: float = _parsed(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return v


def parse_decimate(text: str) -> float | str:
    if text == "auto":
        return text
    v: float = _parsed(text, what="'auto' or a number")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 0 and less than 1")
    return v


def non_negative_float(text: str) -> float:
    v: float = _parsed(text)
    if not v >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return v


def port(text: str) -> int:
    v: int = _parsed(text, int, "a port number")
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: 0 to 65535 (0 picks a free one)")
    return v


def positive_int(text: str) -> int:
    v: int = _parsed(text, int, "a whole number")
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return v
