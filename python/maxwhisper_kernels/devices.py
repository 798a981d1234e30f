"""Where graphs run: the host CPU or the first GPU MAX finds, and moving
NumPy arrays to and from it."""

from __future__ import annotations

import numpy as np
from max.driver import CPU, Accelerator, Buffer, Device, accelerator_count


class DeviceUnavailableError(ValueError):
    """The requested device cannot run the model; the message says why."""


def gpu_device(name: str = "gpu") -> Device:
    """The first GPU MAX sees, or DeviceUnavailableError saying why there
    is none (no GPU, or no usable driver: MAX reports the latter as an
    error or as a count of 0)."""
    try:
        count = accelerator_count()
    except Exception as error:  # noqa: BLE001 - any driver failure means "no GPU here"
        raise DeviceUnavailableError(f"device {name!r}: the GPU driver could not be queried ({error})") from error
    if count == 0:
        raise DeviceUnavailableError(
            f"device {name!r}: MAX finds no GPU on this machine (max.driver.accelerator_count() == 0); "
            "use device='cpu'"
        )
    try:
        return Accelerator()
    except Exception as error:  # noqa: BLE001
        raise DeviceUnavailableError(f"device {name!r}: the GPU could not be opened ({error})") from error


def to_device(array: np.ndarray, device: Device) -> Buffer:
    """A graph input on device: shares the array's memory on the host, a
    copy on a GPU."""
    buffer = Buffer.from_numpy(np.ascontiguousarray(array))
    return buffer if device.is_host else buffer.to(device)


def to_host(buffer: Buffer) -> np.ndarray:
    return buffer.to_numpy() if buffer.device.is_host else buffer.to(CPU()).to_numpy()
