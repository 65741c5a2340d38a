"""Find the person in the photo: segmentation mask, body/face/hand landmarks, and the checks
that decide whether the photo can make an avatar.

Runs mediapipe 0.10.21 fully offline: Holistic at model_complexity=1 (the only pose model
that ships in the wheel) and the full-range face detector (also shipped). Holistic tracks a
single person, so people are counted with the face detector; with several, the most
prominent one is cropped out, Holistic runs again on the crop and everything is mapped back.

Coordinates: pixels of the input image, x right, y down, continuous (pixel (0, 0) covers
[0, 1) x [0, 1), as in `persona.camera`): mediapipe's normalised x times the width.
Left/right are the person's own sides, as in mediapipe.

The mediapipe graphs are created per call (inside `with`, so they are closed again): a
graph costs about 0.02 s to build and its first `process` about 0.15 s more than later
ones, negligible next to the rest of the pipeline, and it keeps this module free of shared
state, so concurrent requests need no lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from persona.errors import PersonaError

# mediapipe's 33 pose landmarks, in order (mediapipe.solutions.pose.PoseLandmark), written
# out so that importing this module does not import mediapipe.
POSE_LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

NOSE, EYES, EARS = 0, (2, 5), (7, 8)
SHOULDERS, HIPS = (11, 12), (23, 24)
KNEES, ANKLES = (25, 26), (27, 28)
# Hips, legs and feet: mediapipe guesses them confidently even where the photo shows no
# body (past a cut-out's edge, on a plain background), so they must also lie on the mask.
LOWER_BODY = tuple(range(23, 33))
# The joints the body fit leans on; a low visibility here is worth a warning.
MAJOR_JOINTS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)

# A face detector's box (brows to chin) is about 1/8 of a standing adult's height.
_BODY_HEIGHT_IN_FACE_BOXES = 8.0


@dataclass(frozen=True)
class PerceiveConfig:
    """Knobs of person perception (one instance per preset)."""

    # bbox height / image height below which the person is "too small": the body fit and
    # texture need enough pixels on the person.
    min_person_height_fraction: float = 0.25
    # A landmark counts as seen when mediapipe's visibility reaches this and it lies inside
    # the image.
    min_visibility: float = 0.5
    # Holistic's pose-detector score needed to accept a person at all.
    min_pose_confidence: float = 0.5
    # The score for a second try when a face shows someone is there: the detector is often
    # unsure of a body cut off near the hips. Not used blind, as it also fires on logos.
    retry_pose_confidence: float = 0.3
    # Face-detector score needed to count a face as a person.
    min_face_confidence: float = 0.6
    # Faces smaller than this fraction of the largest face (box height) are background
    # people (a crowd, a poster far away): not counted, not a reason to crop.
    min_relative_face_size: float = 0.3
    # Half width of the column cropped around the chosen person when there are several,
    # in face-box heights: half an arm span is about 4 face boxes.
    crop_half_width_faces: float = 4.5
    # The crop starts this many face-box heights above the face (hair, raised hands).
    crop_top_faces: float = 1.5
    # The hips must lie this fraction of the torso length (shoulders to hips) inside the
    # image: mediapipe often places hips just inside the bottom edge, confidently, when the
    # photo actually ends at the waist.
    hip_margin_fraction: float = 0.15
    # Mask value above which a pixel is "person" (bbox, IoU).
    mask_threshold: float = 0.5
    # An alpha hint counts as confident where it is within this of 0 or 1; there it
    # overrides the segmentation (a cut-out's alpha is usually a better matte).
    alpha_confident: float = 0.05


@dataclass
class Perception:
    """What perception found in one photo of H x W pixels."""

    mask: np.ndarray  # (H, W) float32 [0, 1] person segmentation at the image's size
    body: np.ndarray  # (33, 3) pose landmarks: x, y pixels, visibility [0, 1] (0 outside the image)
    body_world: np.ndarray  # (33, 3) pose world landmarks, metres, hip-centred (mediapipe axes)
    face: np.ndarray | None  # (468, 2) face mesh points, pixels; None when not found
    left_hand: np.ndarray | None  # (21, 2) the person's left hand, pixels; None when not found
    right_hand: np.ndarray | None  # (21, 2) the person's right hand, pixels; None when not found
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels of the person
    people_found: int  # how many people were seen (>= 1)
    cut_off: bool  # True when knees/ankles are outside the image or not visible
    warnings: list[str] = field(default_factory=list)  # human-readable notes for the report


@dataclass
class _Face:
    """One face-detector hit, pixels."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def center_x(self) -> float:
        return 0.5 * (self.x0 + self.x1)


