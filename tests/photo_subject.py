"""A photo-like generation input on the real body, shared by the generator tests: the body
3 m in front of the fit's camera, the 'photo' being the first avatar's own render."""

from __future__ import annotations

import math

import torch

from persona.avatar.model import AvatarRig, render_gaussians
from persona.avatar.train import AvatarConfig, initial_avatar
from persona.body.model import BodyModel, BodyPose
from persona.generate.generator import GenerationInputs
from persona.generate.training_set import TrainingFrame
from persona.perceive.fit import photo_camera


def photo_subject(body: BodyModel, width: int, height: int, turn_deg: float, arm_raise: float = 0.0) -> GenerationInputs:
    """The body turned `turn_deg` to its left, the left arm raised by `arm_raise` radians,
    seen by a width x height camera with a 50 degree field of view; coloured by a gradient."""
    shape = body.default_shape
    rest = body.rest_vertices(shape[None])[0]
    pose = BodyPose.zeros(1, body.num_joints)
    pose.translation[0] = -(rest.amax(0) + rest.amin(0)) / 2 + torch.tensor([0.0, 0.0, -3.0])
    pose.global_orient[0, 1] = math.radians(turn_deg)
    if arm_raise:
        pose.joint_rotations[0, body.joint_index("upperarm01.L"), 2] = arm_raise
    camera = photo_camera(width, height, 50.0)
    colours = (rest - rest.amin(0)) / (rest.amax(0) - rest.amin(0))  # (V, 3) a colour gradient
    avatar = initial_avatar(body, shape, pose, camera, colours, AvatarConfig(subdivision=0))
    rig = AvatarRig(body, avatar)
    with torch.no_grad():
        out = render_gaussians(avatar, rig.pose_points(rig.rest_points, pose)[0], camera, torch.ones(3))
    photo = TrainingFrame(out.features.clamp(0, 1), out.alpha, pose, camera, captured=True, motion="photo")
    return GenerationInputs(photo, body, shape, avatar, rig)
