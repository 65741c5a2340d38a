"""The Gaussian avatar: Gaussians bound to the body surface, posed by linear blend skinning.

A Gaussian's canonical centre is its surface point on the rest body (for the avatar's shape)
plus a learned offset; it is isotropic (one log-scale), nearly opaque, and has an RGB colour.
Posing blends the body's bone transforms with the Gaussian's skinning weights, interpolated
from the vertices of its triangle.

An avatar optimised on generated frames (`persona.avatar.optimize`) also has a pose-driven
deformation (`persona.avatar.deform`): a pose-dependent canonical offset per Gaussian, and
skinning weights from the diffused weight field at the offset position (blended with the body's
own weights near the skin; or the body's alone when diffused skinning is off).
`AvatarRig.posed_means` poses either kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from persona.avatar.deform import PoseDeformer, pose_features
from persona.avatar.rasterizer import RenderOutput
from persona.avatar.renderer import render
from persona.avatar.surface import SurfaceBinding
from persona.body.model import BodyModel, BodyPose
from persona.body.regions import pose_input_mask, rigid_points
from persona.body.weight_field import WeightField, WeightFieldConfig, blended_skin_weights, build_weight_field
from persona.camera import Camera

OPACITY = 0.99  # fixed, as in PERSONA (opacity 1, no densification)


@dataclass
class GaussianAvatar:
    """Everything needed to animate the person (what `avatar.persona` stores).

    shape: (S,) body shape parameters; binding: N surface points;
    offsets: (N, 3) canonical offsets, metres; log_scales: (N, 1) log std, metres;
    colors: (N, 3) RGB in [0, 1];
    photo_pose / photo_camera: the body pose (batch 1) and camera of the input photo.
    deformer: the pose-driven deformation (None: offsets are static, weights the body's);
    skinning: the diffused weight field's settings (with a deformer; None: the deformed points
    skin with the body's weights at their surface points);
    pose_joints: names of the P joints whose rotations drive the deformer.
    """

    body_name: str
    shape: torch.Tensor
    binding: SurfaceBinding
    offsets: torch.Tensor
    log_scales: torch.Tensor
    colors: torch.Tensor
    photo_pose: BodyPose
    photo_camera: Camera
    deformer: PoseDeformer | None = None
    skinning: WeightFieldConfig | None = None
    pose_joints: tuple[str, ...] = ()

    @property
    def num_gaussians(self) -> int:
        return len(self.binding)

    def to(self, device: torch.device | str) -> "GaussianAvatar":
        """The avatar with every tensor (and the deformer) on `device`; cameras stay on the
        CPU (the renderers move their few numbers where the Gaussians are)."""
        return replace(
            self, shape=self.shape.to(device), binding=self.binding.to(device), offsets=self.offsets.to(device),
            log_scales=self.log_scales.to(device), colors=self.colors.to(device), photo_pose=self.photo_pose.to(device),
            deformer=None if self.deformer is None else self.deformer.to(device),
        )  # fmt: skip

    def opacities(self) -> torch.Tensor:  # (N,)
        return torch.full((self.num_gaussians,), OPACITY, dtype=self.colors.dtype, device=self.colors.device)


class DeformationRig:
    """The body-dependent constants of a pose-driven deformation.

    field: the diffused weight field (None without diffused skinning); surface_field: (N, J)
    the field at the rest points; near / far: its distance blend (`blended_skin_weights`);
    skin_mask: (N, J) the joints whose field a point may take, those within `hops` bones of its
    dominant joint as for the pose input (in the A-pose the hands hang beside the hips, and
    there the field gives a skirt the arms' weights: 0.7 dB held-out on the skirt subject);
    pose_joint_index: (P,) joints driving the deformer; pose_mask: (N, P) the joints each
    point sees (within `hops` bones of its dominant joint); movable: (N,) 0 on rigid points.
    """

    def __init__(self, body: BodyModel, rest_vertices: torch.Tensor, rest_points: torch.Tensor, weights: torch.Tensor,
                 pose_joints: tuple[str, ...], skinning: WeightFieldConfig | None, hops: int, hop_tree: str = "driving"):  # fmt: skip
        self.pose_joint_index = torch.tensor([body.joint_index(j) for j in pose_joints], device=rest_points.device)
        root = [j for j, p in enumerate(body.parents) if p < 0]
        self.field: WeightField | None = None
        self.surface_field: torch.Tensor | None = None
        self.near = self.far = 0.0
        self.skin_mask: torch.Tensor | None = None
        if skinning is not None:
            self.field = build_weight_field(rest_vertices, body.skin_weights, body.parents, root + self.pose_joint_index.tolist(), skinning)
            self.surface_field = self.field.sample(rest_points)
            self.near, self.far = skinning.near, skinning.far
            channels = pose_input_mask(body, weights, self.field.joints.tolist(), hops, hop_tree)  # (N, C)
            joints = self.field.joints.to(weights.device)
            self.skin_mask = torch.zeros(len(weights), body.num_joints, device=weights.device).index_copy_(1, joints, channels)
        self.pose_mask = pose_input_mask(body, weights, self.pose_joint_index.tolist(), hops, hop_tree)
        self.movable = (~rigid_points(body, weights, rest_points)).float()


class AvatarRig:
    """The body-dependent constants of an avatar: rest surface points and skinning weights
    (and the deformation's, when the avatar has one).

    rest_points: (N, 3) canonical surface points (before offsets); weights: (N, J).
    """

    def __init__(self, body: BodyModel, avatar: GaussianAvatar, pose_joints: tuple[str, ...] = (),
                 skinning: WeightFieldConfig | None = None, hops: int = 4, hop_tree: str = "driving"):  # fmt: skip
        """pose_joints / skinning / hops / hop_tree: build the deformation constants for an avatar that is
        about to get a deformer (taken from the avatar when it has one); skinning None: no
        diffused skinning."""
        self.body = body
        self.shape = avatar.shape
        self.posing = body.posing(avatar.shape[None])  # pose -> bone transforms (B, J, 4, 4)
        with torch.no_grad():
            rest = body.rest_vertices(avatar.shape[None])[0]
        self.rest_points = avatar.binding.interpolate(body.faces, rest)
        self.weights = avatar.binding.interpolate(body.faces, body.skin_weights)
        self.deformation: DeformationRig | None = None
        if avatar.deformer is not None:
            pose_joints, skinning = avatar.pose_joints, avatar.skinning
            hops, hop_tree = avatar.deformer.config.hops, avatar.deformer.config.hop_tree
        if pose_joints:
            self.deformation = DeformationRig(body, rest, self.rest_points, self.weights, pose_joints, skinning, hops, hop_tree)

    def pose_offsets(self, deformer: PoseDeformer, pose: BodyPose) -> torch.Tensor:
        """(B, N, 3) the deformer's canonical offsets for each pose of the batch."""
        d = self.deformation
        features = pose_features(pose.joint_rotations[:, d.pose_joint_index.to(pose.joint_rotations.device)])
        return deformer(self.rest_points, features, d.pose_mask, d.movable)

    def posed_means(
        self,
        avatar: GaussianAvatar,
        pose: BodyPose,
        offsets: torch.Tensor | None = None,
        deformer: PoseDeformer | None = None,
        transforms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, N, 3) Gaussian centres in each pose of the batch: static offsets, plus the
        deformer's offsets and diffused skinning when the avatar has a deformer.
        offsets / deformer override the avatar's (leaf tensors while optimising);
        transforms: (B, J, 4, 4) bone transforms when already computed (else no gradient)."""
        offsets = avatar.offsets if offsets is None else offsets
        deformer = avatar.deformer if deformer is None else deformer
        if transforms is None:
            with torch.no_grad():
                transforms = self.posing(pose)
        canonical = self.rest_points + offsets  # (N, 3)
        if deformer is None:
            return blend_points(self.weights, transforms, canonical)
        return self.skin_deformed(canonical[None] + self.pose_offsets(deformer, pose), transforms)

    def skin_deformed(self, canonical: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
        """canonical: (B, N, 3) deformed canonical centres; transforms: (B, J, 4, 4) -> (B, N, 3)
        posed with the diffused weights at each centre (blended with the body's near the skin;
        the body's alone without a field)."""
        d = self.deformation
        out = []
        for b in range(canonical.shape[0]):
            if d.field is None:
                weights = self.weights
            else:
                weights = blended_skin_weights(d.field, self.weights, d.surface_field, self.rest_points, canonical[b], d.near, d.far, d.skin_mask)
            out.append(blend_points(weights, transforms[b : b + 1], canonical[b])[0])
        return torch.stack(out)

    def pose_points(self, canonical: torch.Tensor, pose: BodyPose) -> torch.Tensor:
        """canonical: (N, 3) -> (B, N, 3) posed by LBS for each pose of the batch."""
        with torch.no_grad():
            transforms = self.posing(pose)  # (B, J, 4, 4)
        return blend_points(self.weights, transforms, canonical)

    def rest_pose_means(self, avatar: GaussianAvatar) -> torch.Tensor:
        """(N, 3) the avatar's Gaussian centres in the zero pose (deformation included)."""
        return self.posed_means(avatar, BodyPose.zeros(1, self.body.num_joints, device=avatar.offsets.device))[0]


def blend_points(weights: torch.Tensor, transforms: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning. weights: (N, J); transforms: (B, J, 4, 4); points: (N, 3) -> (B, N, 3)."""
    blended = torch.einsum("nj,bjxy->bnxy", weights, transforms[:, :, :3, :])  # (B, N, 3, 4)
    return (blended[..., :3] @ points[None, :, :, None])[..., 0] + blended[..., 3]


def identity_quats(n: int, like: torch.Tensor) -> torch.Tensor:
    """(n, 4) WXYZ identity rotations (the avatar's Gaussians are isotropic)."""
    quats = torch.zeros(n, 4, dtype=like.dtype, device=like.device)
    quats[:, 0] = 1.0
    return quats


def render_isotropic(
    means: torch.Tensor, log_scales: torch.Tensor, features: torch.Tensor, camera: Camera,
    background: torch.Tensor | None = None, backend: str = "auto",
) -> RenderOutput:  # fmt: skip
    """Render isotropic, nearly opaque Gaussians: means (N, 3), log_scales (N, 1) log std in
    metres, features (N, D) splatted as colours (`backend`: see `persona.avatar.renderer`)."""
    N = means.shape[0]
    opacities = torch.full((N,), OPACITY, dtype=means.dtype, device=means.device)
    return render(means, identity_quats(N, means), log_scales.exp().expand(N, 3), opacities, features, camera, background, backend)


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
    return render_isotropic(means, log_scales, colors, camera, background)
