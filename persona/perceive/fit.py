"""Fit the body model to one photo: shape, pose, global orientation and translation.

The camera sits at the world origin looking along -Z (OpenCV axes, so `world_to_camera` is
diag(1, -1, -1)), with a focal length from an assumed field of view; the body is placed in
front of it. We minimise, with Adam, in two stages (global placement, then everything):
- the reprojection error of the COCO-23 keypoints, weighted by confidence,
- a silhouette term: every body vertex must project inside the person mask (a distance
  transform of the mask, sampled bilinearly), and every mask pixel must be near a projected
  vertex (coverage),
- priors: per-joint L2 on the body's `fit_joints` rotations (about its `fit_prior_mean`), knees
  that only bend forwards,
  shape near the average.
Everything is normalised by the person's height in pixels, so weights do not depend on the
image size. Parts outside the image (a photo cut at the waist) are left to the priors.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera

OPENCV_FROM_WORLD = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))


@dataclass
class FitConfig:
    fov_deg: float = 50.0  # assumed field of view across the longer image side
    global_steps: int = 60  # stage 1: placement only
    steps: int = 220  # stage 2: everything
    lr: float = 0.03
    keypoint_weight: float = 1.0
    inside_weight: float = 0.3  # vertices inside the mask
    coverage_weight: float = 0.3  # mask pixels near the body
    pose_prior_weight: float = 0.05
    shape_prior_weight: float = 0.01
    min_confidence: float = 0.3  # keypoints below this are ignored
    silhouette_vertices: int = 2500  # vertices sampled for the silhouette terms
    coverage_points: int = 1500  # mask pixels sampled for the coverage term
    seed: int = 0


@dataclass
class BodyFit:
    """shape: (S,); pose: BodyPose with batch 1; camera: the photo's camera."""

    shape: torch.Tensor
    pose: BodyPose
    camera: Camera
    keypoint_error_px: float  # mean reprojection error of the confident keypoints
    seconds: float
    history: list[float] = field(default_factory=list)  # loss every 20 steps


def photo_camera(width: int, height: int, fov_deg: float) -> Camera:
    """The fit's camera: at the origin, looking along -Z, square pixels, centred."""
    f = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) / 2)
    return Camera(OPENCV_FROM_WORLD.clone(), f, f, width / 2, height / 2, width, height)


def _mask_samplers(mask: np.ndarray, n_points: int, rng: np.random.Generator):
    """Distance-to-mask map (H, W) in pixels (0 inside) and (P, 2) pixel samples inside."""
    inside = mask > 0.5
    outside_distance = distance_transform_edt(~inside).astype(np.float32)
    ys, xs = np.nonzero(inside)
    pick = rng.choice(len(xs), size=min(n_points, len(xs)), replace=False)
    points = np.stack([xs[pick], ys[pick]], 1).astype(np.float32) + 0.5
    return torch.from_numpy(outside_distance), torch.from_numpy(points)


