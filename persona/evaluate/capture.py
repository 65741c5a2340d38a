"""Driving videos with a known motion, and the errors of a capture against it (the
motion-capture test and benchmark).

The person is the avatar of the example photo (its texture projected from
examples/person_half.png onto the real anny body, 13,718 Gaussians), rendered by the
reference rasterizer in known poses, so mediapipe sees a textured, person-like figure.
Errors: `segment_errors` (bone directions of the eight limb segments, degrees; also the
geodesic angle of the joints' world rotations, which includes the twist about the bone that
keypoints cannot see) and `foot_sliding` (how far a foot that stands still in the truth moves
in the capture).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import roma
import torch

from persona.avatar.model import AvatarRig, GaussianAvatar, render_gaussians
from persona.avatar.train import AvatarConfig, initial_avatar
from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera
from persona.generate.motions import Motion
from persona.perceive.fit import photo_camera
from persona.perceive.fit_motion import KeypointRig
from persona.perceive.keypoints import COCO23

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "person_half.png"


def textured_avatar(body: BodyModel) -> GaussianAvatar:
    """Gaussians on the average body coloured by the example photo's texture (~12 s)."""
    from persona.pipeline import MakeOptions, prepare_subject

    subject = prepare_subject(EXAMPLE, MakeOptions(preset="preview")).subject
    shape = body.default_shape
    return initial_avatar(body, shape, BodyPose.zeros(1, body.num_joints), subject.fit.camera, subject.texture.colors, AvatarConfig(subdivision=0))


def known_motion(frames: int = 72, fps: float = 24.0) -> Motion:
    """A squat, then a knee lift of the left leg, with the arms raising and bending and the
    torso twisting; the body turned 20 degrees to its left. The right foot never moves (the
    root is placed so in `place_in_view`)."""
    t = torch.arange(frames, dtype=torch.float32) / fps
    T = frames / fps
    names = ["upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R",
             "upperarm01.L", "upperarm01.R", "lowerarm01.L", "lowerarm01.R", "spine03", "head"]  # fmt: skip
    rot = {n: torch.zeros(frames, 3) for n in names}
    half = t < T / 2
    squat = torch.where(half, 0.5 - 0.5 * torch.cos(2 * math.pi * t / (T / 2)), torch.zeros_like(t))
    lift = torch.where(half, torch.zeros_like(t), torch.sin(math.pi * (t - T / 2) / (T / 2)).square())
    for side in ("L", "R"):
        rot[f"upperleg01.{side}"][:, 0] = -0.7 * squat
        rot[f"lowerleg01.{side}"][:, 0] = 1.3 * squat
        rot[f"foot.{side}"][:, 0] = -0.6 * squat
    rot["upperleg01.L"][:, 0] += -1.1 * lift
    rot["lowerleg01.L"][:, 0] += 1.4 * lift
    a = 0.5 - 0.5 * torch.cos(2 * math.pi * t / (T / 2))
    b = 0.5 - 0.5 * torch.cos(2 * math.pi * t / T)
    rot["upperarm01.L"][:, 2] = -0.45 + 1.4 * a
    rot["lowerarm01.L"][:, 0] = -0.9 * a
    rot["upperarm01.R"][:, 0] = -1.3 * b
    rot["upperarm01.R"][:, 2] = 0.45 * (1 - b)
    rot["lowerarm01.R"][:, 0] = -0.6 * b
    rot["spine03"][:, 1] = 0.3 * torch.sin(2 * math.pi * t / T)
    rot["head"][:, 1] = -0.2 * torch.sin(2 * math.pi * t / T)
    global_orient = torch.zeros(frames, 3)
    global_orient[:, 1] = math.radians(20)
    return Motion("known", fps, names, torch.stack([rot[n] for n in names], 1), global_orient, torch.zeros(frames, 3))


def place_in_view(body: BodyModel, motion: Motion, distance: float = 2.8) -> BodyPose:
    """The motion's poses with the root moved so that the right foot stays where it is in the
    first frame, the body centred `distance` metres in front of the camera (at the origin,
    looking along -Z)."""
    pose = motion.to_pose(body)
    rig = KeypointRig(body)
    right = [COCO23.index("right_heel"), COCO23.index("right_big_toe")]
    with torch.no_grad():
        points = rig.keypoints(pose)
        foot = points[:, right].mean(1)  # (F, 3)
        pose.translation = pose.translation - (foot - foot[:1])
        centre = rig.keypoints(pose.index(0))[0].mean(0)
    pose.translation = pose.translation - centre + torch.tensor([0.0, 0.0, -distance])
    return pose


