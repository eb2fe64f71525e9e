"""The phase's sign is read only from planes the focus drive put where they were asked (``ScanRunner._sign_at``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from appliance.scan.protocols import Detection
from appliance.scan.runner import ScanRunner

FOCUS = 100.0
BOX = (40, 40, 60, 60)


class _Drive:
    """A focus drive that lands on multiples of ``step_um`` (a servo's whole degrees) and reports where it is."""

    def __init__(self, step_um: float) -> None:
        self.step, self.z = step_um, FOCUS

    def focus_to_um(self, z: float) -> None:
        self.z = round(z / self.step) * self.step

    def position_um(self) -> SimpleNamespace:
        return SimpleNamespace(x_um=0.0, y_um=0.0, z_um=self.z)


class _Lens:
    """A converging object: its centre brightens above its focus and darkens below (camera noise on top)."""

    def __init__(self, drive: _Drive) -> None:
        self.drive, self.rng = drive, np.random.default_rng(1)

    def capture(self) -> SimpleNamespace:
        img = np.full((100, 100), 150.0) + self.rng.normal(0, 1.0, (100, 100))
        img[45:55, 45:55] += 20.0 * (self.drive.z - FOCUS)
        return SimpleNamespace(image=np.clip(img, 0, 255).astype(np.uint8))


def _sign(drive_step_um: float, step_um: float) -> float | None:
    drive = _Drive(drive_step_um)
    runner = SimpleNamespace(stage=drive, camera=_Lens(drive))
    det = Detection(BOX, "debris", "debris", 0.5)
    sign = ScanRunner._sign_at(runner, det, FOCUS, step_um)  # type: ignore[arg-type]
    assert drive.z == FOCUS  # back at focus either way
    return sign


def test_planes_the_drive_puts_either_side_of_focus_read_the_sign() -> None:
    sign = _sign(0.5, 0.6)  # lands 0.5 µm either side
    assert sign is not None and sign > 0.5


@pytest.mark.parametrize("drive_step_um", [2.0, 4.0])
def test_a_drive_too_coarse_for_the_planes_reads_no_sign(drive_step_um: float) -> None:
    # a servo of 2 µm per degree at 40x (0.6 µm planes): both land on the focus, and two frames of one plane
    # read noise as a sign (held-out seed 5309: eight dust specks called micro-lenses)
    assert _sign(drive_step_um, 0.6) is None
