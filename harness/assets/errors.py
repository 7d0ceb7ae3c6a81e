"""Errors of the asset layer (sync of asset sets to phones), in one place."""

from __future__ import annotations

from harness.device.errors import DeviceError


class InsufficientSpace(DeviceError):
    """The phone lacks the free space the push needs; nothing was pushed."""


class SyncError(DeviceError):
    """The phone refused a sync request (its FAIL message is in the error)."""


__all__ = ["InsufficientSpace", "SyncError"]
