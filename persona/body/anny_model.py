"""The anny body model (naver, Apache-2.0) behind the `BodyModel` interface.

anny works in its own frame: metres, **Z up**, the body facing **-Y**, its left at +X. We
convert at this boundary to the project frame (Y up, facing +Z) with the rotation
`ANNY_TO_WORLD` (x, y, z) -> (x, z, -y). anny's 'local-ref' pose parameterization takes
per-bone rotations in world-aligned axes; we conjugate them by the same rotation, so callers
give rotations about the project's axes.

The first construction builds anny's ~800 MB cache (about a minute on 2 cores, in
`ANNY_CACHE_DIR`, see `persona.cache`); later constructions take under a second.
"""

from __future__ import annotations

import functools
import logging
import warnings
from typing import Callable

import roma
import torch

from persona.body.model import BodyModel, BodyPose, PosedBody

log = logging.getLogger(__name__)

# x_world = ANNY_TO_WORLD @ x_anny
ANNY_TO_WORLD = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

SHAPE_NAMES = ["gender", "age", "muscle", "weight", "height", "proportions"]

# Joints the photo fit may rotate, with the strength of their prior (higher = stiffer).
FIT_JOINTS: dict[str, float] = {
    "spine05": 4.0, "spine04": 4.0, "spine03": 4.0, "spine02": 4.0, "spine01": 4.0,
    "neck01": 2.0, "neck02": 2.0, "head": 1.0,
    "clavicle.L": 4.0, "clavicle.R": 4.0,
    "upperarm01.L": 0.3, "upperarm01.R": 0.3, "lowerarm01.L": 0.3, "lowerarm01.R": 0.3,
    "wrist.L": 1.0, "wrist.R": 1.0,
    "upperleg01.L": 0.5, "upperleg01.R": 0.5, "lowerleg01.L": 0.5, "lowerleg01.R": 0.5,
    "foot.L": 1.0, "foot.R": 1.0,
}  # fmt: skip
KNEE_JOINTS = ("lowerleg01.L", "lowerleg01.R")
HEAD_JOINTS = ("head", "neck02", "neck03", "eye.L", "eye.R")
PART_ROOTS = (
    "root", "neck01", "upperarm01.L", "lowerarm01.L", "upperarm01.R", "lowerarm01.R",
    "upperleg01.L", "lowerleg01.L", "upperleg01.R", "lowerleg01.R",
)  # fmt: skip
RIGID_ROOTS = ("wrist.L", "wrist.R", "eye.L", "eye.R")


