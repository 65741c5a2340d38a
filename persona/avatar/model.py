"""The Gaussian avatar: Gaussians bound to the body surface, posed by linear blend skinning.

A Gaussian's canonical centre is its surface point on the rest body (for the avatar's shape)
plus a learned offset; it is isotropic (one log-scale), nearly opaque, and has an RGB colour.
Posing blends the body's bone transforms with the Gaussian's skinning weights, interpolated
from the vertices of its triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from persona.avatar.rasterizer import RenderOutput
from persona.avatar.renderer import render
from persona.avatar.surface import SurfaceBinding
from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera

OPACITY = 0.99  # fixed, as in PERSONA (opacity 1, no densification)


@dataclass
class GaussianAvatar:
    """Everything needed to animate the person (what `avatar.persona` stores).

    shape: (S,) body shape parameters; binding: N surface points;
    offsets: (N, 3) canonical offsets, metres; log_scales: (N, 1) log std, metres;
    colors: (N, 3) RGB in [0, 1];
    photo_pose / photo_camera: the body pose (batch 1) and camera of the input photo.
    """

    body_name: str
    shape: torch.Tensor
    binding: SurfaceBinding
    offsets: torch.Tensor
    log_scales: torch.Tensor
    colors: torch.Tensor
    photo_pose: BodyPose
    photo_camera: Camera

    @property
    def num_gaussians(self) -> int:
        return len(self.binding)

    def opacities(self) -> torch.Tensor:  # (N,)
        return torch.full((self.num_gaussians,), OPACITY, dtype=self.colors.dtype, device=self.colors.device)


class AvatarRig:
    """The body-dependent constants of an avatar: rest surface points and skinning weights.

    rest_points: (N, 3) canonical surface points (before offsets); weights: (N, J).
    """

    def __init__(self, body: BodyModel, avatar: GaussianAvatar):
        self.body = body
        self.shape = avatar.shape
        with torch.no_grad():
            rest = body.rest_vertices(avatar.shape[None])[0]
        self.rest_points = avatar.binding.interpolate(body.faces, rest)
        self.weights = avatar.binding.interpolate(body.faces, body.skin_weights)

    def pose_points(self, canonical: torch.Tensor, pose: BodyPose) -> torch.Tensor:
        """canonical: (N, 3) -> (B, N, 3) posed by LBS for each pose of the batch."""
        with torch.no_grad():
            transforms = self.body.forward(self.shape[None], pose).bone_transforms  # (B, J, 4, 4)
        return blend_points(self.weights, transforms, canonical)

    def rest_pose_points(self, canonical: torch.Tensor) -> torch.Tensor:
        """(N, 3) canonical points in the zero pose (the body's reference A-pose)."""
        return self.pose_points(canonical, BodyPose.zeros(1, self.body.num_joints))[0]


def blend_points(weights: torch.Tensor, transforms: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning. weights: (N, J); transforms: (B, J, 4, 4); points: (N, 3) -> (B, N, 3)."""
    blended = torch.einsum("nj,bjxy->bnxy", weights, transforms[:, :, :3, :])  # (B, N, 3, 4)
    return (blended[..., :3] @ points[None, :, :, None])[..., 0] + blended[..., 3]


def render_gaussians(
    avatar: GaussianAvatar,
    means: torch.Tensor,
    camera: Camera,
    background: torch.Tensor | None = None,
    colors: torch.Tensor | None = None,
    log_scales: torch.Tensor | None = None,
) -> RenderOutput:
    """Render the avatar's Gaussians at posed centres `means` (N, 3). `colors`/`log_scales`
    override the avatar's (for optimisation, where they are leaf tensors)."""
    colors = avatar.colors if colors is None else colors
    log_scales = avatar.log_scales if log_scales is None else log_scales
    N = means.shape[0]
    quats = torch.zeros(N, 4, dtype=means.dtype, device=means.device)
    quats[:, 0] = 1.0
    return render(means, quats, log_scales.exp().expand(N, 3), avatar.opacities(), colors, camera, background)
