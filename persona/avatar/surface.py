"""Where the Gaussians sit on the body: a regular barycentric grid on every triangle.

Level L puts n = 2**L grid steps on each triangle edge. Points are unique on the mesh: the
original vertices once, the interior points of every edge once, the interior points of every
face once. Level 0 gives the V vertices (13,718 for anny), level 1 about 55k, level 2 about
219k points (PERSONA subdivides SMPL-X twice, ~167k).

Each point is a `SurfaceBinding`: a face and barycentric weights, so its canonical position,
skinning weights and texture colour follow the body's shape by interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SurfaceBinding:
    """face_index: (N,) int64 triangle of each point; barycentric: (N, 3) weights summing to 1."""

    face_index: torch.Tensor
    barycentric: torch.Tensor

    def __len__(self) -> int:
        return self.face_index.shape[0]

    def to(self, device: torch.device | str) -> "SurfaceBinding":
        return SurfaceBinding(self.face_index.to(device), self.barycentric.to(device))

    def interpolate(self, faces: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """faces: (F, 3); values: (..., V, C) per vertex -> (..., N, C) at the points."""
        corners = faces[self.face_index]  # (N, 3)
        gathered = values[..., corners, :]  # (..., N, 3, C)
        return (gathered * self.barycentric[:, :, None].to(values.dtype)).sum(-2)


def bind_surface(faces: torch.Tensor, num_vertices: int, level: int) -> SurfaceBinding:
    """The level-`level` grid of points on the triangle mesh `faces` (F, 3), on its device
    (worked out on the CPU: a one-off index computation)."""
    if level < 0:
        raise ValueError(f"subdivision level must be >= 0, got {level}")
    with torch.device("cpu"):  # also inside a caller's `with torch.device(...)`
        return _bind_surface(faces.cpu(), num_vertices, level).to(faces.device)


def _bind_surface(faces: torch.Tensor, num_vertices: int, level: int) -> SurfaceBinding:
    n = 2**level
    F = faces.shape[0]
    face_ids, barys = [], []

    # 1. Vertices: each bound to the first face (lowest index) that uses it. A reduction,
    #    not an indexed assignment, whose winner among duplicates would be unspecified.
    corner_key = torch.full((num_vertices,), 3 * F, dtype=torch.long)  # 3 * face + slot
    keys = 3 * torch.arange(F)[:, None] + torch.arange(3)[None]  # (F, 3)
    corner_key.scatter_reduce_(0, faces.reshape(-1), keys.reshape(-1), reduce="amin")
    used = corner_key < 3 * F
    face_ids.append(corner_key[used] // 3)
    barys.append(torch.nn.functional.one_hot(corner_key[used] % 3, 3).float())

    if n > 1:
        # 2. Interior points of each unique edge, bound to one face holding the edge.
        t = torch.arange(1, n, dtype=torch.float32) / n  # (n-1,)
        edges = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # (3F, 2)
        slots = torch.tensor([[0, 1], [1, 2], [2, 0]]).repeat_interleave(F, 0)  # (3F, 2)
        owner = torch.arange(F).repeat(3)
        key = edges.sort(1).values
        _, first = _unique_rows_first(key)
        e_faces, e_slots = owner[first], slots[first]
        E = first.shape[0]
        bary = torch.zeros(E, n - 1, 3)
        rows = torch.arange(E)[:, None].expand(E, n - 1)
        bary[rows, torch.arange(n - 1)[None].expand(E, -1), e_slots[:, :1].expand(E, n - 1)] = 1 - t
        bary[rows, torch.arange(n - 1)[None].expand(E, -1), e_slots[:, 1:].expand(E, n - 1)] = t
        face_ids.append(e_faces.repeat_interleave(n - 1))
        barys.append(bary.reshape(-1, 3))

        # 3. Interior points of each face: i + j + k = n, all positive.
        grid = [(i, j, n - i - j) for i in range(1, n) for j in range(1, n - i)]
        if grid:
            g = torch.tensor(grid, dtype=torch.float32) / n  # (G, 3)
            face_ids.append(torch.arange(F).repeat_interleave(len(grid)))
            barys.append(g.repeat(F, 1))
    return SurfaceBinding(torch.cat(face_ids), torch.cat(barys))


def _unique_rows_first(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rows: (R, 2) int -> (unique rows, index of the first occurrence of each)."""
    unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
    order = torch.arange(rows.shape[0])
    first = torch.full((unique.shape[0],), rows.shape[0], dtype=torch.long)
    first.scatter_reduce_(0, inverse, order, reduce="amin")
    return unique, first