def _homogeneous(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """R: (..., 3, 3), t: (..., 3) -> (..., 4, 4)."""
    M = torch.zeros(*R.shape[:-2], 4, 4, dtype=R.dtype, device=R.device)
    M[..., :3, :3] = R
    M[..., :3, 3] = t
    M[..., 3, 3] = 1.0
    return M


class AnnyBody(BodyModel):
    """anny's default full-body model (13,718 vertices, 104 bones) in float32."""

    name = "anny"
    fit_joints = FIT_JOINTS
    knee_joints = KNEE_JOINTS
    head_joints = HEAD_JOINTS
    part_roots = PART_ROOTS
    rigid_roots = RIGID_ROOTS
    face_joint = "head"

    def __init__(self, device: torch.device | str = "cpu"):
        try:
            import warp  # anny's skinning kernels; silence its start-up banner

            warp.config.log_level = warp.LOG_ERROR
        except ImportError:  # anny then skins with its dense PyTorch LBS (same result)
            warnings.filterwarnings("ignore", "Fallback to lbs skinning", UserWarning)
        import anny  # heavy import, and it reads ANNY_CACHE_DIR at import time

        self._anny = anny.Anny().float().to(device)
        m = self._anny
        self.device = torch.device(device)
        self.joint_names = list(m.bone_labels)
        self.parents = [int(p) for p in m.bone_parents]
        self.faces = m.get_triangular_faces().long().to(device)
        self.uvs = m.texture_coordinates.float().to(device)
        self.face_uvs = m.face_texture_coordinate_indices.long().to(device)
        V, J = m.template_vertices.shape[0], len(self.joint_names)
        dense = torch.zeros(V, J, device=device)
        dense.scatter_add_(1, m.vertex_bone_indices.long(), m.vertex_bone_weights.float())
        self.skin_weights = dense / dense.sum(1, keepdim=True).clamp(min=1e-8)
        regressor = anny.KeypointsRegressor.coco(m)
        self.keypoint_names = list(regressor.labels)
        self.keypoint_regressor = regressor.regression_weights.float().to(device)
        self.shape_names = list(SHAPE_NAMES)
        assert list(m.phenotype_labels) == self.shape_names, m.phenotype_labels
        self.default_shape = torch.full((len(SHAPE_NAMES),), 0.5, device=device)
        self._C = ANNY_TO_WORLD.to(device)
        self._C4 = _homogeneous(self._C, torch.zeros(3, device=device))

    def _to_world(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self._C.T

    def rest_vertices(self, shape: torch.Tensor) -> torch.Tensor:
        coeffs = self._anny._get_phenotype_blendshape_coefficients(
            shape, torch.zeros(shape.shape[0], 0, device=shape.device), torch.zeros(shape.shape[0], 0, device=shape.device)
        )
        return self._to_world(self._anny.get_rest_vertices(coeffs))

    def rest_joints(self, shape: torch.Tensor) -> torch.Tensor:
        coeffs = self._anny._get_phenotype_blendshape_coefficients(
            shape, torch.zeros(shape.shape[0], 0, device=shape.device), torch.zeros(shape.shape[0], 0, device=shape.device)
        )
        return self._to_world(self._anny.get_rest_model(coeffs)["rest_bone_heads"])

    def _deltas(self, pose: BodyPose) -> torch.Tensor:
        """(B, J, 4, 4) anny's per-bone pose parameters: rotations about project axes turned
        into rotations about anny axes (conjugation by C); the root's stays the identity."""
        B, J = pose.batch, self.num_joints
        R_world = roma.rotvec_to_rotmat(pose.joint_rotations)  # (B, J, 3, 3)
        R_anny = self._C.T @ R_world @ self._C
        R_anny = torch.cat([torch.eye(3, device=R_anny.device).expand(B, 1, 3, 3), R_anny[:, 1:]], 1)
        return _homogeneous(R_anny, torch.zeros(B, J, 3, device=R_anny.device))

    def _to_world_transforms(self, T_anny: torch.Tensor, root: torch.Tensor, pose: BodyPose) -> tuple[torch.Tensor, torch.Tensor]:
        """T_anny: (B, J, 4, 4) rest-to-posed transforms in anny's frame; root: (B or 1, 3) the
        rest root joint (world) -> (world transforms (B, J, 4, 4), the global placement G (B, 4, 4))."""
        B = pose.batch
        R_g = roma.rotvec_to_rotmat(pose.global_orient)  # (B, 3, 3)
        root = root.expand(B, 3)
        G = _homogeneous(R_g, root - (R_g @ root[..., None])[..., 0] + pose.translation)  # (B, 4, 4)
        return G[:, None] @ self._C4 @ T_anny @ self._C4.T, G

    def forward(self, shape: torch.Tensor, pose: BodyPose) -> PosedBody:
        B = pose.batch
        out = self._anny(pose_parameters=self._deltas(pose), phenotype_kwargs=shape.expand(B, -1) if shape.shape[0] == 1 else shape)
        # T_c = W_c P_c^-1 maps rest points to posed points (anny frame).
        T_anny = out["bone_poses"] @ torch.linalg.inv(out["rest_bone_poses"]).expand(B, -1, -1, -1)
        T_world, G = self._to_world_transforms(T_anny, self._to_world(out["rest_bone_heads"][:, 0]), pose)
        vertices = self._to_world(out["vertices"]) @ G[:, :3, :3].transpose(1, 2) + G[:, None, :3, 3]
        return PosedBody(vertices, T_world, self.keypoints_from_vertices(vertices))

    def posing(self, shape: torch.Tensor) -> Callable[[BodyPose], torch.Tensor]:
        """Bone transforms of one shape: its rest skeleton (blendshapes, bone orientations by
        Procrustes, ~14 ms on a GPU) worked out once; each call is forward kinematics alone."""
        shape = shape.detach()
        zeros = torch.zeros(1, 0, device=shape.device)
        with torch.no_grad():
            rest = self._anny.get_rest_model(self._anny._get_phenotype_blendshape_coefficients(shape, zeros, zeros))
        rest_poses = rest["rest_bone_poses"]  # (1, J, 4, 4)
        inverse_rest = torch.linalg.inv(rest_poses)
        root = self._to_world(rest["rest_bone_heads"][:, 0])  # (1, 3)

        def transforms(pose: BodyPose) -> torch.Tensor:
            _, bone_poses = self._anny.get_bone_transforms(self._deltas(pose), rest_poses)
            return self._to_world_transforms(bone_poses @ inverse_rest, root, pose)[0]

        return transforms


@functools.lru_cache(maxsize=2)
def load_anny(device: str = "cpu") -> AnnyBody:
    """The shared anny model for a device (built once per process; read-only afterwards)."""
    log.info("loading the anny body model (first use builds its cache, about a minute)")
    return AnnyBody(device)
