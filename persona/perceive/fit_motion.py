"""Fit the body model to every frame of a tracked person at once: the photo fit's
parameters, priors and optimizer (`persona.perceive.fit`), batched over frames, with terms
that tie the frames together.

Per frame: the fit joints' rotations (`body.fit_joints`), global orientation and translation;
the shape is the body's average (a motion does not carry one). The camera is the photo fit's
(`photo_camera`: at the origin looking along -Z, the assumed field of view), fixed for the
clip. Adam with a cosine schedule, in three stages: placement only (keypoints), everything,
then everything with the foot-contact term. Terms:
- 2D reprojection of the COCO-23 keypoints, confidence-weighted, in percent of the person's
  height in the frame (as in the photo fit);
- 3D: the keypoints relative to the hips against mediapipe's world landmarks (metres);
- temporal smoothness: acceleration of the 3D keypoints and of the root, velocity of the
  joint rotations;
- foot contact: a foot that stands still in the image for a few frames (its heel and toe
  keypoints move less than `contact_speed` person heights per second) must not move in 3D
  between those frames;
- the photo fit's priors (per-joint L2 about `fit_prior_mean`, knees bending forwards only).

Keypoints are computed without the full mesh: anny is linear blend skinning, so the
regressed keypoint k is sum_j T_j a_kj with a_kj = sum_v r_kv w_vj [x_v, 1] (rest-pose
vertices x_v, weights w, regressor r); forward kinematics on the body's skeleton gives the
bone transforms T_j. This equals `body.forward(...).keypoints` (to about a millimetre) at a
fraction of the cost, which is what makes a few hundred steps over a whole clip affordable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import roma
import torch

from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera
from persona.generate.retarget import Skeleton, body_skeleton
from persona.perceive.fit import photo_camera
from persona.perceive.keypoints import COCO23, COCO23_FIT_WEIGHTS

FOOT_POINTS = {"left": ("left_heel", "left_big_toe"), "right": ("right_heel", "right_big_toe")}


@dataclass(frozen=True)
class MotionFitConfig:
    fov_deg: float = 50.0  # assumed field of view across the longer side of the frame
    global_steps: int = 60  # stage 1: placement only
    steps: int = 160  # stage 2: everything
    contact_steps: int = 60  # stage 3: everything, with the foot-contact term
    lr: float = 0.03
    keypoint_weight: float = 1.0
    world_weight: float = 200.0  # 3D landmarks, per square metre
    accel_weight: float = 2000.0  # keypoint and root acceleration, per (metre / frame^2)^2
    rotation_velocity_weight: float = 2.0  # per (radian / frame)^2
    contact_weight: float = 5000.0  # feet in contact, per (metre / frame)^2
    contact_speed: float = 0.12  # person heights per second below which a foot stands still
    contact_min_frames: int = 3  # shorter still phases are not contacts
    pose_prior_weight: float = 0.05
    min_confidence: float = 0.3  # keypoints below this are ignored


@dataclass
class MotionFit:
    """poses: BodyPose with batch F (the camera world); shape: (S,) the body's average;
    camera: the fixed camera of every frame; contacts: (F, 2) bool, left and right foot on
    the ground; keypoint_error_px: mean reprojection error of the confident keypoints."""

    poses: BodyPose
    shape: torch.Tensor
    camera: Camera
    contacts: np.ndarray
    keypoint_error_px: float
    seconds: float
    history: list[float] = field(default_factory=list)


class KeypointRig:
    """The body's COCO-23 keypoints as a function of its pose, through forward kinematics on
    its skeleton (see the module doc), for poses that rotate only `joints` (default: the
    body's fit joints) and the root. Every other bone then moves rigidly with its nearest
    rotated ancestor, so the skeleton collapses onto those joints (exactly)."""

    def __init__(self, body: BodyModel, joints: list[str] | None = None):
        self.body = body
        self.skeleton: Skeleton = body_skeleton(body)
        names = list(body.fit_joints) if joints is None else joints
        kept = [0] + sorted(body.joint_index(n) for n in names)  # the root and the rotated joints, parents first
        self.kept = torch.tensor(kept)
        owner = []  # each bone -> position in `kept` of its nearest kept ancestor (or itself)
        for j in range(body.num_joints):
            a = j
            while a not in kept:
                a = body.parents[a]
            owner.append(kept.index(a))
        self.parents = [-1] + [owner[body.parents[j]] for j in kept[1:]]
        with torch.no_grad():
            zero = body.forward(body.default_shape[None], BodyPose.zeros(1, body.num_joints)).vertices[0]  # (V, 3)
        merge = torch.zeros(body.num_joints, len(kept))
        merge[torch.arange(body.num_joints), torch.tensor(owner)] = 1.0
        weights = body.skin_weights @ merge  # (V, C)
        regressor = body.keypoint_regressor  # (K, V)
        self.point = (regressor @ (weights[:, :, None] * zero[:, None, :]).reshape(len(zero), -1)).reshape(len(regressor), len(kept), 3)
        self.weight = regressor @ weights  # (K, C)
        self.joints = self.skeleton.joints[self.kept]  # (C, 3) zero-pose centres

    def keypoints(self, pose: BodyPose) -> torch.Tensor:
        """pose: batch F -> (F, K, 3) world keypoints (differentiable)."""
        local = roma.rotvec_to_rotmat(pose.joint_rotations[:, self.kept[1:]])  # (F, C-1, 3, 3)
        G = [roma.rotvec_to_rotmat(pose.global_orient)]
        P = [self.joints[0] + pose.translation]
        z = self.joints
        for c in range(1, len(self.parents)):
            p = self.parents[c]
            G.append(G[p] @ local[:, c - 1])
            P.append(P[p] + (G[p] @ (z[c] - z[p])[:, None])[..., 0])
        G, P = torch.stack(G, 1), torch.stack(P, 1)  # (F, C, 3, 3), (F, C, 3)
        offset = P - (G @ z[:, :, None])[..., 0]
        F, C = G.shape[:2]
        rotated = G.permute(0, 2, 1, 3).reshape(F, 3, C * 3) @ self.point.reshape(-1, C * 3).T  # (F, 3, K)
        return rotated.transpose(1, 2) + self.weight @ offset


def fit_motion(
    body: BodyModel,
    keypoints: np.ndarray,
    world: np.ndarray,
    size: tuple[int, int],
    fps: float,
    config: MotionFitConfig = MotionFitConfig(),
    log=None,
) -> MotionFit:
    """Fit `body` to every frame.

    keypoints: (F, 23, 3) COCO-23 pixels and confidence; world: (F, 23, 3) metres, project
    axes, hip-centred (mediapipe's world landmarks); size: width, height of the frames;
    fps: the frames' rate (for the contact speed).

    Runs on one intra-op thread (restored afterwards): its tensors are small, and on a busy
    2-core machine a second thread made each step about 4x slower, not faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_motion(body, keypoints, world, size, fps, config, log)
    finally:
        torch.set_num_threads(threads)


def _fit_motion(body, keypoints, world, size, fps, config, log) -> MotionFit:
    start = time.perf_counter()
    F = keypoints.shape[0]
    W, H = size
    camera = photo_camera(W, H, config.fov_deg)
    rig = KeypointRig(body)
    kp = torch.from_numpy(keypoints[..., :2]).float()  # (F, K, 2)
    conf = torch.from_numpy(keypoints[..., 2]).float()
    conf = torch.where(conf >= config.min_confidence, conf, torch.zeros_like(conf)) * torch.from_numpy(COCO23_FIT_WEIGHTS)
    target3d = torch.from_numpy(world).float()
    unit = 0.01 * _person_heights(keypoints)  # (F,) pixels per percent of the person's height

    names = list(body.fit_joints)
    fit_index = torch.tensor([body.joint_index(n) for n in names])
    prior_strength = torch.tensor(list(body.fit_joints.values()))
    knee_index = torch.tensor([names.index(n) for n in body.knee_joints])
    prior_mean = torch.tensor([body.fit_prior_mean.get(n, (0.0, 0.0, 0.0)) for n in names])  # (K, 3)
    hips = [COCO23.index("left_hip"), COCO23.index("right_hip")]
    feet = torch.tensor([[COCO23.index(n) for n in FOOT_POINTS[side]] for side in ("left", "right")])  # (2, 2)

    rotations = prior_mean[None].repeat(F, 1, 1).requires_grad_(True)
    global_orient, translation = _initial_placement(rig, kp, conf, target3d, camera)
    global_orient.requires_grad_(True)
    translation.requires_grad_(True)
    contacts = torch.zeros(F, 2, dtype=torch.bool)

    def pose() -> BodyPose:
        joint_rotations = torch.zeros(F, body.num_joints, 3).index_copy(1, fit_index, rotations)
        return BodyPose(joint_rotations, global_orient, translation)

    def loss_terms(stage: int) -> torch.Tensor:
        points = rig.keypoints(pose())  # (F, K, 3)
        pixels, _ = camera.project(points)
        residual = ((pixels - kp) / unit[:, None, None]).square().sum(-1)
        loss = config.keypoint_weight * (conf * residual).sum() / conf.sum().clamp(min=1.0)
        accel_root = translation[2:] - 2 * translation[1:-1] + translation[:-2]
        loss = loss + config.accel_weight * accel_root.square().sum(-1).mean()
        if stage == 0:
            return loss
        relative = points - points[:, hips].mean(1, keepdim=True)
        target = target3d - target3d[:, hips].mean(1, keepdim=True)
        seen = (conf > 0).float()
        loss = loss + config.world_weight * (seen * (relative - target).square().sum(-1)).sum() / seen.sum().clamp(min=1.0)
        accel = points[2:] - 2 * points[1:-1] + points[:-2]
        loss = loss + config.accel_weight * accel.square().sum(-1).mean()
        velocity = torch.cat([rotations[1:] - rotations[:-1], global_orient[1:, None] - global_orient[:-1, None]], 1)
        loss = loss + config.rotation_velocity_weight * velocity.square().sum(-1).mean()
        loss = loss + config.pose_prior_weight * (prior_strength[:, None] * (rotations - prior_mean).square()).sum() / F
        loss = loss + config.pose_prior_weight * 10 * (-rotations[:, knee_index, 0]).clamp(min=0).square().sum() / F
        if stage == 2 and contacts.any():
            both = (contacts[1:] & contacts[:-1]).float()  # (F-1, 2)
            step = points[1:, feet] - points[:-1, feet]  # (F-1, 2, 2, 3)
            loss = loss + config.contact_weight * (both[..., None] * step.square().sum(-1)).sum() / both.sum().clamp(min=1.0)
        return loss

    history: list[float] = []
    plan = (
        ([global_orient, translation], config.global_steps, 0),
        ([global_orient, translation, rotations], config.steps, 1),
        ([global_orient, translation, rotations], config.contact_steps, 2),
    )
    for params, steps, stage in plan:
        if stage == 2:
            contacts = torch.from_numpy(detect_contacts(keypoints, fps, config))
        optimizer = torch.optim.Adam(params, lr=config.lr if stage < 2 else config.lr * 0.3)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1), eta_min=config.lr * 0.05)
        for step in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_terms(stage)
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 20 == 0:
                history.append(loss.item())
                if log is not None:
                    log(stage, step, loss.item())

    with torch.no_grad():
        final = pose().detach()
        pixels, _ = camera.project(rig.keypoints(final))
        confident = conf > 0
        error = (pixels - kp).norm(dim=-1)[confident].mean().item() if confident.any() else float("nan")
    return MotionFit(final, body.default_shape.clone(), camera, contacts.numpy(), error, time.perf_counter() - start, history)


