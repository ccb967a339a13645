"""Pick the device for training and inference: the GPU when cupy and CUDA work, else the CPU."""

from __future__ import annotations

from dataclasses import dataclass

from scripts.common.errors import UserError

GPU_FIX = (
    "pip install -r requirements/gpu.txt (cupy for your CUDA version), or set gpu_id -1 for the CPU"
)


@dataclass(frozen=True)
class Device:
    gpu_id: int  # -1 for the CPU
    description: str


def _gpu_count() -> tuple[int, str]:
    """How many CUDA devices cupy sees, and why none when it is zero."""
    try:
        import cupy
    except ImportError:
        return 0, "cupy is not installed"
    try:
        return int(cupy.cuda.runtime.getDeviceCount()), "no CUDA device found"
    except Exception as err:  # cupy raises CUDARuntimeError and friends when the driver is absent
        return 0, f"CUDA is not usable ({type(err).__name__})"


def resolve_device(gpu_id: str) -> Device:
    """Resolve the `gpu_id` var: 'auto', -1 (CPU) or a GPU index, e.g. resolve_device("auto")."""
    value = str(gpu_id).strip().lower()
    if value in ("", "auto"):
        count, why_none = _gpu_count()
        if count == 0:
            return Device(-1, f"CPU ({why_none}; gpu_id auto)")
        return Device(0, _describe_gpu(0) + " (gpu_id auto)")
    try:
        index = int(value)
    except ValueError:
        raise UserError(
            f"gpu_id '{gpu_id}' is not 'auto', -1 or a GPU index; e.g. 0 for the first GPU",
            setting="gpu_id",
        ) from None
    if index < 0:
        return Device(-1, "CPU (gpu_id -1)")
    count, why_none = _gpu_count()
    if index >= count:
        reason = why_none if count == 0 else f"only {count} GPU(s) visible"
        raise UserError(f"gpu_id {index} cannot be used: {reason}; {GPU_FIX}", setting="gpu_id")
    return Device(index, _describe_gpu(index))


def _describe_gpu(index: int) -> str:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return f"GPU {index}: {name}"


def activate(device: Device) -> None:
    """Make thinc and torch allocate on the chosen device."""
    if device.gpu_id >= 0:
        from thinc.api import require_gpu

        require_gpu(device.gpu_id)
