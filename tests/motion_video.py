"""Synthetic driving videos with a known motion, for the motion-capture test and benchmark.

The person is the avatar of the example photo (its texture projected from
examples/person_half.png onto the real anny body, 13,718 Gaussians), rendered by the
reference rasterizer in known poses, so mediapipe sees a textured, person-like figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from persona.avatar.model import AvatarRig, GaussianAvatar, render_gaussians
from persona.avatar.train import AvatarConfig, initial_avatar
from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera
from persona.generate.motions import Motion
from persona.perceive.fit import photo_camera
from persona.perceive.fit_motion import KeypointRig
from persona.perceive.keypoints import COCO23

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "person_half.png"


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
