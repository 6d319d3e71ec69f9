"""The benchmarks' machine description lives in the package (the profiler reports it too)."""
from dyadic.engine.machine import cpu_model, gpu_name, machine_info  # noqa: F401
