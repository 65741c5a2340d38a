"""Person perception on the real example photos, with the real (embedded) mediapipe models.

The photos are those of examples/ (see examples/SOURCES.md); variants (crops, two people,
a small person) are built from them here. About 0.3 s per perceive_person call on 2 cores.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from persona.errors import PersonaError
from persona.perceive.person import (
    ANKLES,
    HIPS,
    NOSE,
    SHOULDERS,
    PerceiveConfig,
    Perception,
    perceive_person,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HALF = EXAMPLES / "person_half.png"  # head to knees (CC0)
BUST = EXAMPLES / "person_bust.jpg"  # head to chest (public domain)
FULL = sorted(EXAMPLES.glob("person_full.*"))  # head to feet, when one is bundled


def load(path: Path) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


@pytest.fixture(scope="module")
def half() -> np.ndarray:
    return load(HALF)


@pytest.fixture(scope="module")
def half_result(half) -> Perception:
    return perceive_person(half)


def check_well_formed(p: Perception, height: int, width: int) -> None:
    """Shapes, ranges and the 'outside the image means visibility 0' rule."""
    assert p.mask.shape == (height, width) and p.mask.dtype == np.float32
    assert 0.0 <= p.mask.min() and p.mask.max() <= 1.0
    assert p.body.shape == (33, 3) and np.isfinite(p.body).all()
    assert p.body_world.shape == (33, 3) and np.isfinite(p.body_world).all()
    assert np.abs(p.body_world).max() < 2.0  # metres, hip-centred
    vis = p.body[:, 2]
    assert (0.0 <= vis).all() and (vis <= 1.0).all()
    x, y = p.body[:, 0], p.body[:, 1]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    assert (vis[outside] == 0.0).all()
    x0, y0, x1, y1 = p.bbox
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    if p.face is not None:
        assert p.face.shape == (468, 2)
    for hand in (p.left_hand, p.right_hand):
        assert hand is None or hand.shape == (21, 2)
    assert p.people_found >= 1


def mask_metrics(p: Perception) -> tuple[float, float]:
    """(IoU of the mask with the convex hull of the seen landmarks, share of the torso
    quadrilateral covered by the mask)."""
    mask = p.mask > 0.5
    seen = p.body[p.body[:, 2] >= 0.5, :2].astype(np.int32)
    hull = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(seen), 1)
    torso = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(torso, p.body[[11, 12, 24, 23], :2].astype(np.int32), 1)
    hull, torso = hull.astype(bool), torso.astype(bool)
    iou = (mask & hull).sum() / (mask | hull).sum()
    return float(iou), float((mask & torso).sum() / torso.sum())


def test_half_body_example_is_accepted_as_cut_off(half, half_result):
    p = half_result
    check_well_formed(p, *half.shape[:2])
    assert p.people_found == 1
    vis = p.body[:, 2]
    assert vis[NOSE] >= 0.5 and (vis[list(SHOULDERS)] >= 0.5).all() and (vis[list(HIPS)] >= 0.5).all()
    # Upright: nose above the shoulders above the hips (y grows downwards).
    shoulders_y, hips_y = p.body[list(SHOULDERS), 1].mean(), p.body[list(HIPS), 1].mean()
    assert p.body[NOSE, 1] < shoulders_y < hips_y
    # The photo ends at the knees: the ankles are not seen, and the report says so.
    assert p.cut_off and (vis[list(ANKLES)] < 0.5).all()
    assert any("cut off" in w for w in p.warnings)
    # The face is found and lies around the nose.
    assert p.face is not None
    assert np.linalg.norm(p.face.mean(0) - p.body[NOSE, :2]) < 40
    iou, torso_covered = mask_metrics(p)
    assert torso_covered > 0.9
    assert iou > 0.35  # the hull also spans background between the arms and the body
    # The person fills most of the photo's height.
    assert (p.bbox[3] - p.bbox[1]) / half.shape[0] > 0.8


@pytest.mark.skipif(not FULL, reason="no head-to-feet example bundled (see examples/SOURCES.md)")
def test_full_body_example():
    rgb = load(FULL[0])
    p = perceive_person(rgb)
    check_well_formed(p, *rgb.shape[:2])
    assert not p.cut_off and (p.body[:, 2] >= 0.5).sum() >= 25
    nose_y = p.body[NOSE, 1]
    assert nose_y < p.body[list(HIPS), 1].mean() < p.body[list(ANKLES), 1].mean()


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_person_is_refused(kind):
    rgb = np.ones((384, 384, 3), np.float32)
    if kind == "noise":
        rgb = np.random.default_rng(0).random((384, 384, 3)).astype(np.float32)
    with pytest.raises(PersonaError, match="No person was found"):
        perceive_person(rgb)


def test_two_people_keeps_the_most_prominent(half):
    width = half.shape[1]
    p = perceive_person(np.concatenate([half, half], axis=1))
    check_well_formed(p, half.shape[0], 2 * width)
    assert p.people_found >= 2
    assert any("people found" in w for w in p.warnings)
    seen = p.body[p.body[:, 2] >= 0.5]
    in_left = (seen[:, 0] < width).all()
    in_right = (seen[:, 0] >= width).all()
    assert in_left or in_right
    # The other copy is masked out (but for a few columns at the split between the faces).
    mine, other = (p.mask[:, :width], p.mask[:, width:]) if in_left else (p.mask[:, width:], p.mask[:, :width])
    assert mine.mean() > 0.2 and other.mean() < 0.02


def test_cut_below_the_hips_is_accepted_with_a_warning(half):
    p = perceive_person(half[:400])  # the hips are at y ~ 320-345
    check_well_formed(p, 400, half.shape[1])
    assert p.cut_off
    assert any("cut off" in w for w in p.warnings)


def test_head_only_is_refused(half):
    with pytest.raises(PersonaError, match="hips visible"):
        perceive_person(half[40:230, 100:330])


def test_head_and_chest_photo_is_refused():
    with pytest.raises(PersonaError, match="hips visible"):
        perceive_person(load(BUST))


def test_tiny_person_is_refused(half):
    small = cv2.resize(half, (160, 160), interpolation=cv2.INTER_AREA)
    canvas = np.ones((1024, 1024, 3), np.float32)
    canvas[400:560, 400:560] = small
    with pytest.raises(PersonaError, match="too small"):
        perceive_person(canvas)


def test_too_small_threshold_is_a_config_knob(half):
    with pytest.raises(PersonaError, match="too small"):
        perceive_person(half, PerceiveConfig(min_person_height_fraction=0.95))


def test_alpha_hint_is_used_where_confident(half, half_result):
    alpha = np.zeros(half.shape[:2], np.float32)
    alpha[60:, :300] = 1.0  # a cut-out: the person's side of the photo
    p = perceive_person(half, alpha_hint=alpha)
    assert p.mask[alpha == 0].max() == 0.0 and p.mask[alpha == 1].min() == 1.0
    # An opaque alpha says nothing and leaves the segmentation as it is.
    opaque = perceive_person(half, alpha_hint=np.ones(half.shape[:2], np.float32))
    np.testing.assert_array_equal(opaque.mask, half_result.mask)


def test_concurrent_calls_agree(half, half_result):
    out: list[np.ndarray] = [None, None]  # type: ignore[list-item]

    def work(i: int) -> None:
        out[i] = perceive_person(half).body

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for body in out:
        np.testing.assert_allclose(body, half_result.body, atol=1e-4)
