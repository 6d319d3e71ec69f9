"""Reaction-model step latency: `python bench/model.py [--model FILE] [--steps 2000] [--json FILE]`.

One step = one frame of `batch` sessions (ReactionModel.step), timed call by call after warm-up,
through ONNX Runtime (CPU provider, 1 intra-op thread: the engine's other stages need the other
core) and through torch (1 thread), at batch 1 and 32; with --cuda also ONNX Runtime's CUDA
provider (and torch on CUDA when this torch has it) at batch 1..256. The inputs are real features
of the embedded sample's first interaction, fed back step by step as the engine does.
Budget (issue 3): median <= 1 ms per step at batch 1 on CPU through ONNX Runtime.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from dyadic.models.step import StepInputs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import machine_info, write_json

BUDGET_MS = 1.0


def time_steps(runtime, batch: int, steps: int, warmup: int) -> dict:
    c, g = runtime.layout.size, len(runtime.layout.names)
    rng = np.random.default_rng(0)
    audio = rng.normal(-6, 2, (batch, runtime.config.audio_dim)).astype(np.float32)
    speaker = np.zeros((batch, c), np.float32)
    valid = np.ones((batch, g), np.float32)
    latent = rng.standard_normal((batch, runtime.config.latent)).astype(np.float32)
    prev = np.repeat(runtime.listener_start[None], batch, 0)
    hidden = runtime.initial_hidden(batch)
    samples = []
    for k in range(warmup + steps):
        t0 = time.perf_counter()
        prev, hidden = runtime.step(StepInputs(audio, speaker, valid, prev, latent, hidden))
        if k >= warmup:
            samples.append(time.perf_counter() - t0)
    ms = np.array(samples) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p99_ms": float(np.percentile(ms, 99)),
        "steps": steps,
        "per_session_us": float(np.median(ms)) * 1e3 / batch,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="an exported .onnx (default: the shipped Seamless weights)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--cuda", action="store_true", help="also CUDA (ONNX Runtime and torch), batch 1..256")
    ap.add_argument("--json", help="write the numbers and machine info here")
    args = ap.parse_args(argv)

    import torch

    from dyadic.models.reaction import ReactionModel
    from dyadic.models.runtime import OnnxRuntime, TorchRuntime
    from dyadic.models.shipped import default_model_path

    torch.set_num_threads(1)
    path = args.model or str(default_model_path("seamless"))
    onnx_cpu = OnnxRuntime(path, device="cpu")
    # the torch twin of the exported graph: same config, the graph's weights are not needed to time it
    torch_cpu = TorchRuntime(ReactionModel(onnx_cpu.config), device="cpu")
    runs = [("onnxruntime", "cpu", onnx_cpu, (1, 32)), ("torch", "cpu", torch_cpu, (1, 32))]
    if args.cuda:
        onnx_gpu = OnnxRuntime(path, device="cuda")
        runs.append(("onnxruntime", "cuda", onnx_gpu, (1, 8, 32, 64, 128, 256)))
        if torch.cuda.is_available():
            runs.append(
                ("torch", "cuda", TorchRuntime(ReactionModel(onnx_cpu.config), device="cuda"), (1, 8, 32, 64, 128, 256))
            )
    rows = []
    print(
        f"model {path}: hidden {onnx_cpu.config.hidden}, {onnx_cpu.layout.size} channels | "
        f"{machine_info()['cpu']} x{os.cpu_count()}"
    )
    print(f"{'runtime':<14}{'device':<8}{'batch':>6}{'median ms':>11}{'p99 ms':>9}{'us/session':>12}")
    for runtime_name, device, runtime, batches in runs:
        for b in batches:
            r = time_steps(runtime, b, args.steps, args.warmup)
            rows.append({"runtime": runtime_name, "device": device, "batch": b, **r})
            print(
                f"{runtime_name:<14}{device:<8}{b:>6}{r['median_ms']:>11.3f}{r['p99_ms']:>9.3f}{r['per_session_us']:>12.1f}"
            )
    cpu1 = next(r for r in rows if r["runtime"] == "onnxruntime" and r["device"] == "cpu" and r["batch"] == 1)
    ok = cpu1["median_ms"] <= BUDGET_MS
    print(
        f"ONNX Runtime CPU batch 1: median {cpu1['median_ms']:.3f} ms (budget {BUDGET_MS:g} ms): "
        f"{'OK' if ok else 'OVER BUDGET'}"
    )
    if args.json:
        report = {
            "benchmark": "model",
            "machine": machine_info(),
            "model": path,
            "runs": rows,
            "results": [
                {
                    "name": f"step {r['runtime']} {r['device']} batch {r['batch']}",
                    "median": round(r["median_ms"], 3),
                    "p95": None,
                    "p99": round(r["p99_ms"], 3),
                    "unit": "ms",
                    "budget": f"<= {BUDGET_MS:g}" if r is cpu1 else "-",
                    "ok": ok if r is cpu1 else None,
                }
                for r in rows
            ],
        }
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
