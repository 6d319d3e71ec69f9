"""The default model weights shipped with the package (models/weights/<dataset>.onnx).

They are trained on generated sample data only (`make weights` reproduces them); see README.md,
"The reaction model". For real use, train on the real dataset: `dyadic train --data DIR`.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).with_name("weights")


def default_model_path(dataset: str) -> Path:
    """The shipped model for a dataset's spec ("seamless" or "react")."""
    path = WEIGHTS_DIR / f"{dataset}.onnx"
    if not path.is_file():
        raise FileNotFoundError(
            f"no default model for {dataset!r} data at {path}; train one (`make weights`, or "
            f"`dyadic train --format {dataset}` then `dyadic export`) or pass --model FILE"
        )
    return path