def render_clip(body: BodyModel, avatar: GaussianAvatar, poses: BodyPose, camera: Camera, background: np.ndarray | None = None):
    """Frames (H, W, 3) uint8 of the avatar in each pose, on `background` (H, W, 3) float or white."""
    rig = AvatarRig(body, avatar)
    bg = torch.ones(camera.height, camera.width, 3) if background is None else torch.from_numpy(background).float()
    frames = []
    with torch.no_grad():
        for i in range(poses.batch):
            out = render_gaussians(avatar, rig.posed_means(avatar, poses.index(i))[0], camera, torch.zeros(3))
            image = out.features + (1 - out.alpha[..., None]) * bg
            frames.append((image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy())
    return np.stack(frames)


def clip_camera(width: int = 480, height: int = 640) -> Camera:
    return photo_camera(width, height, 50.0)


LIMBS = {
    "upperleg01.L": "lowerleg01.L", "upperleg01.R": "lowerleg01.R", "lowerleg01.L": "foot.L", "lowerleg01.R": "foot.R",
    "upperarm01.L": "lowerarm01.L", "upperarm01.R": "lowerarm01.R", "lowerarm01.L": "wrist.L", "lowerarm01.R": "wrist.R",
}  # fmt: skip


def _world(body: BodyModel, pose: BodyPose):
    """World rotations (F, J, 3, 3) and joint positions (F, J, 3) of the average body."""
    from persona.generate.retarget import body_skeleton, forward_kinematics

    sk = body_skeleton(body)
    local = roma.rotvec_to_rotmat(pose.joint_rotations)
    return forward_kinematics(sk, local, roma.rotvec_to_rotmat(pose.global_orient), sk.joints[0] + pose.translation)


def segment_errors(body: BodyModel, truth: BodyPose, estimate: BodyPose) -> dict[str, dict[str, float]]:
    """Per limb joint (`LIMBS`), mean over frames, degrees: `direction`, the angle between the
    true and estimated bone directions (joint -> child joint) in the camera's world;
    `geodesic`, the angle between the joints' world rotations (twist included)."""
    with torch.no_grad():
        G_t, P_t = _world(body, truth)
        G_e, P_e = _world(body, estimate)
    out: dict[str, dict[str, float]] = {"direction": {}, "geodesic": {}}
    for joint, child in LIMBS.items():
        j, c = body.joint_index(joint), body.joint_index(child)
        d_t = torch.nn.functional.normalize(P_t[:, c] - P_t[:, j], dim=-1)
        d_e = torch.nn.functional.normalize(P_e[:, c] - P_e[:, j], dim=-1)
        out["direction"][joint] = float(torch.acos((d_t * d_e).sum(-1).clamp(-1, 1)).rad2deg().mean())
        out["geodesic"][joint] = float(roma.rotmat_geodesic_distance(G_t[:, j], G_e[:, j]).rad2deg().mean())
    return out


def foot_sliding(body: BodyModel, truth: BodyPose, estimate: BodyPose, still_m: float = 0.002) -> dict[str, float]:
    """How far the captured feet move while the true ones stand still (a foot's heel and big-toe
    keypoints moving less than `still_m` metres between two frames), centimetres per frame:
    `mean`, `p95`, and the true feet's own `truth_mean` for scale."""
    rig = KeypointRig(body)
    with torch.no_grad():
        k_t, k_e = rig.keypoints(truth), rig.keypoints(estimate)
    steps_t, steps_e = [], []
    for side in ("left", "right"):
        index = [COCO23.index(f"{side}_heel"), COCO23.index(f"{side}_big_toe")]
        t = k_t[:, index].mean(1)
        e = k_e[:, index].mean(1)
        move_t = (t[1:] - t[:-1]).norm(dim=-1)
        move_e = (e[1:] - e[:-1]).norm(dim=-1)
        still = move_t < still_m
        steps_t.append(move_t[still])
        steps_e.append(move_e[still])
    e = torch.cat(steps_e) * 100
    return {"mean": float(e.mean()), "p95": float(torch.quantile(e, 0.95)), "truth_mean": float(torch.cat(steps_t).mean() * 100), "frames": int(len(e))}