@dataclass
class _Holistic:
    """One Holistic result in the pixels of the image it ran on (or, after `_shifted`, of
    the full image)."""

    body: np.ndarray  # (33, 3) x, y, visibility
    body_world: np.ndarray  # (33, 3)
    face: np.ndarray | None  # (468, 2)
    left_hand: np.ndarray | None  # (21, 2)
    right_hand: np.ndarray | None  # (21, 2)
    mask: np.ndarray  # (h, w) float32


def perceive_person(
    rgb: np.ndarray,
    config: PerceiveConfig = PerceiveConfig(),
    alpha_hint: np.ndarray | None = None,
) -> Perception:
    """Find the one person to make an avatar of.

    rgb: (H, W, 3) float32 in [0, 1]. alpha_hint: optional (H, W) in [0, 1], the photo's own
    alpha channel, used as a mask where it is confident.
    Raises PersonaError when there is no usable person: none found, too small, or too little
    of the body visible (head, both shoulders and both hips are needed).
    """
    image = _to_uint8(rgb)
    height, width = image.shape[:2]
    warnings: list[str] = []

    faces = _detect_faces(image, config)
    if len(faces) >= 2:
        result, column = _most_prominent_person(image, faces, config)
        warnings.append(
            f"{len(faces)} people found; used the most prominent one "
            f"(the largest, most central face, around x={faces[0].center_x:.0f} px) "
            "and masked out the others. Crop the photo to one person to choose another."
        )
    else:
        result, column = _run_holistic(image, config), None
        if result is None:
            result = _retry_around_face(image, faces, config)
    if result is None:
        raise PersonaError(
            "No person was found in the photo. "
            "Use a photo where one person is clearly visible, ideally head to feet."
        )

    body = _flag_outside(result.body, width, height)
    mask = result.mask
    if alpha_hint is not None:
        mask = _combine_alpha(mask, alpha_hint, config)
    if column is not None:  # the other people's pixels are not this person's
        mask = _keep_inside(mask, column)

    body = _drop_off_mask(body, mask, config)
    bbox = _person_bbox(mask, body, config)
    _check_size(bbox, height, config)
    _check_body_visible(body, width, height, config)
    cut_off = not _legs_visible(body, config)
    warnings += _landmark_warnings(body, result.face, cut_off, config)

    return Perception(
        mask=mask.astype(np.float32),
        body=body,
        body_world=result.body_world,
        face=result.face,
        left_hand=result.left_hand,
        right_hand=result.right_hand,
        bbox=bbox,
        people_found=max(1, len(faces)),
        cut_off=cut_off,
        warnings=warnings,
    )


# ---------------------------------------------------------------------------------------
# mediapipe calls


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float [0, 1] -> contiguous (H, W, 3) uint8, as mediapipe wants."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:  # already 0..255
        return np.ascontiguousarray(rgb)
    return np.ascontiguousarray(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8))


def _detect_faces(image: np.ndarray, config: PerceiveConfig, fine: bool = False) -> list[_Face]:
    """Faces that count as people, most prominent first (see `_prominence`).

    The detector squeezes its input into a 192 px square, so in a wide or tall photo the
    faces shrink out of its range: it also runs on overlapping squares along the long side,
    and the hits are merged. fine=True adds a 3 x 3 grid of half-size squares, to find the
    faces of small people (only used to explain why no body was found).
    """
    from mediapipe.python.solutions import face_detection

    faces: list[_Face] = []
    with face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=config.min_face_confidence
    ) as detector:
        tiles = _square_tiles(image.shape[1], image.shape[0])
        if fine:
            tiles += _grid_tiles(image.shape[1], image.shape[0])
        for x0, y0, x1, y1 in tiles:
            tile = np.ascontiguousarray(image[y0:y1, x0:x1])
            faces += _faces_in(detector.process(tile).detections or [], x0, y0, x1 - x0, y1 - y0)
    faces = _merge_duplicates(faces)
    if not faces:
        return []
    # Small faces next to a big one are background people, not candidates.
    biggest = max(f.height for f in faces)
    faces = [f for f in faces if f.height >= config.min_relative_face_size * biggest]
    width = image.shape[1]
    return sorted(faces, key=lambda f: _prominence(f, width), reverse=True)


