"""Conventions and the pinhole camera shared by every stage.

Conventions (converted only at the boundaries: anny in `persona.body.anny_model`, PLY in
`persona.io.ply`):
- World: metres, **Y up**, the body in its rest pose faces **+Z**, its left hand towards +X.
- Camera: OpenCV, x right, y down, z forward (looking along +Z of the camera frame).
  `world_to_camera` is a 4x4 rigid transform; intrinsics in pixels, pixel centres at
  integer + 0.5 (pixel (0, 0) covers [0, 1) x [0, 1)).
- Images: float32 in [0, 1], shape (H, W, C), row 0 at the top.
- Quaternions: WXYZ (as gsplat and the 3DGS PLY layout). anny/roma use XYZW internally.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class Camera:
    """A pinhole camera (OpenCV convention).

    world_to_camera: (4, 4) rigid transform, float32.
    fx, fy, cx, cy: intrinsics in pixels. width, height: image size in pixels.
    """

    world_to_camera: torch.Tensor
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @functools.cached_property
    def K(self) -> torch.Tensor:  # (3, 3), made once per camera (a host-to-device copy on a GPU)
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
            dtype=self.world_to_camera.dtype,
            device=self.world_to_camera.device,
        )

    @property
    def center(self) -> torch.Tensor:  # (3,) camera position in world coordinates
        R, t = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -R.T @ t

    def to(self, device: torch.device | str) -> "Camera":
        return replace(self, world_to_camera=self.world_to_camera.to(device))

    def scaled(self, factor: float) -> "Camera":
        """The same camera for an image resized by `factor` (pixel-centre convention kept)."""
        return replace(
            self,
            fx=self.fx * factor,
            fy=self.fy * factor,
            cx=self.cx * factor,
            cy=self.cy * factor,
            width=max(1, round(self.width * factor)),
            height=max(1, round(self.height * factor)),
        )

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points: (..., 3) world -> pixels (..., 2) and depth (...,) along the optical axis."""
        R = self.world_to_camera[:3, :3].to(points)
        t = self.world_to_camera[:3, 3].to(points)
        cam = points @ R.T + t
        z = cam[..., 2]
        zs = z.clamp(min=1e-6)
        u = self.fx * cam[..., 0] / zs + self.cx
        v = self.fy * cam[..., 1] / zs + self.cy
        return torch.stack([u, v], dim=-1), z


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """World-to-camera (4, 4) for an OpenCV camera at `eye` looking at `target` (world Y up)."""
    eye, target = eye.float(), target.float()
    up = torch.tensor([0.0, 1.0, 0.0]) if up is None else up.float()
    forward = target - eye
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    right = right / right.norm().clamp(min=1e-8)
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
    M = torch.eye(4)
    M[:3, :3] = R
    M[:3, 3] = -R @ eye
    return M


def orbit_camera(
    target: torch.Tensor,
    distance: float,
    azimuth_deg: float,
    elevation_deg: float,
    width: int,
    height: int,
    fov_y_deg: float,
) -> Camera:
    """A camera on a sphere around `target`; azimuth 0 is in front of the body (+Z side)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    offset = torch.tensor(
        [math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)]
    )
    eye = target.float() + distance * offset
    f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return Camera(look_at(eye, target), f, f, width / 2, height / 2, width, height)
