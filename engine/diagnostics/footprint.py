"""The process's physical footprint: what macOS counts against it (Activity Monitor's "Memory").

RSS misses what Core ML and Metal hold for a model (GPU buffers, compressed pages), and counts
the weights' read-only file pages that the system can drop at any time; the footprint is what the
kernel's memory pressure and jetsam look at. ``task_info(mach_task_self(), TASK_VM_INFO)`` reports
it as ``phys_footprint``. Elsewhere there is no such number: None.
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

TASK_VM_INFO = 22  # <mach/task_info.h>


class TaskVMInfo(ctypes.Structure):
    """``struct task_vm_info`` up to ``phys_footprint`` (revision 1; the kernel fills what fits)."""

    _fields_ = [
        ("virtual_size", ctypes.c_uint64),
        ("region_count", ctypes.c_int32),
        ("page_size", ctypes.c_int32),
        *(
            (name, ctypes.c_uint64)
            for name in (
                "resident_size", "resident_size_peak", "device", "device_peak", "internal",
                "internal_peak", "external", "external_peak", "reusable", "reusable_peak",
                "purgeable_volatile_pmap", "purgeable_volatile_resident",
                "purgeable_volatile_virtual", "compressed", "compressed_peak",
                "compressed_lifetime", "phys_footprint",
            )
        ),
    ]  # fmt: skip


def phys_footprint() -> int | None:
    """This process's physical footprint in bytes (macOS); None elsewhere or when it fails."""
    if sys.platform != "darwin":
        return None
    try:
        libc = ctypes.CDLL(None)
        task = ctypes.c_uint32.in_dll(libc, "mach_task_self_")  # what mach_task_self() returns
        info = TaskVMInfo()
        count = ctypes.c_uint32(ctypes.sizeof(TaskVMInfo) // ctypes.sizeof(ctypes.c_uint32))
        result = libc.task_info(task, TASK_VM_INFO, ctypes.byref(info), ctypes.byref(count))
    except (OSError, ValueError, AttributeError) as error:
        logger.warning("task_info is not reachable: %s", error)
        return None
    if result != 0:
        logger.warning("task_info(TASK_VM_INFO) failed: kern_return_t %d", result)
        return None
    return int(info.phys_footprint)
