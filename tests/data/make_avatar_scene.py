"""Regenerate avatar_scene.safetensors: the preview avatar of examples/person_half.png, posed
as in the photo, for the GPU parity test (the GPU machine has no anny or mediapipe).

    python tests/data/make_avatar_scene.py OUTPUT_DIR_OF_A_PREVIEW_MAKE
"""

import sys
from pathlib import Path

import safetensors.torch
import torch

from persona.avatar.model import AvatarRig
from persona.avatar.storage import load_avatar
from persona.body.anny_model import load_anny

body = load_anny()
avatar = load_avatar(Path(sys.argv[1]) / "avatar.persona", body)
rig = AvatarRig(body, avatar)
with torch.no_grad():
    means = rig.pose_points(rig.rest_points + avatar.offsets, avatar.photo_pose)[0]
cam = avatar.photo_camera
safetensors.torch.save_file(
    {
        "means": means.contiguous(),
        "scales": avatar.log_scales.exp().expand(-1, 3).contiguous(),
        "colors": avatar.colors.contiguous(),
        "world_to_camera": cam.world_to_camera.contiguous(),
        "intrinsics": torch.tensor([cam.fx, cam.fy, cam.cx, cam.cy]),
        "size": torch.tensor([cam.width, cam.height]),
    },
    Path(__file__).with_name("avatar_scene.safetensors"),
)
