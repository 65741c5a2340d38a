"""Colour the body from the photo: project onto the visible surface, fill the unseen side.

Choice for the unseen side (documented in the README):
1. Seen vertices (facing the camera, passing a z-buffer test, inside the person mask) take
   the photo's colour at their projection.
2. Unseen torso and limb vertices take the colour of the photo at their own projection when
   it falls inside the person mask: the front is mirrored through the body onto the back,
   which suits clothes (a shirt's back is usually its front's colour). Prints and logos are
   mirrored too; the generated-video stage corrects the back later.
3. The back of the head is not mirrored (it would copy the face): it and every remaining
   vertex (outside the photo, e.g. legs of a half-body photo) are filled by harmonic
   interpolation over the mesh from their coloured neighbours; on the head only the grazing,
   silhouette-side vertices (mostly hair) seed the fill.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from persona.camera import Camera

SEEN, MIRRORED, FILLED = 0, 1, 2


@dataclass
class TextureConfig:
    zbuffer_size: int = 256  # longer side of the z-buffer, pixels
    depth_tolerance: float = 0.02  # metres behind the z-buffer still counted as seen
    min_facing: float = 0.15  # cos(angle) between normal and view ray to count as seen
    hair_facing: float = 0.45  # head vertices seen more obliquely than this seed the back
    fill_iterations: int = 400


@dataclass
class VertexColors:
    """colors: (V, 3) in [0, 1]; source: (V,) int8, SEEN / MIRRORED / FILLED."""

    colors: torch.Tensor
    source: torch.Tensor


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """vertices: (..., V, 3), faces: (F, 3) -> (..., V, 3) unit area-weighted normals."""
    a, b, c = (vertices[..., faces[:, i], :] for i in range(3))
    face_normals = torch.linalg.cross(b - a, c - a)  # (..., F, 3), length = 2 x area
    normals = torch.zeros_like(vertices)
    for i in range(3):
        normals.index_add_(-2, faces[:, i], face_normals)
    return torch.nn.functional.normalize(normals, dim=-1)


def _sample(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """image: (H, W, C); pixels: (N, 2) -> (N, C) bilinear, border-clamped."""
    H, W, _ = image.shape
    grid = torch.stack([pixels[:, 0] / W * 2 - 1, pixels[:, 1] / H * 2 - 1], -1)
    out = torch.nn.functional.grid_sample(
        image.permute(2, 0, 1)[None], grid[None, None], mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[0, :, 0].T


def _zbuffer_visible(pixels: torch.Tensor, depth: torch.Tensor, camera: Camera, config: TextureConfig) -> torch.Tensor:
    """Vertices not hidden behind others: a min-depth buffer splatted from the vertices."""
    scale = config.zbuffer_size / max(camera.width, camera.height)
    w, h = max(1, round(camera.width * scale)), max(1, round(camera.height * scale))
    ij = (pixels * scale).floor().long()
    inside = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
    flat = (ij[:, 1].clamp(0, h - 1) * w + ij[:, 0].clamp(0, w - 1))
    zbuf = torch.full((h * w,), float("inf"), device=depth.device)
    zbuf.scatter_reduce_(0, flat[inside], depth[inside], reduce="amin")
    # Close the pinholes between splatted vertices with a 3x3 min filter.
    zbuf = -torch.nn.functional.max_pool2d(-zbuf.view(1, 1, h, w), 3, 1, 1).view(-1)
    return inside & (depth <= zbuf[flat] + config.depth_tolerance)


def observed_colors(
    points: torch.Tensor, normals: torch.Tensor, camera: Camera, image: torch.Tensor, mask: torch.Tensor, config: TextureConfig = TextureConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """What one image shows of each surface point: (colours (N, 3), visibility (N,) in [0, 1]
    as `photo_visibility`). points / normals: (N, 3) posed as in the image; image (H, W, 3)."""
    visibility = photo_visibility(points, normals, camera, mask, config)
    return _sample(image, camera.project(points)[0]), visibility


def photo_visibility(points: torch.Tensor, normals: torch.Tensor, camera: Camera, mask: torch.Tensor, config: TextureConfig = TextureConfig()) -> torch.Tensor:
    """(N,) in [0, 1]: how well the photo sees each surface point. points: (N, 3) posed as in
    the photo, normals: (N, 3) unit; mask: (H, W) the person mask. 0 where hidden behind other
    points (z-buffer), outside the mask, or seen more obliquely than `min_facing`; rising to 1
    where the point faces the camera at 60 degrees or better (cos 0.5)."""
    pixels, depth = camera.project(points)
    to_camera = camera.center[None].to(points) - points
    facing = (normals * to_camera / to_camera.norm(dim=-1, keepdim=True)).sum(-1)
    in_mask = _sample(mask[..., None], pixels)[:, 0] > 0.5
    on_image = (pixels[:, 0] >= 0) & (pixels[:, 0] < camera.width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < camera.height)
    seen = _zbuffer_visible(pixels, depth, camera, config) & in_mask & on_image
    return seen.float() * ((facing - config.min_facing) / (0.5 - config.min_facing)).clamp(0, 1)


def mesh_adjacency(faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """Row-normalised (V, V) sparse CSR adjacency of the mesh (mean of the neighbours).
    CSR, because its products are ~40x faster than COO's on the CPU."""
    edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = torch.cat([edges, edges.flip(1)]).unique(dim=0)
    degree = torch.bincount(edges[:, 0], minlength=num_vertices).float().clamp(min=1)
    values = 1.0 / degree[edges[:, 0]]
    with warnings.catch_warnings():  # "CSR support is in beta": the product we use is stable
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(edges.T, values, (num_vertices, num_vertices), check_invariants=True)
        return coo.coalesce().to_sparse_csr()


