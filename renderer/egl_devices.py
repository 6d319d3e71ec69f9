"""Which EGL device renders for the GPU that Ray (or a user) assigned through CUDA_VISIBLE_DEVICES.

Ray gives a task its GPUs by setting CUDA_VISIBLE_DEVICES to their indices in the NVIDIA driver's
order (nvidia-smi's: by PCI bus). pyrender renders on the EGL device numbered EGL_DEVICE_ID, in the
order eglQueryDevicesEXT lists them, which is the EGL vendor libraries' order and may hold software
devices (Mesa's llvmpipe) too: index 2 in one is not index 2 in the other. Both sides know each
GPU's PCI bus address, so the mapping goes through it:

    CUDA index -> PCI bus address (the driver's GPU list, /proc/driver/nvidia/gpus/, sorted)
    EGL device -> its DRM file (EGL_DRM_DEVICE_FILE_EXT) -> /sys/class/drm/cardN/device -> PCI address

`egl_device_for_cuda` is the pure mapping (tested); `gpu_bus_ids` and `egl_bus_ids` read this
machine; `use_assigned_gpu` sets EGL_DEVICE_ID for the renderer a task is about to create.
"""

from __future__ import annotations

import os
from pathlib import Path

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def normalise_bus_id(bus_id: str) -> str:
    """'00000000:3B:00.0' (nvidia-smi) or '0000:3b:00.0' (sysfs, the driver's folder names) ->
    '0000:3b:00.0'."""
    text = bus_id.strip().lower()
    try:
        domain, bus, device = text.split(":")
        return f"{int(domain, 16):04x}:{int(bus, 16):02x}:{device}"
    except ValueError:
        return text


def egl_device_for_cuda(visible: str | None, gpu_bus_ids: list[str], egl_bus_ids: list[str | None]) -> int | None:
    """The EGL device index of the first GPU in `visible` (a CUDA_VISIBLE_DEVICES value: indices
    into `gpu_bus_ids`, the driver's order), or None when there is nothing to map (no variable, no
    GPU, or a GPU no EGL device stands for: the default device then renders)."""
    if not visible or not gpu_bus_ids:
        return None
    first = visible.split(",")[0].strip()
    if not first.isdigit() or int(first) >= len(gpu_bus_ids):
        return None  # GPU-UUIDs or MIG names: not an index this mapping can follow
    wanted = normalise_bus_id(gpu_bus_ids[int(first)])
    for index, bus_id in enumerate(egl_bus_ids):
        if bus_id is not None and normalise_bus_id(bus_id) == wanted:
            return index
    return None


def gpu_bus_ids() -> list[str]:
    """PCI addresses of this machine's NVIDIA GPUs in the driver's order (empty without one)."""
    try:
        return sorted(p.name for p in NVIDIA_GPUS.iterdir())
    except OSError:
        return []


def egl_bus_ids() -> list[str | None]:
    """PCI address of every EGL device in EGL's order (None: no DRM file, e.g. a software device).
    Selects the EGL platform for this process (gl.py) if nothing chose one yet."""
    from .gl import import_pyrender

    import_pyrender("egl")
    from pyrender.platforms import egl

    out: list[str | None] = []
    for device in egl.query_devices():
        drm = device.name  # its DRM file, /dev/dri/cardN; None for software rasterisers
        out.append(Path(f"/sys/class/drm/{Path(drm).name}/device").resolve().name if drm else None)
    return out


def use_assigned_gpu() -> int | None:
    """Set EGL_DEVICE_ID to the EGL device of this process's first CUDA-visible GPU; returns it."""
    gpus = gpu_bus_ids()
    if not gpus or not os.environ.get("CUDA_VISIBLE_DEVICES"):
        return None
    index = egl_device_for_cuda(os.environ["CUDA_VISIBLE_DEVICES"], gpus, egl_bus_ids())
    if index is not None:
        os.environ["EGL_DEVICE_ID"] = str(index)
    return index
