"""Drive an avatar with a motion and render clips: the animation and the turntable."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from persona.avatar.model import AvatarRig, GaussianAvatar, render_gaussians
from persona.camera import Camera, orbit_camera
from persona.generate.motions import Motion


@dataclass
class ClipConfig:
    size: int = 512  # square frames, pixels
    fov_deg: float = 30.0
    fill: float = 0.8  # fraction of the frame height the standing body fills
    turntable_frames: int = 72  # one turn at 24 fps = 3 s
    elevation_deg: float = 5.0


def framing_camera(points: torch.Tensor, config: ClipConfig, azimuth_deg: float = 0.0, headroom: float = 1.0) -> Camera:
    """A camera framing the points (N, 3) of the standing avatar; headroom > 1 zooms out
    (for motions that leave the standing box, such as a jump)."""
    lo, hi = points.min(0).values.cpu(), points.max(0).values.cpu()  # the camera is made on the CPU
    centre = (lo + hi) / 2
    height = float(hi[1] - lo[1]) * headroom
    distance = height / config.fill / (2 * math.tan(math.radians(config.fov_deg) / 2))
    camera = orbit_camera(centre, distance, azimuth_deg, config.elevation_deg, config.size, config.size, config.fov_deg)
    return camera.to(points.device)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(H, W, C) float [0, 1] -> uint8 numpy."""
    return (image.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()


def render_motion(
    avatar: GaussianAvatar,
    rig: AvatarRig,
    motion: Motion,
    config: ClipConfig,
    progress: Callable[[float, str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 of the avatar performing `motion`, on white, seen from the front
    by a fixed camera that frames the whole motion."""
    poses = motion.to_pose(rig.body).to(avatar.offsets.device)
    white = torch.ones(3)
    with torch.no_grad():
        # Frame every 4th pose to find the box the motion covers.
        sample = torch.cat([rig.posed_means(avatar, poses.index(slice(i, i + 1)))[0] for i in range(0, poses.batch, 4)])
        camera = framing_camera(sample, config)
        for i in range(poses.batch):
            means = rig.posed_means(avatar, poses.index(i))[0]
            yield to_uint8(render_gaussians(avatar, means, camera, white).features)
            if progress is not None:
                progress((i + 1) / poses.batch, f"rendering '{motion.name}' ({i + 1}/{poses.batch})")


def render_motion_from(
    avatar: GaussianAvatar,
    rig: AvatarRig,
    motion: Motion,
    cameras: list[Camera],
    size: int,
    progress: Callable[[float, str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 of the avatar performing `motion` on white, frame f seen by
    `cameras[f]` (e.g. a captured video's viewpoint), scaled so the longer side is `size`."""
    poses = motion.to_pose(rig.body).to(avatar.offsets.device)
    assert len(cameras) == poses.batch, (len(cameras), poses.batch)
    white = torch.ones(3)
    with torch.no_grad():
        for i in range(poses.batch):
            camera = cameras[i].scaled(size / max(cameras[i].width, cameras[i].height))
            means = rig.posed_means(avatar, poses.index(i))[0]
            yield to_uint8(render_gaussians(avatar, means, camera, white).features)
            if progress is not None:
                progress((i + 1) / poses.batch, f"rendering '{motion.name}' ({i + 1}/{poses.batch})")


def side_by_side(left: Iterable[np.ndarray], right: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Pairs of frames (H, W, 3) uint8 -> one frame each, `left` resized to the height of
    `right` and put beside it (e.g. the driving video and the animated avatar)."""
    from PIL import Image

    for a, b in zip(left, right):
        h = b.shape[0]
        w = max(2, round(a.shape[1] * h / a.shape[0]))
        a = np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))
        yield np.concatenate([a, b], 1)


def render_turntable(
    avatar: GaussianAvatar,
    rig: AvatarRig,
    config: ClipConfig,
    progress: Callable[[float, str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Frames of a camera circling the avatar in its rest A-pose, starting from the front."""
    white = torch.ones(3)
    with torch.no_grad():
        means = rig.rest_pose_means(avatar)
        for i in range(config.turntable_frames):
            camera = framing_camera(means, config, azimuth_deg=360.0 * i / config.turntable_frames)
            yield to_uint8(render_gaussians(avatar, means, camera, white).features)
            if progress is not None:
                progress((i + 1) / config.turntable_frames, f"rendering the turntable ({i + 1}/{config.turntable_frames})")
