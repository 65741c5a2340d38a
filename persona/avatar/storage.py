"""The avatar to and from its files: `avatar.persona` (package) and `avatar.ply` (3DGS)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from persona.avatar.model import AvatarRig, GaussianAvatar
from persona.avatar.surface import SurfaceBinding
from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera
from persona.errors import PersonaError
from persona.io.package import LoadedPackage, PackageSchema, TensorSpec, read_package, write_package
from persona.io.ply import write_gaussian_ply

SUPPORTED_BODIES = ("anny", "smplx")

AVATAR_SCHEMA = PackageSchema(
    tensors={
        "shape": TensorSpec(torch.float32, ("S",)),
        "face_index": TensorSpec(torch.int64, ("N",)),
        "barycentric": TensorSpec(torch.float32, ("N", 3)),
        "offsets": TensorSpec(torch.float32, ("N", 3)),
        "log_scales": TensorSpec(torch.float32, ("N", 1)),
        "colors": TensorSpec(torch.float32, ("N", 3)),
        "photo_joint_rotations": TensorSpec(torch.float32, ("J", 3)),
        "photo_global_orient": TensorSpec(torch.float32, (3,)),
        "photo_translation": TensorSpec(torch.float32, (3,)),
        "photo_world_to_camera": TensorSpec(torch.float32, (4, 4)),
        "photo_intrinsics": TensorSpec(torch.float32, (4,)),  # fx, fy, cx, cy (pixels)
        "photo_size": TensorSpec(torch.int64, (2,)),  # width, height (pixels)
    }
)


def avatar_tensors(avatar: GaussianAvatar) -> dict[str, torch.Tensor]:
    cam = avatar.photo_camera
    return {
        "shape": avatar.shape.float(),
        "face_index": avatar.binding.face_index,
        "barycentric": avatar.binding.barycentric.float(),
        "offsets": avatar.offsets.float(),
        "log_scales": avatar.log_scales.float(),
        "colors": avatar.colors.float(),
        "photo_joint_rotations": avatar.photo_pose.joint_rotations[0].float(),
        "photo_global_orient": avatar.photo_pose.global_orient[0].float(),
        "photo_translation": avatar.photo_pose.translation[0].float(),
        "photo_world_to_camera": cam.world_to_camera.float(),
        "photo_intrinsics": torch.tensor([cam.fx, cam.fy, cam.cx, cam.cy]),
        "photo_size": torch.tensor([cam.width, cam.height]),
    }


def save_avatar(path: str | os.PathLike, avatar: GaussianAvatar, manifest: dict[str, Any]) -> Path:
    """Write `avatar.persona`; `manifest` adds to the body model name and counts."""
    record = {"body_model": avatar.body_name, "num_gaussians": avatar.num_gaussians, **manifest}
    return write_package(path, record, avatar_tensors(avatar))


def load_avatar(source: str | os.PathLike | bytes, body: BodyModel) -> GaussianAvatar:
    """Read and validate an avatar package for `body` (shapes checked against the body too)."""
    package: LoadedPackage = read_package(source, AVATAR_SCHEMA)
    m, t, dims = package.manifest, package.tensors, package.dims
    if m.get("body_model") != body.name:
        raise PersonaError(
            f"This avatar was made for the body model {m.get('body_model')!r}, not {body.name!r}. "
            f"Supported: {', '.join(SUPPORTED_BODIES)}."
        )
    if dims["S"] != len(body.shape_names) or dims["J"] != body.num_joints:
        raise PersonaError("The avatar package does not match this body model's shape or skeleton sizes.")
    if int(t["face_index"].min()) < 0 or int(t["face_index"].max()) >= body.faces.shape[0]:
        raise PersonaError("The avatar package refers to triangles the body model does not have.")
    if (t["barycentric"] < -1e-4).any() or ((t["barycentric"].sum(1) - 1).abs() > 1e-3).any():
        raise PersonaError("The avatar package has invalid surface coordinates.")
    fx, fy, cx, cy = t["photo_intrinsics"].tolist()
    width, height = t["photo_size"].tolist()
    if not (fx > 0 and fy > 0 and 0 < width <= 100_000 and 0 < height <= 100_000):
        raise PersonaError("The avatar package has an invalid camera.")
    return GaussianAvatar(
        body_name=body.name,
        shape=t["shape"],
        binding=SurfaceBinding(t["face_index"], t["barycentric"]),
        offsets=t["offsets"],
        log_scales=t["log_scales"],
        colors=t["colors"],
        photo_pose=BodyPose(t["photo_joint_rotations"][None], t["photo_global_orient"][None], t["photo_translation"][None]),
        photo_camera=Camera(t["photo_world_to_camera"], fx, fy, cx, cy, int(width), int(height)),
    )


def export_ply(path: str | os.PathLike, avatar: GaussianAvatar, rig: AvatarRig) -> Path:
    """The Gaussians in the canonical (rest) pose, Y up, metres, standard 3DGS layout."""
    means = rig.rest_points + avatar.offsets
    N = avatar.num_gaussians
    quats = torch.zeros(N, 4)
    quats[:, 0] = 1.0
    return write_gaussian_ply(
        path, means, avatar.log_scales.exp().expand(N, 3), quats, avatar.opacities(), avatar.colors
    )