def _sample_map(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """image: (H, W); pixels: (N, 2) -> (N,) bilinear samples, 0 outside the image."""
    H, W = image.shape
    grid = torch.stack([pixels[:, 0] / W * 2 - 1, pixels[:, 1] / H * 2 - 1], -1)
    out = torch.nn.functional.grid_sample(
        image[None, None], grid[None, None], mode="bilinear", padding_mode="zeros", align_corners=False
    )
    return out[0, 0, 0]


def fit_body(
    body: BodyModel,
    keypoints: np.ndarray,
    mask: np.ndarray,
    config: FitConfig = FitConfig(),
    keypoint_weights: np.ndarray | None = None,
) -> BodyFit:
    """Fit `body` to one photo.

    keypoints: (K, 3) pixels x, y and confidence in [0, 1], in the body's keypoint order.
    mask: (H, W) person mask in [0, 1] at the photo's size.
    keypoint_weights: (K,) per-keypoint trust (default 1).
    """
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    H, W = mask.shape
    camera = photo_camera(W, H, config.fov_deg)
    kp = torch.from_numpy(keypoints[:, :2]).float()
    conf = torch.from_numpy(keypoints[:, 2]).float()
    conf = torch.where(conf >= config.min_confidence, conf, torch.zeros_like(conf))
    if keypoint_weights is not None:
        conf = conf * torch.from_numpy(keypoint_weights).float()
    ys = np.nonzero(mask > 0.5)[0]
    # Distances are measured in percent of the person's height in the image.
    unit = 0.01 * (float(ys.max() - ys.min() + 1) if len(ys) else float(H))
    distance, mask_points = _mask_samplers(mask, config.coverage_points, rng)
    distance = distance / unit
    vertex_sample = torch.from_numpy(rng.choice(len(body.skin_weights), config.silhouette_vertices, replace=False))

    J = body.num_joints
    fit_joints = body.fit_joints  # {name: prior strength}
    fit_index = torch.tensor([body.joint_index(n) for n in fit_joints])
    prior_strength = torch.tensor(list(fit_joints.values()))
    knee_index = torch.tensor([list(fit_joints).index(n) for n in body.knee_joints])
    prior_mean = torch.tensor([body.fit_prior_mean.get(n, (0.0, 0.0, 0.0)) for n in fit_joints])  # (K, 3)
    names = body.keypoint_names

    rotations = prior_mean.clone().requires_grad_(True)
    shape_logits = torch.zeros(len(body.shape_names), requires_grad=True)
    global_orient, translation = _initial_placement(body, kp, conf, camera, names)
    global_orient.requires_grad_(True)
    translation.requires_grad_(True)

    def pose() -> BodyPose:
        joint_rotations = torch.zeros(J, 3).index_put((fit_index,), rotations)
        return BodyPose(joint_rotations[None], global_orient[None], translation[None])

    def loss_terms(full: bool) -> torch.Tensor:
        shape = torch.sigmoid(shape_logits)[None]
        posed = body.forward(shape, pose())
        pixels, _ = camera.project(posed.keypoints[0])
        residual = ((pixels - kp) / unit).square().sum(-1)
        loss = config.keypoint_weight * (conf * residual).sum() / conf.sum().clamp(min=1.0)
        if not full:
            return loss
        vertex_pixels, _ = camera.project(posed.vertices[0, vertex_sample])
        loss = loss + config.inside_weight * _sample_map(distance, vertex_pixels).square().mean()
        gaps = torch.cdist(mask_points, vertex_pixels).min(1).values / unit
        loss = loss + config.coverage_weight * (gaps - 1.0).clamp(min=0).square().mean()
        loss = loss + config.pose_prior_weight * (prior_strength[:, None] * (rotations - prior_mean).square()).sum()
        loss = loss + config.pose_prior_weight * 10 * (-rotations[knee_index, 0]).clamp(min=0).square().sum()
        return loss + config.shape_prior_weight * shape_logits.square().sum()

    history: list[float] = []
    for params, steps, full in (
        ([global_orient, translation], config.global_steps, False),
        ([global_orient, translation, rotations, shape_logits], config.steps, True),
    ):
        optimizer = torch.optim.Adam(params, lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1), eta_min=config.lr * 0.05)
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_terms(full)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 20 == 0:
                history.append(loss.item())

    with torch.no_grad():
        final_pose = pose().detach()
        shape = torch.sigmoid(shape_logits).detach()
        pixels, _ = camera.project(body.forward(shape[None], final_pose).keypoints[0])
        confident = conf > 0
        error = (pixels - kp).norm(dim=-1)[confident].mean().item() if confident.any() else float("nan")
    return BodyFit(shape, final_pose, camera, error, time.perf_counter() - start, history)


def _initial_placement(body: BodyModel, kp, conf, camera: Camera, names: list[str]):
    """Global orientation (facing the camera, or away when the shoulders are swapped) and a
    translation putting the rest torso at the depth that matches its size in pixels."""
    with torch.no_grad():
        rest = body.forward(body.default_shape[None], BodyPose.zeros(1, body.num_joints)).keypoints[0]
    ls, rs, lh, rh = (names.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    torso_3d = ((rest[ls] + rest[rs]) / 2 - (rest[lh] + rest[rh]) / 2).norm()
    shoulders_px = (kp[ls] + kp[rs]) / 2
    hips_px = (kp[lh] + kp[rh]) / 2
    torso_px = (shoulders_px - hips_px).norm().clamp(min=1.0)
    depth = camera.fy * torso_3d / torso_px
    # Facing the camera, the person's left shoulder appears on the image's right.
    facing_away = bool(conf[ls] > 0 and conf[rs] > 0 and kp[ls, 0] < kp[rs, 0])
    global_orient = torch.tensor([0.0, math.pi if facing_away else 0.0, 0.0])
    centre_px = (shoulders_px + hips_px) / 2
    centre_3d = ((rest[ls] + rest[rs] + rest[lh] + rest[rh]) / 4)
    x = (centre_px[0] - camera.cx) / camera.fx * depth
    y = -(centre_px[1] - camera.cy) / camera.fy * depth
    translation = torch.stack([x, y, -depth]) - centre_3d
    return global_orient, translation.float()
