"""The body-model interface every later stage uses, and the typed values it returns.

All quantities are in the project's world frame (see `persona.camera`): metres, Y up, the rest
body facing +Z. Poses are per-joint axis-angle rotations relative to the rest pose, expressed
in world-aligned axes at each joint ("local-ref": rotating the left elbow about +X bends it the
same way whatever the rest orientation of the bone), followed by a global rotation about the
root and a translation.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class BodyPose:
    """A batch of body poses.

    joint_rotations: (B, J, 3) axis-angle per joint, radians, world-aligned local axes.
    global_orient:   (B, 3) axis-angle of the whole body about its root joint.
    translation:     (B, 3) metres, added after the global rotation.
    """

    joint_rotations: torch.Tensor
    global_orient: torch.Tensor
    translation: torch.Tensor

    @staticmethod
    def zeros(batch: int, joints: int, dtype=torch.float32, device=None) -> "BodyPose":
        z = lambda *s: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
        return BodyPose(z(batch, joints, 3), z(batch, 3), z(batch, 3))

    @property
    def batch(self) -> int:
        return self.joint_rotations.shape[0]

    def detach(self) -> "BodyPose":
        return BodyPose(*(t.detach().clone() for t in (self.joint_rotations, self.global_orient, self.translation)))

    def to(self, device: torch.device | str) -> "BodyPose":
        return BodyPose(*(t.to(device) for t in (self.joint_rotations, self.global_orient, self.translation)))

    def index(self, i: int | slice | torch.Tensor) -> "BodyPose":
        """A sub-batch (keeps the batch dimension for an int index)."""
        if isinstance(i, int):
            i = slice(i, i + 1)
        return BodyPose(self.joint_rotations[i], self.global_orient[i], self.translation[i])


@dataclass
class PosedBody:
    """vertices: (B, V, 3); bone_transforms: (B, J, 4, 4) mapping rest-shape points to posed
    points (so LBS of any point bound to the body is sum_j w_j T_j x); keypoints: (B, K, 3)."""

    vertices: torch.Tensor
    bone_transforms: torch.Tensor
    keypoints: torch.Tensor


class BodyModel(abc.ABC):
    """A skinned parametric body.

    Attributes set by implementations:
        name: short identifier stored in avatar packages ("anny", "smplx").
        joint_names: J names; parents: J parent indices (-1 for the root).
        faces: (F, 3) int64 triangles. uvs: (T, 2) texture coordinates in [0, 1];
        face_uvs: (F, 3) indices into uvs.
        skin_weights: (V, J) float32 dense LBS weights, rows sum to 1.
        keypoint_names: K names (COCO-23 order: 17 COCO body points + 6 foot points).
        shape_names: S names of the shape parameters, each in [0, 1] (0.5 = average; the
        fit optimises them through a sigmoid); default_shape: (S,) tensor.
        fit_joints: {joint name: prior strength} of the joints the photo fit may rotate
        (higher = stiffer); knee_joints: the two knees (the fit lets them bend forwards only,
        positive rotation about +X); fit_prior_mean: {joint name: axis-angle} the fit starts
        from and pulls towards (default: the zero pose; SMPL-X lowers its T-pose arms);
        head_joints: joints whose skinned region is the head (the texture fill treats it apart).
        part_roots: joints that start a body part (torso, head, upper/lower arms and legs): a
        joint belongs to the part of its nearest ancestor among them (the root's part: the
        first); used for part segmentation. rigid_roots: joints whose whole subtree gets no
        learned offset (hands, eyes, jaw); face_joint: the joint whose front half is the face
        (no learned offset either).
    """

    name: str
    joint_names: list[str]
    parents: list[int]
    faces: torch.Tensor
    uvs: torch.Tensor
    face_uvs: torch.Tensor
    skin_weights: torch.Tensor
    keypoint_names: list[str]
    shape_names: list[str]
    default_shape: torch.Tensor
    fit_joints: dict[str, float]
    knee_joints: tuple[str, str]
    head_joints: tuple[str, ...]
    part_roots: tuple[str, ...]
    rigid_roots: tuple[str, ...]
    face_joint: str
    fit_prior_mean: dict[str, tuple[float, float, float]] = {}

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def joint_index(self, name: str) -> int:
        return self.joint_names.index(name)

    @abc.abstractmethod
    def rest_vertices(self, shape: torch.Tensor) -> torch.Tensor:
        """shape: (B, S) -> (B, V, 3) vertices of that body in the rest pose."""

    @abc.abstractmethod
    def forward(self, shape: torch.Tensor, pose: BodyPose) -> PosedBody:
        """shape: (B or 1, S); pose: batch B -> the posed body (differentiable in both)."""

    def posing(self, shape: torch.Tensor) -> Callable[[BodyPose], torch.Tensor]:
        """For one body shape (1, S), treated as a constant: a function from a pose (batch B)
        to its bone transforms (B, J, 4, 4), as `forward(shape, pose).bone_transforms`.
        Models override it to work out the shape's rest state once (the avatar's loops pose
        one shape thousands of times and never need the vertices)."""
        shape = shape.detach()
        return lambda pose: self.forward(shape, pose).bone_transforms

    def rest_joints(self, shape: torch.Tensor) -> torch.Tensor:
        """shape: (B, S) -> (B, J, 3) joint centres in the space of `rest_vertices`, so that the
        posed joint j is `bone_transforms[:, j] @ (rest_joints[:, j], 1)` (used to retarget
        motions between skeletons)."""
        raise NotImplementedError(f"{type(self).__name__} does not give its joint centres")

    def keypoints_from_vertices(self, vertices: torch.Tensor) -> torch.Tensor:
        """vertices: (B, V, 3) -> keypoints (B, K, 3) with the model's regressor."""
        return torch.einsum("kv,bvd->bkd", self.keypoint_regressor, vertices)

    keypoint_regressor: torch.Tensor  # (K, V)