def _person_heights(keypoints: np.ndarray) -> torch.Tensor:
    """(F, K, 3) -> (F,) the person's height in pixels per frame (extent of the confident
    keypoints, nose to feet, grown by 10% for the top of the head), smoothed over time."""
    conf = keypoints[..., 2] >= 0.3
    top = np.where(conf, keypoints[..., 1], np.inf).min(1)
    bottom = np.where(conf, keypoints[..., 1], -np.inf).max(1)
    extent = np.where(conf.any(1), bottom - top, 0.0) * 1.1
    extent = np.maximum(extent, np.median(extent) * 0.5)
    return torch.from_numpy(np.maximum(extent, 1.0)).float()


def _initial_placement(rig: KeypointRig, kp: torch.Tensor, conf: torch.Tensor, world: torch.Tensor, camera: Camera):
    """Per frame: global orientation from mediapipe's 3D torso (left = right hip/shoulder ->
    left, up = hips -> shoulders) and a translation putting the rest torso at the depth that
    matches its size in pixels (as the photo fit's placement). -> (F, 3), (F, 3)."""
    ls, rs, lh, rh = (COCO23.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    left = (world[:, ls] - world[:, rs]) + (world[:, lh] - world[:, rh])
    up = (world[:, ls] + world[:, rs] - world[:, lh] - world[:, rh]) / 2
    up = torch.nn.functional.normalize(up, dim=-1)
    left = torch.nn.functional.normalize(left - up * (left * up).sum(-1, keepdim=True), dim=-1)
    R = torch.stack([left, up, torch.linalg.cross(left, up)], -1)  # columns: the body's X, Y, Z in the world
    global_orient = roma.rotmat_to_rotvec(R)
    with torch.no_grad():
        rest = rig.keypoints(BodyPose.zeros(1, rig.body.num_joints))[0]  # (K, 3)
    torso_3d = ((rest[ls] + rest[rs]) / 2 - (rest[lh] + rest[rh]) / 2).norm()
    shoulders_px, hips_px = (kp[:, ls] + kp[:, rs]) / 2, (kp[:, lh] + kp[:, rh]) / 2
    torso_px = (shoulders_px - hips_px).norm(dim=-1).clamp(min=1.0)
    depth = camera.fy * torso_3d / torso_px  # (F,)
    centre_px = (shoulders_px + hips_px) / 2
    centre_3d = (rest[ls] + rest[rs] + rest[lh] + rest[rh]) / 4
    root = rig.skeleton.joints[0]
    centre_rotated = (R @ (centre_3d - root)[:, None])[..., 0] + root  # the torso centre after the global rotation
    x = (centre_px[:, 0] - camera.cx) / camera.fx * depth
    y = -(centre_px[:, 1] - camera.cy) / camera.fy * depth
    translation = torch.stack([x, y, -depth], -1) - centre_rotated
    return global_orient.float().detach().clone(), translation.float().detach().clone()


def detect_contacts(keypoints: np.ndarray, fps: float, config: MotionFitConfig) -> np.ndarray:
    """(F, 23, 3) COCO-23 pixels -> (F, 2) bool: the left and right foot stand still (heel
    and big toe slower than `config.contact_speed` person heights per second, for at least
    `config.contact_min_frames` frames; the camera is assumed static)."""
    F = keypoints.shape[0]
    heights = _person_heights(keypoints).numpy()
    out = np.zeros((F, 2), bool)
    if F < 2:
        return out
    for s, side in enumerate(("left", "right")):
        index = [COCO23.index(n) for n in FOOT_POINTS[side]]
        points = keypoints[:, index, :2]  # (F, 2, 2)
        seen = (keypoints[:, index, 2] >= config.min_confidence).all(1)
        speed = np.linalg.norm(np.gradient(points, axis=0), axis=-1).max(1) * fps / heights  # heights per second
        still = seen & (speed < config.contact_speed)
        start = None
        for f in range(F + 1):
            if f < F and still[f]:
                start = f if start is None else start
            elif start is not None:
                if f - start >= config.contact_min_frames:
                    out[start:f, s] = True
                start = None
    return out


def bone_transforms_check(body: BodyModel, pose: BodyPose) -> float:
    """Largest distance (metres) between `KeypointRig` keypoints and the body's own (a check
    of the linear-skinning shortcut; used by the tests)."""
    with torch.no_grad():
        fast = KeypointRig(body).keypoints(pose)
        full = body.forward(body.default_shape[None], pose).keypoints
    return float((fast - full).norm(dim=-1).max())


