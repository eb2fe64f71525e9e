"""A speck named a micro-lens about a z 12 µm above it is dirt by its own stack; a lens is never (speck_check)."""

import cv2
import numpy as np
import pytest

from appliance.scan.speck_check import MIN_GAIN, dark_blob_um, speck_instead

ZS = [float(z) for z in range(-16, 17, 2)]  # the stack about the lens search's z (0), 2 µm apart
UM_PER_PX = 0.14  # 40x on a 5.6 µm sensor
STEP_UM = 4.4  # the phase's step at 40x (PhaseSignRule.min_step_um)
SIZE = 160


def _stack(draw, focus_um: float, blur_px_per_um: float = 3.0, seed: int = 0) -> np.ndarray:
    """Planes of one object drawn by ``draw`` (a float image, 0 on glass), in focus at ``focus_um``."""
    rng = np.random.default_rng(seed)
    sharp = np.zeros((SIZE, SIZE), np.float32)
    draw(sharp)
    planes = []
    for z in ZS:
        sigma = 0.5 + blur_px_per_um * abs(z - focus_um)
        plane = 180.0 + cv2.GaussianBlur(sharp, (0, 0), sigma) + rng.normal(0.0, 1.5, sharp.shape)
        planes.append(np.clip(plane, 0, 255).astype(np.uint8))
    return np.stack(planes)


def _speck(image: np.ndarray) -> None:
    cv2.circle(image, (80, 80), 21, -120.0, -1)  # a 6 µm absorbing speck (42 px at 0.14 µm)


def _box_at_lens_z(planes: np.ndarray) -> tuple[int, int, int, int]:
    """The object's box as the blurred frame at the lens search's z shows it (twice and more the speck's size)."""
    k = ZS.index(0.0)
    dark = planes[k] < 176
    v, u = np.nonzero(dark)
    return (int(u.min()), int(v.min()), int(u.max()) + 1, int(v.max()) + 1)


def test_a_speck_sharp_12_um_below_the_lens_search_is_dirt_in_numbers():
    planes = _stack(_speck, focus_um=-12.0)
    box = _box_at_lens_z(planes)
    assert (box[2] - box[0]) * UM_PER_PX > 10.0  # at the lens's z its blur is larger than the gate's limit
    why = speck_instead(planes, ZS, box, 0.0, STEP_UM, UM_PER_PX)
    assert why is not None
    assert why["speck_at_um"] == -12.0 and why["speck_gain"] >= MIN_GAIN
    assert 5.0 <= why["speck_w_um"] <= 7.5 and 5.0 <= why["speck_h_um"] <= 7.5


def test_a_speck_whose_sharpest_plane_is_within_two_phase_steps_says_nothing():
    # within two steps the phase's planes lie either side of the object's focus: its sign was read fairly
    planes = _stack(_speck, focus_um=-8.0)
    assert speck_instead(planes, ZS, _box_at_lens_z(planes), 0.0, STEP_UM, UM_PER_PX) is None
    # ... and at a z that is the speck's own focus there is nothing to say either
    planes = _stack(_speck, focus_um=0.0)
    assert speck_instead(planes, ZS, (50, 50, 110, 110), 0.0, STEP_UM, UM_PER_PX) is None


def test_a_lens_larger_than_the_gates_limits_at_its_sharpest_plane_is_no_speck():
    def lens_rim(image):
        cv2.circle(image, (80, 80), 70, -90.0, 6)  # a 20 µm lens's dark rim

    planes = _stack(lens_rim, focus_um=-12.0)
    assert speck_instead(planes, ZS, (4, 4, 156, 156), 0.0, STEP_UM, UM_PER_PX) is None


def test_a_bright_focal_spot_is_no_speck():
    # a converging lens focuses the light to a small bright spot: small and sharp, but not dark dirt
    def spot(image):
        cv2.circle(image, (80, 80), 21, 60.0, -1)

    planes = _stack(spot, focus_um=-12.0)
    box = (40, 40, 120, 120)
    assert dark_blob_um(planes[ZS.index(-12.0)], box, UM_PER_PX) is None
    assert speck_instead(planes, ZS, box, 0.0, STEP_UM, UM_PER_PX) is None


def test_a_stack_too_short_or_an_empty_box_says_nothing():
    planes = _stack(_speck, focus_um=-12.0)
    assert speck_instead(planes[:2], ZS[:2], (40, 40, 120, 120), 0.0, STEP_UM, UM_PER_PX) is None
    assert speck_instead(planes, ZS[:5], (40, 40, 120, 120), 0.0, STEP_UM, UM_PER_PX) is None  # planes != zs
    glass = np.full((len(ZS), SIZE, SIZE), 180, np.uint8)
    assert dark_blob_um(glass[0], (40, 40, 120, 120), UM_PER_PX) is None
    assert speck_instead(glass, ZS, (40, 40, 120, 120), 0.0, STEP_UM, UM_PER_PX) is None


@pytest.mark.parametrize("upp", [0.14, 0.56])
def test_the_blob_size_is_in_micrometres(upp):
    image = np.full((SIZE, SIZE), 180, np.uint8)
    cv2.rectangle(image, (60, 70), (89, 79), 60, -1)  # 30 x 10 px, dark
    w, h = dark_blob_um(image, (40, 50, 110, 100), upp)
    # (the mask is a lightly blurred one, closed: a couple of pixels wider each side)
    assert w == pytest.approx(30 * upp, abs=5 * upp) and h == pytest.approx(10 * upp, abs=5 * upp)
