"""Diffused skinning weights: the body's weights spread from its surface into a 3D grid.

A Gaussian that moved off the skin (a skirt's hem, a loose sleeve) must still skin smoothly.
PERSONA spreads the body's skinning weights into a grid by Laplacian smoothing: voxels that
hold surface vertices keep the vertices' weights (Dirichlet), the others relax to the mean of
their neighbours (Jacobi, coarse to fine, so that far voxels converge in few iterations). The
field is sampled at several points around each Gaussian (a small stencil) and averaged.

So that a Gaussian on the surface keeps exactly the body's weights, the field enters as a
difference: w(x) = w_body(p) + F(x) - F(p) for a Gaussian bound to the surface point p and
now at x, clamped at zero and renormalised (per channel, see `WeightField.skin_weights`).
Rows of F sum to one, so the difference sums to zero and w sums to one.

Near the skin the body's own weights are better than the coarse field's differences (a grid of
a few centimetres per voxel blurs joints that lie close together, such as the two thighs), so
`blended_skin_weights` keeps the body's weights within `near` of the bound surface point and
blends to the diffused ones by `far`: only loose cloth far from the skin uses the field. And
a point may take the field's weights only of joints within a few bones of its own dominant
joint (the mask of `WeightField.skin_weights`, the deformer's pose-input hops): in the A-pose the
hands hang beside the hips, where the field alone gives a skirt the arms' weights.

Channels: the field holds only the joints that poses rotate (the body's `fit_joints` and the
root); every other joint's weight is added to its nearest such ancestor. Those joints move
nearly with that ancestor (for anny, within 1 cm over random poses: its twist, finger and toe
bones carry rest orientations of their own), and the body's own weights still enter exactly
through w_body, so only the off-surface correction is coarser. Memory: 23 channels for anny,
in float16 (64^3: 12 MB). The 7-point stencil is applied once to the grid (a blur by the same
offsets), so each Gaussian costs one trilinear lookup.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class WeightFieldConfig:
    resolution: int = 64  # voxels along each side of the cube
    padding: float = 0.15  # metres of free space around the body's box
    iterations: int = 40  # Jacobi iterations at each level (the coarsest level runs 4x)
    levels: int = 3  # coarse-to-fine levels, each doubling the resolution
    stencil: int = 1  # stencil half-width around each Gaussian, in voxels
    # Distance blend (metres from the Gaussian's bound surface point): within `near` the body's
    # own weights, beyond `far` the diffused ones, smoothly in between (`distance_blend`).
    # near = far = 0: the diffused weights everywhere.
    near: float = 0.02
    far: float = 0.05


@dataclass
class WeightField:
    """grid: (C, G, G, G) float16 weights of joints `joints` (C,), indexed [c, z, y, x];
    origin: (3,) the cube's min corner, metres; size: its side, metres; num_joints: J;
    group: (J,) int64 the channel joint each joint's weight is collapsed onto."""

    grid: torch.Tensor
    joints: torch.Tensor
    origin: torch.Tensor
    size: float
    num_joints: int
    group: torch.Tensor

    @property
    def resolution(self) -> int:
        return self.grid.shape[-1]

    def sample(self, points: torch.Tensor) -> torch.Tensor:
        """points: (N, 3) metres -> (N, J) weights (zero outside `joints`), trilinear in the
        stencil-averaged grid, differentiable in points."""
        coords = (points - self.origin.to(points)) / self.size * 2 - 1  # [-1, 1], (x, y, z) order
        grid = self.grid.to(points.device, points.dtype)[None]  # (1, C, G, G, G)
        values = F.grid_sample(grid, coords[None, :, None, None], mode="bilinear", padding_mode="border", align_corners=True)
        out = torch.zeros(points.shape[0], self.num_joints, dtype=points.dtype, device=points.device)
        return out.index_copy(1, self.joints.to(points.device), values[0, :, :, 0, 0].T)

    def skin_weights(
        self, surface_weights: torch.Tensor, surface_field: torch.Tensor, points: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Weights of Gaussians bound to surface points p, now at `points` x (N, 3).

        surface_weights: (N, J) the body's weights at p; surface_field: (N, J) `sample(p)`
        (precomputed). Per channel c: T_c = w_body,c(p) + F_c(x) - F_c(p) (w_body collapsed
        onto the channels), clamped and renormalised; each joint of channel c then keeps its
        share of the channel's body weight (times T_c / w_body,c), and a channel with no body
        weight at p gives T_c to its own joint. Sums to one; equals w_body on the surface.
        mask: (N, J) 0/1, the joints whose field difference F_c(x) - F_c(p) a point may take
        (`DeformationRig.skin_mask`: within a few bones of its dominant joint); None: all."""
        group = self.group.to(points.device)
        collapsed = torch.zeros_like(surface_weights).index_add_(1, group, surface_weights)  # (N, J), at channel joints
        difference = self.sample(points) - surface_field
        if mask is not None:
            difference = difference * mask
        target = (collapsed + difference).clamp(min=0)
        target = target / target.sum(-1, keepdim=True).clamp(min=1e-8)
        has = collapsed > 1e-6
        ratio = torch.where(has, target / collapsed.clamp(min=1e-6), torch.zeros_like(target))
        return surface_weights * ratio[:, group] + torch.where(has, torch.zeros_like(target), target)


def distance_blend(distance: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """(N,) distances (metres) -> (N,) weights of the diffused skinning: 0 within `near`, 1
    beyond `far`, a smoothstep in between (a step at `near` when far <= near)."""
    t = ((distance - near) / max(far - near, 1e-6)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def blended_skin_weights(
    field: WeightField, surface_weights: torch.Tensor, surface_field: torch.Tensor,
    surface_points: torch.Tensor, points: torch.Tensor, near: float, far: float, mask: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """(N, J) skinning weights of Gaussians bound to surface points p (N, 3), now at `points`:
    the body's weights near the skin and the diffused ones (`WeightField.skin_weights`) far from
    it, mixed by `distance_blend` of |x - p|. A convex mix of two rows that sum to one, so the
    rows sum to one; equal to the body's weights on the surface and within `near`."""
    distance = ((points - surface_points).square().sum(-1) + 1e-12).sqrt()
    s = distance_blend(distance, near, far)[:, None]
    return (1 - s) * surface_weights + s * field.skin_weights(surface_weights, surface_field, points, mask)


def _voxel_values(
    vertices: torch.Tensor, weights: torch.Tensor, origin: torch.Tensor, size: float, G: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean weight (C, G^3) of the vertices in each voxel, and which voxels hold one (G^3,)."""
    ijk = ((vertices - origin) / size * (G - 1)).round().long().clamp(0, G - 1)  # (V, 3) x, y, z
    flat = (ijk[:, 2] * G + ijk[:, 1]) * G + ijk[:, 0]
    count = torch.zeros(G**3, device=vertices.device).index_add_(0, flat, torch.ones(len(flat), device=vertices.device))
    total = torch.zeros(weights.shape[1], G**3, device=vertices.device).index_add_(1, flat, weights.T.contiguous())
    fixed = count > 0
    return total / count.clamp(min=1), fixed


def joint_groups(parents: list[int], joints: list[int]) -> torch.Tensor:
    """(J,) int64: for each joint, the position in `joints` of its nearest ancestor (itself
    included) there; joints[0] takes those that have none."""
    column = {j: c for c, j in enumerate(joints)}
    target = []
    for j in range(len(parents)):
        k = j
        while k >= 0 and k not in column:
            k = parents[k]
        target.append(column.get(k, 0))
    return torch.tensor(target)


def collapse_to_joints(weights: torch.Tensor, parents: list[int], joints: list[int]) -> torch.Tensor:
    """weights: (V, J) -> (V, len(joints)): each joint's weight added to its group's column."""
    out = torch.zeros(weights.shape[0], len(joints), dtype=weights.dtype, device=weights.device)
    return out.index_add_(1, joint_groups(parents, joints).to(weights.device), weights)


def _stencil_blur(grid: torch.Tensor, step: int) -> torch.Tensor:
    """(C, G, G, G) -> the mean of the grid and its shifts by +-step voxels along each axis
    (edge values repeated): sampling the result equals averaging 7 samples around a point."""
    padded = F.pad(grid[None], (step,) * 6, mode="replicate")[0]
    G, s = grid.shape[-1], step
    total = grid.clone()
    for axis in (1, 2, 3):
        for shift in (0, 2 * s):
            index = [slice(s, s + G)] * 3
            index[axis - 1] = slice(shift, shift + G)
            total += padded[(slice(None), *index)]
    return total / 7


def build_weight_field(
    vertices: torch.Tensor,
    weights: torch.Tensor,
    parents: list[int],
    joints: list[int],
    config: WeightFieldConfig = WeightFieldConfig(),
) -> WeightField:
    """Diffuse skinning weights (V, J) of rest-pose vertices (V, 3) into a grid over the
    channels `joints` (the root first; see the module doc). Built on the vertices' device."""
    vertices, weights = vertices.detach().float(), weights.detach().float().to(vertices.device)
    lo, hi = vertices.min(0).values, vertices.max(0).values
    size = float((hi - lo).max()) + 2 * config.padding
    origin = (lo + hi) / 2 - size / 2
    w = collapse_to_joints(weights, parents, joints)
    resolutions = [max(4, config.resolution >> (config.levels - 1 - i)) for i in range(config.levels)]
    grid = None
    for level, G in enumerate(resolutions):
        values, fixed = _voxel_values(vertices, w, origin, size, G)
        values, fixed = values.view(-1, G, G, G), fixed.view(1, G, G, G)
        if grid is None:  # start from the mean weights
            grid = torch.where(fixed, values, w.mean(0)[:, None, None, None].expand_as(values))
        else:
            grid = F.interpolate(grid[None], size=(G, G, G), mode="trilinear", align_corners=True)[0]
        iterations = config.iterations * (4 if level == 0 else 1)
        for start in range(0, len(joints), 16):  # chunks of channels bound the peak memory
            chunk, v = grid[start : start + 16], values[start : start + 16]
            for _ in range(iterations):
                chunk = F.avg_pool3d(chunk[None], 3, stride=1, padding=1, count_include_pad=False)[0]
                chunk = torch.where(fixed, v, chunk)
            grid[start : start + 16] = chunk
    grid = _stencil_blur(grid.clamp(min=0), config.stencil)
    grid = grid / grid.sum(0, keepdim=True).clamp(min=1e-8)
    group = torch.tensor(joints)[joint_groups(parents, joints)]  # (J,) channel joint of each joint
    device = vertices.device
    return WeightField(grid.half(), torch.tensor(joints, device=device), origin, size, weights.shape[1], group.to(device))
