"""Errors the dataset readers raise when one file, asked for explicitly, cannot be used."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file or id is unusable; the message names the file (or id) and the field."""
