"""Pose-driven deformation: a triplane over the canonical body and a small MLP that map a
Gaussian's canonical position and the body pose to a canonical offset (PERSONA, DESIGN.md §1.3).

For each Gaussian: features sampled from three axis-aligned feature planes (XY, XZ, YZ) over a
cube around the rest body, concatenated with the pose (a 6D rotation per driving joint, zero at
the rest pose), of which only the joints within `hops` bones of the point's dominant joint are
kept (the others are zeroed, so a hand's pose cannot move a foot's cloth); an MLP (Linear,
GroupNorm, ReLU; zero-initialised output layer) gives 3 numbers times `output_scale` metres
(PERSONA: /100). Rigid points (hands, face, eyes) get no offset. With `pose_response`
"linear" the MLP reads the triplane features alone and the offset is linear in the masked
pose (a blend shape per point): it cannot fit a frame's own garment noise through the exact
pose, and it carries to unseen poses better (README, 2026-12-06).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import roma
import torch
from torch import nn
import torch.nn.functional as F


@dataclass
class DeformConfig:
    triplane_channels: int = 16  # per plane (PERSONA: 32)
    triplane_resolution: int = 64  # texels along each side (PERSONA: 128)
    extent: float = 2.0  # side of the cube the planes cover, metres, centred on the rest body
    hidden: int = 128  # MLP width (PERSONA: 128)
    hidden_layers: int = 3  # Linear + GroupNorm + ReLU blocks (PERSONA: 3)
    groups: int = 8  # GroupNorm groups
    hops: int = 4  # pose joints within this many bones of a point's dominant joint are seen
    # Where the bones are counted (`persona.body.regions.pose_input_mask`): "driving", on the
    # tree of the driving joints; "skeleton", on the body's whole skeleton (packages written
    # before 2026-12-03 did so: they load with it and animate as they were trained).
    hop_tree: str = "driving"
    output_scale: float = 0.01  # metres per unit of MLP output (PERSONA: /100)
    # How the pose enters (`POSE_RESPONSES`): "mlp", PERSONA's, the masked pose beside the
    # triplane features at the MLP's input; "linear", the MLP reads the triplane features alone
    # and gives each point a 3 x (6P + 1) matrix that the masked pose multiplies (a
    # pose-corrective blend shape per point, as SMPL's, linear in the pose's 6D features).
    pose_response: str = "mlp"


POSE_RESPONSES = ("mlp", "linear")


def pose_features(joint_rotations: torch.Tensor) -> torch.Tensor:
    """(B, P, 3) axis-angle -> (B, P, 6): the first two columns of the rotation matrix minus
    the identity's, so the rest pose is all zeros."""
    R = roma.rotvec_to_rotmat(joint_rotations)  # (B, P, 3, 3)
    six = R[..., :, :2].transpose(-1, -2).reshape(*R.shape[:-2], 6)
    return six - _identity_six(six.dtype, six.device)


@functools.lru_cache(maxsize=8)
def _identity_six(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(6,) the identity's two columns, made once per device (no copy to the GPU per step)."""
    return torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype, device=device)


def _mlp_widths(config: DeformConfig, num_pose_joints: int) -> tuple[int, int]:
    """(inputs, outputs) of the MLP: the triplane features (and the masked pose, "mlp") in;
    an offset ("mlp") or a blend-shape matrix with a pose-free column ("linear") out."""
    if config.pose_response == "linear":
        return 3 * config.triplane_channels, 3 * (6 * num_pose_joints + 1)
    return 3 * config.triplane_channels + 6 * num_pose_joints, 3


class PoseDeformer(nn.Module):
    """Triplane + MLP (see the module doc).

    centre: (3,) the cube's centre (the rest body's box centre), metres;
    num_pose_joints: P driving joints; config: sizes.
    """

    def __init__(self, config: DeformConfig, num_pose_joints: int, centre: torch.Tensor):
        super().__init__()
        self.config = config
        C, R = config.triplane_channels, config.triplane_resolution
        self.register_buffer("centre", centre.detach().float().clone())
        self.triplane = nn.Parameter(torch.randn(3, C, R, R) * 0.01)
        if config.pose_response not in POSE_RESPONSES:
            raise ValueError(f"unknown pose response {config.pose_response!r}; choose one of {POSE_RESPONSES}")
        width, outputs = _mlp_widths(config, num_pose_joints)
        layers: list[nn.Module] = []
        for _ in range(config.hidden_layers):
            layers += [nn.Linear(width, config.hidden), nn.GroupNorm(config.groups, config.hidden), nn.ReLU()]
            width = config.hidden
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(width, outputs)
        nn.init.zeros_(self.out.weight)  # start from no offset
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def parameter_count(config: DeformConfig, num_pose_joints: int) -> int:
        """How many numbers a deformer of these sizes holds (a package's are checked against it)."""
        C, R, H, L = config.triplane_channels, config.triplane_resolution, config.hidden, config.hidden_layers
        inputs, outputs = _mlp_widths(config, num_pose_joints)
        # triplane; first block (Linear + GroupNorm); further blocks; output layer
        return 3 * C * R * R + (inputs * H + 3 * H) + (L - 1) * (H * H + 3 * H) + (H + 1) * outputs

    def plane_features(self, points: torch.Tensor) -> torch.Tensor:
        """points: (N, 3) canonical, metres -> (N, 3C) bilinear triplane features."""
        uvw = (points - self.centre) / (self.config.extent / 2)  # (N, 3) in [-1, 1] inside the cube
        pairs = torch.stack([uvw[:, :2], uvw[:, ::2], uvw[:, 1:]])  # (3, N, 2): xy, xz, yz (slices: no index copy to a GPU)
        sampled = F.grid_sample(self.triplane, pairs[:, :, None], mode="bilinear", padding_mode="border", align_corners=False)
        return sampled[..., 0].permute(2, 0, 1).reshape(points.shape[0], -1)  # (N, 3C)

    def forward(self, points: torch.Tensor, pose: torch.Tensor, pose_mask: torch.Tensor, movable: torch.Tensor) -> torch.Tensor:
        """points: (N, 3) canonical positions; pose: (B, P, 6) `pose_features`;
        pose_mask: (N, P) 0/1 joints each point sees; movable: (N,) 0 for rigid points.
        Returns (B, N, 3) canonical offsets, metres."""
        B, N = pose.shape[0], points.shape[0]
        planes = self.plane_features(points)  # (N, 3C)
        masked = (pose[:, None] * pose_mask[None, :, :, None]).flatten(2)  # (B, N, 6P)
        if self.config.pose_response == "linear":
            blend = self.out(self.mlp(planes)).view(N, 3, -1)  # (N, 3, 6P + 1): the last column is pose-free
            offsets = torch.einsum("nck,bnk->bnc", blend[..., :-1], masked) + blend[None, ..., -1]
        else:
            x = torch.cat([planes[None].expand(B, -1, -1), masked], -1).flatten(0, 1)  # (B N, 3C + 6P)
            offsets = self.out(self.mlp(x)).view(B, N, 3)
        return offsets * self.config.output_scale * movable[None, :, None]
