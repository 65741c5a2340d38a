"""Skeleton conditioning images against hand-checked pixels (DWPose/MimicMotion and Wan styles)."""

import numpy as np
import pytest

from persona.generate.condition import (
    OPENPOSE18,
    PoseKeypoints,
    draw_dwpose,
    draw_wan_pose,
    openpose18_from_coco23,
    skeleton_video,
    wan20_from_coco23,
    wan_stick_width,
)
from persona.perceive.keypoints import COCO23


def _body(points: dict[int, tuple[float, float, float]], n: int = 18) -> np.ndarray:
    body = np.zeros((n, 3))
    for i, p in points.items():
        body[i] = p
    return body


def _painted(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that are not black."""
    return image.any(-1)


def test_dwpose_limb_joint_face_and_hand_pixels():
    # On a 2160 px canvas nothing is resized, so pixels are exactly what the drawing made.
    # Neck (1) at (1000, 1000) and right shoulder (2) at (1200, 1000): limb 0, [255, 0, 0].
    body = _body({1: (1000, 1000, 1.0), 2: (1200, 1000, 1.0)})
    face = np.zeros((68, 3))
    face[7] = (500, 600, 0.5)  # one dot, score 0.5; the others sit at (0, 0) and are not drawn
    hands = np.zeros((2, 21, 3))
    hands[0, 0] = (300, 1800, 1.0)  # one left-hand point
    image = draw_dwpose(PoseKeypoints(body, hands=hands, face=face), 2160, 2160)
    assert image.shape == (2160, 2160, 3) and image.dtype == np.uint8
    # Limb centre: 255 x 0.6 = 153 on the first channel, moved to blue by the BGR->RGB swap.
    assert image[1000, 1100].tolist() == [0, 0, 153]
    # The ellipse is 4 px thick on each side: inside at +-4 rows, outside at +-6.
    assert image[1004, 1100].tolist() == [0, 0, 153] and image[996, 1100].tolist() == [0, 0, 153]
    assert image[1006, 1100].tolist() == [0, 0, 0] and image[994, 1100].tolist() == [0, 0, 0]
    # Joint circles are drawn after the dimming, in their own colours (swapped).
    assert image[1000, 1000].tolist() == [0, 85, 255]  # neck: [255, 85, 0]
    assert image[1000, 1200].tolist() == [0, 170, 255]  # right shoulder: [255, 170, 0]
    # Radius 4 circles: (x+4, y) inside, (x+6, y) would be the limb (dimmed), not the joint.
    assert image[1000, 996].tolist() == [0, 85, 255]
    # Face dot: grey int(0.5 * 255) = 127, radius 3.
    assert image[600, 500].tolist() == [127, 127, 127] and image[600, 503].tolist() == [127, 127, 127]
    assert image[600, 505].tolist() == [0, 0, 0]
    # Hand point: (0, 0, 255) drawn, red after the swap.
    assert image[1800, 300].tolist() == [255, 0, 0]
    # Nothing else: points at (0, 0) are skipped.
    assert not _painted(image[:400, :400]).any()


def test_dwpose_scores_scale_colours_and_gate_drawing():
    # Scores 0.8: limb int(255 * 0.64) = 163, dimmed int(97.8) = 97; joints int(c * 0.8).
    body = _body({1: (1000, 1000, 0.8), 2: (1200, 1000, 0.8)})
    image = draw_dwpose(PoseKeypoints(body), 2160, 2160)
    assert image[1000, 1100].tolist() == [0, 0, 97]
    assert image[1000, 1000].tolist() == [0, 68, 204]
    # Below 0.3: no limb and no joints at all.
    body = _body({1: (1000, 1000, 0.29), 2: (1200, 1000, 1.0)})
    image = draw_dwpose(PoseKeypoints(body), 2160, 2160)
    assert not _painted(image[:, :1150]).any()  # only the shoulder's circle is drawn
    assert _painted(image).sum() == _painted(draw_dwpose(PoseKeypoints(_body({2: (1200, 1000, 1.0)})), 2160, 2160)).sum()
    # Exactly 0.3: the limb is drawn (scores >= 0.3) but not the joints (scores > 0.3).
    body = _body({1: (1000, 1000, 0.3), 2: (1200, 1000, 0.3)})
    image = draw_dwpose(PoseKeypoints(body), 2160, 2160)
    assert image[1000, 1100].tolist() == [0, 0, int(int(255 * 0.3 * 0.3) * 0.6)]
    assert image[1000, 1000].tolist() == image[1000, 1100].tolist()  # the limb, no joint on top


def test_dwpose_draws_on_a_2160_canvas_then_resizes():
    # 540 x 1080 (short side 540): drawn 4x larger, then resized down with cv2.resize.
    body = _body({1: (200, 500, 1.0), 2: (300, 500, 1.0)})
    image = draw_dwpose(PoseKeypoints(body), 1080, 540)
    assert image.shape == (1080, 540, 3)
    assert image[500, 250].tolist() == [0, 0, 153]  # uniform inside the limb, so exact
    rows = np.nonzero(_painted(image[:, 250:251])[:, 0])[0]
    assert 2 <= len(rows) <= 4  # 4 px half-width on the big canvas -> about 1 px here


def test_wan_stick_width_and_colours():
    assert wan_stick_width(720, 1280) == 3 and wan_stick_width(720, 1280, "v2") == 2
    assert wan_stick_width(100, 100) == 1 and wan_stick_width(100, 100, "v2") == 1
    assert wan_stick_width(1600, 1200) == 6
    with pytest.raises(ValueError):
        wan_stick_width(100, 100, "v3")
    body = _body({1: (400, 300, 1.0), 2: (600, 300, 1.0)}, n=20)
    image = draw_wan_pose(PoseKeypoints(body), 720, 1280)
    # Limbs at int(0.6 x colour) with no channel swap; the limb is 2 x 3 + 1 = 7 rows thick.
    assert image[300, 500].tolist() == [153, 0, 0]
    rows = np.nonzero(_painted(image[:, 500:501])[:, 0])[0]
    assert rows.tolist() == list(range(297, 304))
    # Joints at full colour, radius = stick width.
    assert image[300, 400].tolist() == [255, 85, 0] and image[300, 403].tolist() == [255, 85, 0]
    # Threshold 0.5 (scores below are not drawn).
    body[2, 2] = 0.49
    image = draw_wan_pose(PoseKeypoints(body), 720, 1280)
    assert not _painted(image[:, 450:]).any()


def test_keypoint_mappings():
    coco = np.zeros((23, 3))
    for i, name in enumerate(COCO23):
        coco[i] = (10 * i, 100 + i, 0.9)
    op = openpose18_from_coco23(coco)
    assert op.shape == (18, 3)
    ls, rs = COCO23.index("left_shoulder"), COCO23.index("right_shoulder")
    assert np.allclose(op[1], [(coco[ls, 0] + coco[rs, 0]) / 2, (coco[ls, 1] + coco[rs, 1]) / 2, 1.0])
    for i, name in enumerate(OPENPOSE18):
        if name != "neck":
            assert np.allclose(op[i], coco[COCO23.index(name)]), name
    coco[rs, 2] = 0.2  # one shoulder unseen: DWPose gives the neck score 0
    assert openpose18_from_coco23(coco)[1, 2] == 0.0
    wan = wan20_from_coco23(coco)
    assert wan.shape == (20, 3)
    assert wan[1, 2] == pytest.approx((0.9 + 0.2) / 2)  # Wan averages the shoulders' rows
    lb, lsm = COCO23.index("left_big_toe"), COCO23.index("left_small_toe")
    assert np.allclose(wan[18], (coco[lb] + coco[lsm]) / 2)
    video = skeleton_video(np.stack([coco, coco]), 64, 48, style="wan")
    assert video.shape == (2, 64, 48, 3)
