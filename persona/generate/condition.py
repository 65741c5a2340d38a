"""Skeleton conditioning images: body keypoints drawn the way pose-guided video models saw
them in training.

Two styles, each a copy of its model's own drawing code (read in the sources named below),
because a conditioning network only understands the pictures it was trained on:

- `draw_dwpose` (MimicMotion: `mimicmotion/dwpose/util.py::draw_pose`, after DWPose and
  ControlNet's OpenPose drawing). OpenPose-18 body; a black canvas whose short side is 2160
  px; 17 limbs as filled ellipses (`cv2.ellipse2Poly` + `cv2.fillConvexPoly`, half-axes
  (length/2, 4)) in colour x conf_a x conf_b, skipped when either score is below 0.3; the
  whole canvas x 0.6; then body joints (radius 4, colour x score, drawn when score > 0.3),
  hands (20 edges, thickness 2, HSV colours x score; points radius 4 in (0, 0, score)), face
  dots (radius 3, grey score); `cv2.resize` to H x W, then `COLOR_BGR2RGB`, which swaps red
  and blue relative to the colour tuples (limb 0 comes out blue). (One quirk is not copied:
  for a score of exactly 0.3 the source draws the limb to the person's last point, because
  its index table marks that point -1; here the limb goes to the point itself.)
- `draw_wan_pose` (Wan2.2-Animate: `wan/modules/animate/preprocess/human_visualization.py`,
  `draw_aapose_new`). 20 body points (OpenPose-18 + a toe per foot), 19 limbs with a stick
  width from the image size, limbs at 0.6 x colour, joints at full colour, hands; drawn
  directly at H x W in RGB, no face dots. Wan's default width "v1" is
  max(int(min(H, W) / 200), 1); its newer preprocessing (`draw_aapose_by_meta_new`)
  defaults to "v2", one pixel less (at least 1). Both are offered.

Keypoints come in pixels of the target image with a score in [0, 1]; use
`openpose18_from_coco23` / `wan20_from_coco23` to map the body model's COCO-23 keypoints.
Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from persona.perceive.keypoints import COCO23

# OpenPose-18 order (index: name), as DWPose's `Wholebody` builds it from COCO-WholeBody.
OPENPOSE18 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
]  # fmt: skip
WAN20 = OPENPOSE18 + ["left_toe", "right_toe"]

# 1-based pairs, as in the sources; DWPose draws the first 17, Wan all 19 (the last two are
# its feet: left ankle - left toe, right ankle - right toe).
LIMBS_1BASED = [
    [2, 3], [2, 6], [3, 4], [4, 5], [6, 7], [7, 8], [2, 9], [9, 10], [10, 11], [2, 12], [12, 13], [13, 14],
    [2, 1], [1, 15], [15, 17], [1, 16], [16, 18],
]  # fmt: skip
WAN_LIMBS_1BASED = LIMBS_1BASED + [[14, 19], [11, 20]]
COLORS = [
    [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
    [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
    [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
]  # fmt: skip
WAN_COLORS = COLORS + [[200, 200, 0], [100, 100, 0]]
HAND_EDGES = [
    [0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [0, 9], [9, 10],
    [10, 11], [11, 12], [0, 13], [13, 14], [14, 15], [15, 16], [0, 17], [17, 18], [18, 19], [19, 20],
]  # fmt: skip

DWPOSE_CANVAS_SHORT_SIDE = 2160
DWPOSE_STICK_WIDTH = 4  # limb ellipse half-width on the 2160 px canvas
BODY_SCORE_MIN = 0.3  # limbs need both scores >= this; joints need score > this
_EPS = 0.01  # hand/face points are drawn when their integer pixel x, y exceed this


@dataclass
class PoseKeypoints:
    """One person's 2D keypoints in one image: x, y in pixels of that image, then a score.

    body: (18, 3) OpenPose-18 (or (20, 3) with Wan's toes); hands: (2, 21, 3) left then right
    hand (OpenPose hand order), or None; face: (68, 3) iBUG-68 points, or None.
    """

    body: np.ndarray
    hands: np.ndarray | None = None
    face: np.ndarray | None = None


# --- from the body model's keypoints ----------------------------------------------------------

_C = {name: i for i, name in enumerate(COCO23)}
_SAME = [n for n in OPENPOSE18 if n in _C]  # every point but the neck


def openpose18_from_coco23(keypoints: np.ndarray) -> np.ndarray:
    """keypoints: (..., 23, 3) COCO-23 x, y, score -> (..., 18, 3) OpenPose-18.

    The neck is the mean of the shoulders with score 1 when both shoulders score > 0.3,
    else 0 (DWPose's `Wholebody`)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    out = np.zeros(keypoints.shape[:-2] + (18, 3))
    for i, name in enumerate(OPENPOSE18):
        if name in _C:
            out[..., i, :] = keypoints[..., _C[name], :]
    ls, rs = keypoints[..., _C["left_shoulder"], :], keypoints[..., _C["right_shoulder"], :]
    out[..., 1, :2] = (ls[..., :2] + rs[..., :2]) / 2
    out[..., 1, 2] = ((ls[..., 2] > BODY_SCORE_MIN) & (rs[..., 2] > BODY_SCORE_MIN)).astype(np.float64)
    return out


def wan20_from_coco23(keypoints: np.ndarray) -> np.ndarray:
    """keypoints: (..., 23, 3) COCO-23 -> (..., 20, 3): OpenPose-18 plus left and right toe,
    each toe the mean of its foot's big and small toe (Wan's `split_pose2d_kps_to_aa`; the
    neck's score there is the mean of the shoulders' too)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    body = openpose18_from_coco23(keypoints)
    ls, rs = keypoints[..., _C["left_shoulder"], 2], keypoints[..., _C["right_shoulder"], 2]
    body[..., 1, 2] = (ls + rs) / 2
    toes = [
        (keypoints[..., _C[f"{side}_big_toe"], :] + keypoints[..., _C[f"{side}_small_toe"], :]) / 2
        for side in ("left", "right")
    ]
    return np.concatenate([body, np.stack(toes, -2)], -2)


# --- MimicMotion / DWPose ---------------------------------------------------------------------


def _scaled_colour(colour, alpha: float) -> list[int]:
    return [int(c * alpha) for c in colour]


def _draw_dwpose_body(canvas: np.ndarray, body: np.ndarray) -> np.ndarray:
    """body: (18, 3) with x, y normalised to [0, 1]. Returns the new (dimmed) canvas."""
    H, W, _ = canvas.shape
    for i in range(17):
        a, b = (k - 1 for k in LIMBS_1BASED[i])
        if body[a, 2] < BODY_SCORE_MIN or body[b, 2] < BODY_SCORE_MIN:
            continue
        Y = np.array([body[a, 0], body[b, 0]]) * float(W)  # the sources' naming: Y holds x
        X = np.array([body[a, 1], body[b, 1]]) * float(H)
        mX, mY = np.mean(X), np.mean(Y)
        length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
        polygon = cv2.ellipse2Poly((int(mY), int(mX)), (int(length / 2), DWPOSE_STICK_WIDTH), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, _scaled_colour(COLORS[i], body[a, 2] * body[b, 2]))
    canvas = (canvas * 0.6).astype(np.uint8)
    for i in range(18):
        if not body[i, 2] > BODY_SCORE_MIN:
            continue
        x, y = int(body[i, 0] * W), int(body[i, 1] * H)
        cv2.circle(canvas, (x, y), 4, _scaled_colour(COLORS[i], body[i, 2]), thickness=-1)
    return canvas


def _draw_dwpose_hands(canvas: np.ndarray, hands: np.ndarray) -> None:
    """hands: (2, 21, 3) normalised x, y and score."""
    H, W, _ = canvas.shape
    for hand in hands:
        for ie, (e1, e2) in enumerate(HAND_EDGES):
            x1, y1 = int(hand[e1, 0] * W), int(hand[e1, 1] * H)
            x2, y2 = int(hand[e2, 0] * W), int(hand[e2, 1] * H)
            score = int(hand[e1, 2] * hand[e2, 2] * 255)
            if x1 > _EPS and y1 > _EPS and x2 > _EPS and y2 > _EPS:
                colour = [c * score for c in colorsys.hsv_to_rgb(ie / float(len(HAND_EDGES)), 1.0, 1.0)]
                cv2.line(canvas, (x1, y1), (x2, y2), colour, thickness=2)
        for x, y, s in hand:
            x, y = int(x * W), int(y * H)
            if x > _EPS and y > _EPS:
                cv2.circle(canvas, (x, y), 4, (0, 0, int(s * 255)), thickness=-1)


def _draw_dwpose_face(canvas: np.ndarray, face: np.ndarray) -> None:
    """face: (68, 3) normalised x, y and score."""
    H, W, _ = canvas.shape
    for x, y, s in face:
        x, y = int(x * W), int(y * H)
        conf = int(s * 255)
        if x > _EPS and y > _EPS:
            cv2.circle(canvas, (x, y), 3, (conf, conf, conf), thickness=-1)


def _normalised(points: np.ndarray, width: int, height: int) -> np.ndarray:
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] /= width
    out[..., 1] /= height
    return out


def draw_dwpose(pose: PoseKeypoints, height: int, width: int) -> np.ndarray:
    """The MimicMotion/DWPose conditioning image (H, W, 3) uint8 RGB of one person."""
    if pose.body.shape != (18, 3):
        raise ValueError(f"draw_dwpose expects an (18, 3) OpenPose-18 body, got {pose.body.shape}")
    short = min(height, width)
    sr = (DWPOSE_CANVAS_SHORT_SIDE / short) if short != DWPOSE_CANVAS_SHORT_SIDE else 1
    canvas = np.zeros((int(height * sr), int(width * sr), 3), dtype=np.uint8)
    canvas = _draw_dwpose_body(canvas, _normalised(pose.body, width, height))
    if pose.hands is not None:
        _draw_dwpose_hands(canvas, _normalised(pose.hands, width, height))
    if pose.face is not None:
        _draw_dwpose_face(canvas, _normalised(pose.face, width, height))
    return cv2.cvtColor(cv2.resize(canvas, (width, height)), cv2.COLOR_BGR2RGB)


# --- Wan2.2-Animate ---------------------------------------------------------------------------


def wan_stick_width(height: int, width: int, version: str = "v1") -> int:
    """Wan's body stick width in pixels: v1 max(int(min(H, W) / 200), 1); v2 one less."""
    if version == "v1":
        return max(int(min(height, width) / 200), 1)
    if version == "v2":
        return max(int(min(height, width) / 200) - 1, 1)
    raise ValueError(f"unknown Wan stick width version {version!r} (use 'v1' or 'v2')")


def draw_wan_pose(
    pose: PoseKeypoints, height: int, width: int, threshold: float = 0.5, stick_width: str = "v1"
) -> np.ndarray:
    """The Wan-Animate skeleton image (H, W, 3) uint8 RGB: body (20 points) and hands."""
    body = np.asarray(pose.body, dtype=np.float64)
    if body.shape != (20, 3):
        raise ValueError(f"draw_wan_pose expects a (20, 3) body (OpenPose-18 + toes), got {body.shape}")
    img = np.zeros((height, width, 3), dtype=np.uint8)
    stickwidth = wan_stick_width(height, width, stick_width)
    for (k1, k2), colour in zip(WAN_LIMBS_1BASED, WAN_COLORS):
        p1, p2 = body[k1 - 1], body[k2 - 1]
        if p1[-1] < threshold or p2[-1] < threshold:
            continue
        Y = np.array([p1[0], p2[0]])
        X = np.array([p1[1], p2[1]])
        mX, mY = np.mean(X), np.mean(Y)
        length = ((X[0] - X[1]) ** 2 + (Y[0] - Y[1]) ** 2) ** 0.5
        angle = math.degrees(math.atan2(X[0] - X[1], Y[0] - Y[1]))
        polygon = cv2.ellipse2Poly((int(mY), int(mX)), (int(length / 2), stickwidth), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(img, polygon, [int(float(c) * 0.6) for c in colour])
    for point, colour in zip(body, WAN_COLORS):
        if point[-1] < threshold:
            continue
        cv2.circle(img, (int(point[0]), int(point[1])), stickwidth, colour, thickness=-1)
    if pose.hands is not None:
        hand_width = stickwidth if stick_width == "v1" else max(stickwidth // 2, 1)
        for hand in np.asarray(pose.hands, dtype=np.float64):
            _draw_wan_hand(img, hand, threshold, hand_width)
    return img


def _draw_wan_hand(img: np.ndarray, hand: np.ndarray, threshold: float, stickwidth: int) -> None:
    """Wan's `draw_handpose(_new)`: hand (21, 3) in pixels."""
    for ie, (e1, e2) in enumerate(HAND_EDGES):
        k1, k2 = hand[e1], hand[e2]
        if k1[2] < threshold or k2[2] < threshold:
            continue
        x1, y1, x2, y2 = int(k1[0]), int(k1[1]), int(k2[0]), int(k2[1])
        if x1 > _EPS and y1 > _EPS and x2 > _EPS and y2 > _EPS:
            colour = [c * 255 for c in colorsys.hsv_to_rgb(ie / float(len(HAND_EDGES)), 1.0, 1.0)]
            cv2.line(img, (x1, y1), (x2, y2), colour, thickness=stickwidth)
    for x, y, s in hand:
        if s < threshold:
            continue
        x, y = int(x), int(y)
        if x > _EPS and y > _EPS:
            cv2.circle(img, (x, y), stickwidth, (0, 0, 255), thickness=-1)


# --- videos -----------------------------------------------------------------------------------

STYLES = ("dwpose", "wan")


def skeleton_video(keypoints: np.ndarray, height: int, width: int, style: str = "dwpose") -> np.ndarray:
    """keypoints: (F, 23, 3) COCO-23 pixels and scores -> (F, H, W, 3) uint8 skeleton frames
    (body only: the body model's COCO-23 has no hand or face points)."""
    if style == "dwpose":
        bodies = openpose18_from_coco23(keypoints)
        frames = [draw_dwpose(PoseKeypoints(b), height, width) for b in bodies]
    elif style == "wan":
        bodies = wan20_from_coco23(keypoints)
        frames = [draw_wan_pose(PoseKeypoints(b), height, width) for b in bodies]
    else:
        raise ValueError(f"unknown skeleton style {style!r}; use one of {STYLES}")
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)