def harmonic_fill(values: torch.Tensor, known: torch.Tensor, adjacency: torch.Tensor, iterations: int) -> torch.Tensor:
    """Fill unknown rows of values (V, C) by Jacobi iterations of the mesh Laplacian,
    keeping the known rows fixed. Starts from the mean of the known values."""
    filled = values.clone()
    filled[~known] = values[known].mean(0) if known.any() else 0.5
    for _ in range(iterations):
        filled = torch.where(known[:, None], values, torch.sparse.mm(adjacency, filled))
    return filled


def project_texture(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    head_vertices: torch.Tensor,
    camera: Camera,
    image: torch.Tensor,
    mask: torch.Tensor,
    config: TextureConfig = TextureConfig(),
) -> VertexColors:
    """Per-vertex colours of the body posed as in the photo.

    vertices: (V, 3) posed as in the photo; faces: (F, 3); head_vertices: (V,) bool;
    image: (H, W, 3) in [0, 1]; mask: (H, W) person mask in [0, 1].
    """
    pixels, depth = camera.project(vertices)
    normals = vertex_normals(vertices, faces)
    to_camera = camera.center[None] - vertices
    facing = (normals * to_camera / to_camera.norm(dim=-1, keepdim=True)).sum(-1)
    in_mask = _sample(mask[..., None], pixels)[:, 0] > 0.5
    on_image = (pixels[:, 0] >= 0) & (pixels[:, 0] < camera.width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < camera.height)
    in_mask &= on_image
    seen = _zbuffer_visible(pixels, depth, camera, config) & (facing > config.min_facing) & in_mask
    mirrored = ~seen & in_mask & ~head_vertices
    photo = _sample(image, pixels)
    source = torch.full((len(vertices),), FILLED, dtype=torch.int8)
    source[mirrored] = MIRRORED
    source[seen] = SEEN
    known = seen | mirrored
    adjacency = mesh_adjacency(faces, len(vertices))
    colors = harmonic_fill(photo, known, adjacency, config.fill_iterations)
    # The back of the head: seeded by the oblique (hair) vertices only, not the face.
    hair_seed = (seen & head_vertices & (facing < config.hair_facing)) | (known & ~head_vertices)
    if (hair_seed & head_vertices).any():
        head_fill = harmonic_fill(photo, hair_seed, adjacency, config.fill_iterations)
        back_of_head = head_vertices & ~seen
        colors[back_of_head] = head_fill[back_of_head]
    return VertexColors(colors.clamp(0, 1), source)
