"""The avatar to and from its files: `avatar.persona` (package) and `avatar.ply` (3DGS)."""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from persona.avatar.deform import POSE_RESPONSES, DeformConfig, PoseDeformer
from persona.avatar.model import AvatarRig, GaussianAvatar, identity_quats
from persona.body.regions import HOP_TREES
from persona.body.weight_field import WeightFieldConfig
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
    },
    optional={  # the pose-driven deformation (its sizes are in the manifest's "deformation")
        "deform_params": TensorSpec(torch.float32, ("D",)),  # the deformer's parameters, flattened
        "deform_centre": TensorSpec(torch.float32, (3,)),  # the triplane cube's centre, metres
    },
)

# Bounds on a package's deformation sizes: a hostile manifest must not make us allocate or
# compute without limit (the parameter count is checked against the tensor besides).
_DEFORM_LIMITS = {
    "triplane_channels": (1, 64), "triplane_resolution": (2, 512), "hidden": (4, 1024), "hidden_layers": (1, 8),
    "groups": (1, 64), "hops": (0, 64), "resolution": (4, 128), "iterations": (0, 1000), "levels": (1, 6), "stencil": (0, 8),
    "near": (0.0, 1.0), "far": (0.0, 1.0),
}  # fmt: skip
_DEFORM_CHOICES = {"hop_tree": HOP_TREES, "pose_response": POSE_RESPONSES}
# Settings that packages written before they existed lack, with the values that reproduce them
# (diffused weights everywhere, no distance blend; hops counted on the whole skeleton; the
# pose beside the triplane features at the MLP's input).
_LEGACY_SETTINGS = {"near": 0.0, "far": 0.0, "hop_tree": "skeleton", "pose_response": "mlp"}


def avatar_tensors(avatar: GaussianAvatar) -> dict[str, torch.Tensor]:
    cam = avatar.photo_camera
    deformation = {}
    if avatar.deformer is not None:
        deformation = {
            "deform_params": parameters_to_vector(avatar.deformer.parameters()).detach().float().cpu(),
            "deform_centre": avatar.deformer.centre.float().cpu(),
        }
    return {
        **deformation,
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
    if avatar.deformer is not None:
        record["deformation"] = {
            "deform": asdict(avatar.deformer.config),
            "skinning": None if avatar.skinning is None else asdict(avatar.skinning),
            "pose_joints": list(avatar.pose_joints),
        }
    return write_package(path, record, avatar_tensors(avatar))


def _config_from_manifest(cls, values: Any, what: str):
    """A config dataclass from a manifest object, every field checked (type and bounds)."""
    names = {f.name for f in fields(cls)}
    if isinstance(values, dict):
        values = {**{k: v for k, v in _LEGACY_SETTINGS.items() if k in names}, **values}
    if not isinstance(values, dict) or set(values) != names:
        raise PersonaError(f"The avatar package's deformation settings ({what}) are incomplete or unknown.")
    for f in fields(cls):
        value, default = values[f.name], getattr(cls(), f.name)
        if isinstance(default, int) and not (isinstance(value, int) and not isinstance(value, bool)):
            raise PersonaError(f"The avatar package's deformation setting {f.name!r} must be an integer.")
        if isinstance(default, float) and not (isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e3):
            raise PersonaError(f"The avatar package's deformation setting {f.name!r} must be a number.")
        if isinstance(default, str) and value not in _DEFORM_CHOICES[f.name]:
            raise PersonaError(f"The avatar package's deformation setting {f.name!r} must be one of {_DEFORM_CHOICES[f.name]}.")
        lo, hi = _DEFORM_LIMITS.get(f.name, (None, None))
        if lo is not None and not lo <= value <= hi:
            raise PersonaError(f"The avatar package's deformation setting {f.name!r} = {value} is outside [{lo}, {hi}].")
    return cls(**values)


def _load_deformer(manifest: dict[str, Any], tensors: dict[str, torch.Tensor], body: BodyModel):
    """(deformer, skinning config, pose joint names) from a package, or (None, None, ())."""
    has = [name in tensors for name in ("deform_params", "deform_centre")]
    if not any(has) and "deformation" not in manifest:
        return None, None, ()
    if not all(has) or not isinstance(manifest.get("deformation"), dict):
        raise PersonaError("The avatar package's pose-driven deformation is incomplete.")
    record = manifest["deformation"]
    deform = _config_from_manifest(DeformConfig, record.get("deform"), "deform")
    skinning = None if record.get("skinning", 0) is None else _config_from_manifest(WeightFieldConfig, record.get("skinning"), "skinning")
    joints = record.get("pose_joints")
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) and j in body.joint_names for j in joints):
        raise PersonaError("The avatar package's deformation names joints this body model does not have.")
    if deform.hidden % deform.groups:
        raise PersonaError("The avatar package's deformation settings are inconsistent (hidden / groups).")
    if tensors["deform_params"].numel() != PoseDeformer.parameter_count(deform, len(joints)):
        raise PersonaError("The avatar package's deformation parameters do not match its settings.")
    deformer = PoseDeformer(deform, len(joints), tensors["deform_centre"])
    vector_to_parameters(tensors["deform_params"], deformer.parameters())
    return deformer.requires_grad_(False), skinning, tuple(joints)


def load_avatar(source: str | os.PathLike | bytes, body: BodyModel) -> GaussianAvatar:
    """Read and validate an avatar package for `body` (shapes checked against the body too);
    the avatar comes on the body's device."""
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
    deformer, skinning, pose_joints = _load_deformer(m, t, body)
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
        deformer=deformer,
        skinning=skinning,
        pose_joints=pose_joints,
    ).to(body.faces.device)


def export_ply(path: str | os.PathLike, avatar: GaussianAvatar, rig: AvatarRig) -> Path:
    """The Gaussians in the canonical (rest) pose, Y up, metres, standard 3DGS layout
    (with the pose-driven deformation of the rest pose, when the avatar has one)."""
    with torch.no_grad():
        means = rig.rest_pose_means(avatar) if avatar.deformer is not None else rig.rest_points + avatar.offsets
    N = avatar.num_gaussians
    quats = identity_quats(N, means)
    return write_gaussian_ply(
        path, means, avatar.log_scales.exp().expand(N, 3), quats, avatar.opacities(), avatar.colors
    )