def _square_tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The whole image, plus squares (side = short side, 50% overlap) along the long side
    when the image is clearly not square. Boxes are x0, y0, x1, y1."""
    tiles = [(0, 0, width, height)]
    side, long_side = min(width, height), max(width, height)
    if long_side < 1.3 * side:
        return tiles
    n = int(np.ceil((long_side - side) / (side / 2))) + 1
    for start in np.linspace(0, long_side - side, n).round().astype(int):
        s = int(start)
        tiles.append((s, 0, s + side, height) if width > height else (0, s, width, s + side))
    return tiles


def _grid_tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """A 3 x 3 grid of squares of half the short side, overlapping, covering the image."""
    side = max(1, min(width, height) // 2)
    xs = np.linspace(0, width - side, 3).round().astype(int)
    ys = np.linspace(0, height - side, 3).round().astype(int)
    return [(int(x), int(y), int(x) + side, int(y) + side) for y in ys for x in xs]


def _faces_in(detections, x0: int, y0: int, w: int, h: int) -> list[_Face]:
    """mediapipe detections on a (h, w) tile at (x0, y0) -> faces in image pixels."""
    faces = []
    for det in detections:
        box = det.location_data.relative_bounding_box
        fx0, fy0 = x0 + max(0.0, box.xmin) * w, y0 + max(0.0, box.ymin) * h
        fx1 = x0 + min(1.0, box.xmin + box.width) * w
        fy1 = y0 + min(1.0, box.ymin + box.height) * h
        if fx1 > fx0 and fy1 > fy0:
            faces.append(_Face(fx0, fy0, fx1, fy1, float(det.score[0])))
    return faces


def _merge_duplicates(faces: list[_Face], iou: float = 0.3) -> list[_Face]:
    """Greedy non-maximum suppression: the same face seen in several tiles counts once."""
    kept: list[_Face] = []
    for f in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(_iou(f, k) < iou for k in kept):
            kept.append(f)
    return kept


def _iou(a: _Face, b: _Face) -> float:
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = (a.x1 - a.x0) * a.height + (b.x1 - b.x0) * b.height - inter
    return inter / union if union > 0 else 0.0


def _prominence(face: _Face, width: int) -> float:
    """Larger and more central faces win: area, down-weighted up to 2x towards the edges."""
    off_center = abs(face.center_x - 0.5 * width) / (0.5 * width)  # 0 centre .. 1 edge
    return (face.x1 - face.x0) * face.height * (1.0 - 0.5 * off_center)


def _run_holistic(
    image: np.ndarray, config: PerceiveConfig, confidence: float | None = None
) -> _Holistic | None:
    """Holistic on an (h, w, 3) uint8 image; None when it finds no pose.

    confidence: the pose detector's score threshold (default config.min_pose_confidence).
    """
    from mediapipe.python.solutions import holistic

    height, width = image.shape[:2]
    with holistic.Holistic(
        static_image_mode=True,
        model_complexity=1,  # the only pose model shipped in the wheel (no download)
        enable_segmentation=True,
        refine_face_landmarks=False,
        min_detection_confidence=config.min_pose_confidence if confidence is None else confidence,
    ) as model:
        res = model.process(image)
    if res.pose_landmarks is None:
        return None
    size = np.array([width, height], dtype=np.float32)
    body = np.array([[p.x, p.y, p.visibility] for p in res.pose_landmarks.landmark], np.float32)
    body[:, :2] *= size
    world = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark], np.float32)
    if res.segmentation_mask is not None:
        mask = np.clip(np.asarray(res.segmentation_mask, dtype=np.float32), 0.0, 1.0)
    else:  # not expected with enable_segmentation=True; an empty mask keeps the types simple
        mask = np.zeros((height, width), np.float32)
    return _Holistic(
        body=body,
        body_world=world,
        face=_points(res.face_landmarks, size),
        left_hand=_points(res.left_hand_landmarks, size),
        right_hand=_points(res.right_hand_landmarks, size),
        mask=mask,
    )


def _points(landmarks, size: np.ndarray) -> np.ndarray | None:
    """A mediapipe NormalizedLandmarkList -> (N, 2) pixels, or None."""
    if landmarks is None:
        return None
    return np.array([[p.x, p.y] for p in landmarks.landmark], np.float32) * size


# ---------------------------------------------------------------------------------------
# several people, or a person the first pass missed


def _most_prominent_person(
    image: np.ndarray, faces: list[_Face], config: PerceiveConfig
) -> tuple[_Holistic, tuple[int, int, int, int]]:
    """Holistic on a crop around faces[0] (the most prominent), mapped back to the image.

    Returns the result and the crop box x0, y0, x1, y1, outside of which the mask is
    cleared (the other people). Raises PersonaError when no body is found in the crop.
    """
    height, width = image.shape[:2]
    box = _person_column(faces, 0, width, height, config)
    result = _holistic_in(image, box, config)
    if result is None:
        raise PersonaError(
            f"{len(faces)} people were found, but not the body of the most prominent one. "
            "Crop the photo to one person, ideally shown head to feet."
        )
    return result, box


def _holistic_in(
    image: np.ndarray, box: tuple[int, int, int, int], config: PerceiveConfig
) -> _Holistic | None:
    """Holistic on the crop box (x0, y0, x1, y1) of image, in full-image pixels; tried
    again with the lower retry score, as a face already showed a person is there."""
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    result = _run_holistic(crop, config)
    if result is None:
        result = _run_holistic(crop, config, config.retry_pose_confidence)
    if result is None:
        return None
    height, width = image.shape[:2]
    return _shifted(result, x0, y0, width, height)


def _person_column(
    faces: list[_Face], index: int, width: int, height: int, config: PerceiveConfig
) -> tuple[int, int, int, int]:
    """The image region of the person whose face is faces[index], as an int box.

    People stand below their faces: the region runs from a little above the face down to
    the bottom of the image (or to just above a face right below, the next person), about
    an arm span wide, and never past the midpoint between this face and a side neighbour's
    (that half belongs to the neighbour).
    """
    me = faces[index]
    half = config.crop_half_width_faces * me.height
    left, right = me.center_x - half, me.center_x + half
    top, bottom = me.y0 - config.crop_top_faces * me.height, float(height)
    for k, other in enumerate(faces):
        if k == index:
            continue
        same_column = abs(other.center_x - me.center_x) < me.x1 - me.x0
        if same_column and other.y0 > me.y1:  # a face right below starts the next person
            bottom = min(bottom, other.y0 - config.crop_top_faces * other.height)
        elif same_column and other.y1 < me.y0:  # right above: behind this person's head
            continue
        elif other.center_x < me.center_x:
            left = max(left, 0.5 * (me.center_x + other.center_x))
        else:
            right = min(right, 0.5 * (me.center_x + other.center_x))
    x0, x1 = int(max(0, np.floor(left))), int(min(width, np.ceil(right)))
    y0, y1 = int(max(0, np.floor(top))), int(min(height, np.ceil(bottom)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _retry_around_face(
    image: np.ndarray, faces: list[_Face], config: PerceiveConfig
) -> _Holistic | None:
    """When Holistic missed the person but a face was seen: explain, or try a crop.

    The pose detector works on the whole image shrunk to 224 px, so a small person can be
    missed; a face alone (a close-up) has no body to find.
    """
    if not faces:  # look closer, only to tell "too small" from "nobody"
        fraction = _small_person_fraction(image, config)
        if fraction is not None and fraction < config.min_person_height_fraction:
            raise _too_small_error(fraction, config)
        return None
    height, width = image.shape[:2]
    face = faces[0]
    if face.height * _BODY_HEIGHT_IN_FACE_BOXES < config.min_person_height_fraction * height:
        raise _too_small_error(face.height * _BODY_HEIGHT_IN_FACE_BOXES / height, config)
    # The hips are about 3 face boxes below the chin: with less than half that room below
    # the face, the photo is a close-up.
    if height - face.y1 < 1.5 * face.height:
        raise _only_head_error()
    result = _holistic_in(image, _person_column(faces, 0, width, height, config), config)
    if result is None:
        raise PersonaError(
            "A face was found, but not the body. The avatar needs at least head, shoulders "
            "and hips visible: use a photo that shows the person down to the hips, "
            "ideally head to feet."
        )
    return result


def _small_person_fraction(image: np.ndarray, config: PerceiveConfig) -> float | None:
    """Height fraction of a person too small for the detectors at full-image scale, looked
    for in a 3 x 3 grid of half-size tiles (faces first, then bodies); None if none.

    Only called once the normal pass found nobody, to choose the right error message.
    """
    height, width = image.shape[:2]
    faces = _detect_faces(image, config, fine=True)
    if faces:
        return faces[0].height * _BODY_HEIGHT_IN_FACE_BOXES / height
    for x0, y0, x1, y1 in _grid_tiles(width, height):
        result = _run_holistic(np.ascontiguousarray(image[y0:y1, x0:x1]), config)
        if result is not None:
            full = _shifted(result, x0, y0, width, height)
            bbox = _person_bbox(full.mask, _flag_outside(full.body, width, height), config)
            return (bbox[3] - bbox[1]) / height
    return None


def _shifted(result: _Holistic, x0: int, y0: int, width: int, height: int) -> _Holistic:
    """A result computed on the crop starting at (x0, y0) -> full-image pixels; the mask is
    pasted into an (height, width) canvas of zeros."""
    offset = np.array([x0, y0], dtype=np.float32)
    body = result.body.copy()
    body[:, :2] += offset
    mask = np.zeros((height, width), np.float32)
    h, w = result.mask.shape
    mask[y0 : y0 + h, x0 : x0 + w] = result.mask

    def move(points: np.ndarray | None) -> np.ndarray | None:
        return None if points is None else points + offset

    return _Holistic(
        body=body,
        body_world=result.body_world,
        face=move(result.face),
        left_hand=move(result.left_hand),
        right_hand=move(result.right_hand),
        mask=mask,
    )


def _keep_inside(mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """mask (H, W) with everything outside box (x0, y0, x1, y1) set to 0."""
    x0, y0, x1, y1 = box
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    return out


# ---------------------------------------------------------------------------------------
# mask, bbox and the checks


def _combine_alpha(mask: np.ndarray, alpha: np.ndarray, config: PerceiveConfig) -> np.ndarray:
    """Merge the photo's alpha (H, W) into the segmentation (H, W).

    An opaque alpha carries no information and is ignored. Otherwise the alpha wins where it
    is confident (near 0 or 1: a cut-out's matte is sharper than the segmentation) and the
    two are averaged in its soft band.
    """
    alpha = np.clip(np.asarray(alpha, dtype=np.float32), 0.0, 1.0)
    if alpha.shape != mask.shape:
        raise ValueError(f"alpha_hint shape {alpha.shape} does not match the image {mask.shape}")
    if float((alpha < 0.5).mean()) < 0.01:  # (nearly) opaque: nothing was cut out
        return mask
    eps = config.alpha_confident
    confident = (alpha <= eps) | (alpha >= 1.0 - eps)
    return np.where(confident, alpha, 0.5 * (alpha + mask)).astype(np.float32)


def _flag_outside(body: np.ndarray, width: int, height: int) -> np.ndarray:
    """body (33, 3) -> a copy whose points outside the image have visibility 0."""
    out = body.copy()
    x, y = out[:, 0], out[:, 1]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    out[outside, 2] = 0.0
    return out


def _drop_off_mask(body: np.ndarray, mask: np.ndarray, config: PerceiveConfig) -> np.ndarray:
    """body (33, 3) -> a copy where lower-body points with no person pixel (mask above the
    threshold) within a tenth of the torso length get visibility 0."""
    out = body.copy()
    height, width = mask.shape
    torso = float(np.linalg.norm(body[list(HIPS), :2].mean(0) - body[list(SHOULDERS), :2].mean(0)))
    r = max(3, int(round(0.1 * torso)))
    for i in LOWER_BODY:
        x, y, vis = out[i]
        if vis <= 0.0:
            continue
        cx, cy = int(np.clip(x, 0, width - 1)), int(np.clip(y, 0, height - 1))
        window = mask[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1]
        if window.size == 0 or float(window.max()) < config.mask_threshold:
            out[i, 2] = 0.0
    return out


def _person_bbox(
    mask: np.ndarray, body: np.ndarray, config: PerceiveConfig
) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 pixels: the mask's main blobs joined with the seen landmarks.

    Mask blobs smaller than 5% of the largest one are segmentation noise and ignored.
    """
    import cv2

    height, width = mask.shape
    boxes = []
    binary = (mask > config.mask_threshold).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        for s in stats[1:][areas >= 0.05 * areas.max()]:
            x, y, w, h = (int(v) for v in s[:4])
            boxes.append((x, y, x + w, y + h))
    seen = body[body[:, 2] >= config.min_visibility]
    if len(seen):
        boxes.append((seen[:, 0].min(), seen[:, 1].min(), seen[:, 0].max(), seen[:, 1].max()))
    if not boxes:  # nothing confident: the landmarks, clipped to the image
        pts = body[:, :2]
        boxes.append((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()))
    b = np.array(boxes, dtype=np.float64)
    x0, y0 = np.clip(b[:, 0].min(), 0, width), np.clip(b[:, 1].min(), 0, height)
    x1, y1 = np.clip(b[:, 2].max(), 0, width), np.clip(b[:, 3].max(), 0, height)
    return float(x0), float(y0), float(x1), float(y1)


def _check_size(bbox: tuple[float, float, float, float], height: int, config: PerceiveConfig) -> None:
    fraction = (bbox[3] - bbox[1]) / height
    if fraction < config.min_person_height_fraction:
        raise _too_small_error(fraction, config)


def _too_small_error(fraction: float, config: PerceiveConfig) -> PersonaError:
    return PersonaError(
        f"The person is too small in the photo (about {100 * fraction:.0f}% of its height; "
        f"at least {100 * config.min_person_height_fraction:.0f}% is needed). "
        "Crop the photo around the person or take it closer."
    )


def _only_head_error() -> PersonaError:
    return PersonaError(
        "The photo shows only the head/face; the avatar needs at least head, shoulders and "
        "hips visible. Use a photo that shows the person down to the hips, ideally head to feet."
    )


def _seen(body: np.ndarray, idx, config: PerceiveConfig) -> np.ndarray:
    """Boolean per index: visible enough (points outside the image already have 0)."""
    return body[list(idx), 2] >= config.min_visibility


def _check_body_visible(body: np.ndarray, width: int, height: int, config: PerceiveConfig) -> None:
    """Refuse unless head, both shoulders and both hips are seen (body (33, 3), image
    width x height pixels); the hips also need a margin inside the image."""
    head = bool(_seen(body, (NOSE,), config)[0]) or int(_seen(body, EYES + EARS, config).sum()) >= 2
    shoulders = bool(_seen(body, SHOULDERS, config).all())
    hips = bool(_seen(body, HIPS, config).all()) and _hips_inside(body, width, height, config)
    if head and shoulders and hips:
        return
    if not head:
        raise PersonaError(
            "The person's head is not visible in the photo; the avatar needs the head, "
            "shoulders and hips visible. Use a photo where the face is in the picture."
        )
    if not shoulders:
        raise _only_head_error()
    raise PersonaError(
        "The photo shows only the head and shoulders; the avatar needs at least head, "
        "shoulders and hips visible. Use a photo that shows the person down to the hips, "
        "ideally head to feet."
    )


def _hips_inside(body: np.ndarray, width: int, height: int, config: PerceiveConfig) -> bool:
    """Both hips at least hip_margin_fraction of the torso length inside the image."""
    torso = float(np.linalg.norm(body[list(HIPS), :2].mean(0) - body[list(SHOULDERS), :2].mean(0)))
    m = config.hip_margin_fraction * torso
    hips = body[list(HIPS), :2]
    return bool(((hips[:, 0] >= m) & (hips[:, 0] <= width - m) & (hips[:, 1] <= height - m)).all())


def _legs_visible(body: np.ndarray, config: PerceiveConfig) -> bool:
    return bool(_seen(body, KNEES + ANKLES, config).all())


def _landmark_warnings(
    body: np.ndarray, face: np.ndarray | None, cut_off: bool, config: PerceiveConfig
) -> list[str]:
    """Notes for the report about what was not seen well."""
    notes = []
    if cut_off:
        notes.append(
            "The body is cut off: knees or ankles are outside the photo or hidden; "
            "the unseen parts come from the body model."
        )
    legs = set(KNEES + ANKLES) if cut_off else set()  # already covered by the note above
    weak = [POSE_LANDMARK_NAMES[i].replace("_", " ") for i in MAJOR_JOINTS
            if i not in legs and body[i, 2] < config.min_visibility]  # fmt: skip
    if weak:
        notes.append("Uncertain landmarks (hidden or outside the photo): " + ", ".join(weak) + ".")
    if face is None:
        notes.append("No face landmarks were found; the face will be less detailed.")
    return notes
