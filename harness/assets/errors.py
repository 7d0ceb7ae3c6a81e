"""Errors of the asset layer (sync of asset sets to phones), in one place."""

from __future__ import annotations

from harness.device.errors import DeviceError


class InsufficientSpace(DeviceError):
    """The phone lacks the free space the push needs; nothing was pushed."""


class SyncError(DeviceError):
    """The phone refused a sync request (its FAIL message is in the error)."""


class SyncConnectionLost(SyncError):
    """The sync connection broke (phone or adb server gone); nothing was refused."""


__all__ = ["InsufficientSpace", "SyncConnectionLost", "SyncError"]
