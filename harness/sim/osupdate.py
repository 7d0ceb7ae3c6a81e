"""A phone OS update on a virtual phone: a new build fingerprint, maybe a new speed.

A real update (an OTA) installs a new system image: ``ro.build.id``,
``ro.build.version.incremental`` and usually ``ro.build.version.security_patch`` change, and
with them ``ro.build.fingerprint`` (``brand/product/device:release/id/incremental:type/tags``,
AOSP ``build/make/tools/buildinfo.sh``); the GPU driver and the kernel's DVFS tables often
come with it, so the phone's speed changes too. Then the phone reboots.

:func:`os_update` does that to a virtual phone: it rewrites the phone's profile (in
``<ctl>/profile.json``, which the simulated binaries read at every start) and
``/system/build.prop`` (what ``getprop`` answers), multiplies the profile's
``speed_factor`` by ``speed``, and starts a new boot (``boot_wall``: the boot offset of
:class:`harness.sim.speed.NoiseModel` is drawn again). The adb connection is kept: harness
reads the fingerprint at every run, and dropped phones are tested elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from harness.sim import devtools
from harness.sim.errors import SimError
from harness.sim.profiles import PhoneProfile
from harness.sim.state import PROFILE_FILE


@dataclass(frozen=True)
class OsUpdate:
    """What changed: the fingerprint before and after, and the new speed factor."""

    serial: str
    before: str
    after: str
    speed_factor: float


def _next_incremental(incremental: str) -> str:
    """The next build number: the trailing digits + 1 (``...AXE1`` -> ``...AXE2``), else
    ``.1`` appended."""
    head = incremental.rstrip("0123456789")
    digits = incremental[len(head):]
    return f"{head}{int(digits) + 1:0{len(digits)}d}" if digits else f"{incremental}.1"


def os_update(ctl: Path, root: Path, *, build_id: str | None = None,
              incremental: str | None = None, security_patch: str | None = None,
              speed: float = 1.0) -> OsUpdate:
    """Update the phone whose state is in ``ctl`` and filesystem in ``root`` (see the module
    docstring). Defaults: the same build id, the next incremental, the same patch level."""
    if not speed > 0:
        raise SimError(f"speed must be positive, got {speed}")
    path = ctl / PROFILE_FILE
    try:
        meta = json.loads(path.read_text())
        old = PhoneProfile.from_dict(meta["profile"], str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise SimError(f"{path}: cannot read the phone's profile: {exc}") from None
    new = dataclasses.replace(
        old, build_id=build_id or old.build_id,
        build_incremental=incremental or _next_incremental(old.build_incremental),
        security_patch=security_patch or old.security_patch,
        speed_factor=old.speed_factor * speed)
    if new.fingerprint() == old.fingerprint():
        raise SimError(f"the update would not change the fingerprint {old.fingerprint()}")
    meta.update(profile=new.to_dict(), boot_wall=time.time())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(meta))
    tmp.replace(path)
    serial = str(meta.get("serial", ""))
    (root / devtools.BUILD_PROP).write_text(devtools.build_prop_text(new.props(serial)))
    return OsUpdate(serial, old.fingerprint(), new.fingerprint(), new.speed_factor)
