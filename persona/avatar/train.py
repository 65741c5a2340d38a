"""Build the first avatar and optimise it on the input photo.

Gaussians start on the fitted body's surface with the projected texture's colours; their
offsets, scales and colours are then optimised so that the render from the photo's camera
matches the photo (0.8 L1 + 0.2 (1 - SSIM) on the person composited on white, plus an L1
mask term), with an L2 pull of the offsets towards the surface. Each Gaussian's colour moves
in proportion to how well the photo sees it (`seen_by`): the photo is evidence of what it
faces, and a Gaussian it sees edge-on or not at all would only learn to patch the render's
pixels. The render is cropped to the person's box to spend no time on empty background.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F

from persona.avatar.losses import ssim
from persona.avatar.model import AvatarRig, GaussianAvatar, render_gaussians
from persona.avatar.surface import bind_surface
from persona.avatar.texture import observed_colors, vertex_normals
from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera

Progress = Callable[[float, str], None]


@dataclass
class AvatarConfig:
    subdivision: int = 1  # surface grid level: 0 ~14k, 1 ~55k, 2 ~219k Gaussians on anny
    iterations: int = 300
    lr_offsets: float = 1e-3  # metres per Adam step, as PERSONA
    # Scales at 0.3x PERSONA's 1e-2: from one view they drift to their limits with steps, the
    # silhouette seen from elsewhere growing (benchmark's first avatar, ada at 54.8k Gaussians,
    # 216x288 photo; README): at 300 steps 20.45 dB held-out against 19.66 (IoU 0.9445 against
    # 0.9317), at 600 20.05 against 19.37; the input view the same (38.5).
    lr_scales: float = 3e-3
    lr_colors: float = 1e-2
    decay_at: float = 0.75  # learning rates / 10 after this fraction of the iterations
    ssim_weight: float = 0.2  # image loss = (1 - w) L1 + w (1 - SSIM)
    mask_weight: float = 1.0
    offset_weight: float = 0.01  # on the mean squared offset, in cm^2
    max_offset: float = 0.08  # metres; offsets are clipped to this length (clothes, hair)
    scale_spacing: float = 0.6  # initial std as a fraction of the mean point spacing
    min_scale_ratio: float = 0.6  # scales are kept within these ratios of the initial one
    max_scale_ratio: float = 3.0
    crop_margin: float = 0.05  # of the person box, around the crop that is rendered
    # Colours move at `lr_colors` times the photo's visibility of the Gaussian (`seen_by`);
    # False: all at `lr_colors`. On the ground-truth benchmark's first avatar (ada, 54.8k
    # Gaussians, 216x288 photo, 300 steps as the standard preset; README), with every colour
    # free, those the photo does not see drift from their fill towards whatever patches the
    # photo's edge pixels (error 0.063 -> 0.080 a channel): held-out 18.71 dB, its colours alone
    # 21.61, input view 36.39; with the visibility 19.66, 23.77 and 38.62.
    colors_where_seen: bool = True


@dataclass
class TrainStats:
    seconds: float  # the whole call
    iterations: int
    losses: list[float] = field(default_factory=list)  # every 10 iterations
    loop_seconds: float = 0.0  # the iterations alone (setup excluded), device work finished


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so wall-clock times are true."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def face_areas(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(F,) triangle areas in m^2."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return torch.linalg.cross(b - a, c - a).norm(dim=-1) / 2


def initial_avatar(
    body: BodyModel,
    shape: torch.Tensor,
    photo_pose: BodyPose,
    photo_camera: Camera,
    vertex_colors: torch.Tensor,
    config: AvatarConfig,
) -> GaussianAvatar:
    """Gaussians on the rest surface of `shape`, coloured from `vertex_colors` (V, 3), on the
    body's device."""
    device = body.faces.device
    shape, photo_pose = shape.to(device), photo_pose.to(device)
    binding = bind_surface(body.faces, len(body.skin_weights), config.subdivision)
    with torch.no_grad():
        rest = body.rest_vertices(shape[None])[0]
    # Local point spacing: a level-L grid puts about n^2 / 2 points on a triangle (n = 2^L),
    # and anny's triangles vary a lot in size (small on the face and hands, large on the legs).
    n = 2**config.subdivision
    spacing = (2 * face_areas(rest, body.faces)[binding.face_index]).sqrt() / n
    N = len(binding)
    return GaussianAvatar(
        body_name=body.name,
        shape=shape.clone(),
        binding=binding,
        offsets=torch.zeros(N, 3, device=rest.device),
        log_scales=(config.scale_spacing * spacing).clamp(min=1e-4).log()[:, None],
        colors=binding.interpolate(body.faces, vertex_colors.to(rest.device)).clamp(0, 1),
        photo_pose=photo_pose.detach(),
        photo_camera=photo_camera,
    )


def seen_by(
    avatar: GaussianAvatar, rig: AvatarRig, pose: BodyPose, camera: Camera, image: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """What an image (H, W, 3) with person mask (H, W), taken by `camera` of the body in `pose`,
    shows of each Gaussian: (colours (N, 3), visibility (N,) in [0, 1], `photo_visibility`:
    0 hidden or seen edge-on, 1 facing the camera), on the avatar's device."""
    body = rig.body
    with torch.no_grad():
        vertices = body.forward(avatar.shape[None], pose).vertices[0]
        normals = F.normalize(avatar.binding.interpolate(body.faces, vertex_normals(vertices, body.faces)), dim=-1)
        points = rig.pose_points(rig.rest_points + avatar.offsets, pose)[0]
        return observed_colors(points, normals, camera, image.to(points.device), mask.to(points.device))


def decay_learning_rates(optimizer: torch.optim.Optimizer, step: int, decay_step: int) -> None:
    """Divide every learning rate by 10 at `decay_step` (PERSONA's schedule)."""
    if step == decay_step:
        for group in optimizer.param_groups:
            group["lr"] /= 10


def person_crop(camera: Camera, mask: torch.Tensor, margin: float) -> tuple[Camera, tuple[int, int, int, int]]:
    """A camera rendering only the person's box (x0, y0, x1, y1) of mask (H, W)."""
    ys, xs = torch.nonzero(mask > 0.5, as_tuple=True)
    H, W = mask.shape
    pad = margin * float(max(ys.max() - ys.min(), xs.max() - xs.min()))
    x0, y0 = max(0, int(xs.min() - pad)), max(0, int(ys.min() - pad))
    x1, y1 = min(W, int(xs.max() + pad) + 1), min(H, int(ys.max() + pad) + 1)
    crop = replace(camera, cx=camera.cx - x0, cy=camera.cy - y0, width=x1 - x0, height=y1 - y0)
    return crop, (x0, y0, x1, y1)


def optimize_on_photo(
    avatar: GaussianAvatar,
    rig: AvatarRig,
    image: torch.Tensor,
    mask: torch.Tensor,
    camera: Camera,
    config: AvatarConfig,
    progress: Progress | None = None,
) -> tuple[GaussianAvatar, TrainStats]:
    """Optimise offsets, scales and colours so the avatar, posed and seen as in the photo,
    matches it. image: (H, W, 3) in [0, 1]; mask: (H, W); camera: the photo's camera at
    this image size. Returns a new avatar (the input is not modified)."""
    start = time.perf_counter()
    crop_camera, (x0, y0, x1, y1) = person_crop(camera, mask, config.crop_margin)
    crop_camera = crop_camera.to(image.device)  # no host-to-device copies inside the loop
    mask_crop = mask[y0:y1, x0:x1]
    white = torch.ones(3, device=image.device)
    target = image[y0:y1, x0:x1] * mask_crop[..., None] + (1 - mask_crop[..., None]) * white

    with torch.no_grad():
        transforms = rig.posing(avatar.photo_pose)[0]
        blended = torch.einsum("nj,jxy->nxy", rig.weights, transforms[:, :3, :])  # (N, 3, 4)
    offsets = avatar.offsets.clone().requires_grad_(True)
    log_scales = avatar.log_scales.clone().requires_grad_(True)
    initial_logits = torch.logit(avatar.colors.clamp(1e-3, 1 - 1e-3))
    # The colours are the initial logits plus rate (N, 1) times a learned step: Adam's steps
    # are the same size whatever the gradient's scale, so a per-Gaussian learning rate has to
    # live in the parametrisation.
    if config.colors_where_seen:
        rate = seen_by(avatar, rig, avatar.photo_pose, camera, image, mask)[1][:, None]  # (N, 1)
    else:
        rate = torch.ones_like(initial_logits[:, :1])
    color_step = torch.zeros_like(initial_logits).requires_grad_(True)
    initial_log_scale = avatar.log_scales.clone()
    optimizer = torch.optim.Adam(
        [
            {"params": [offsets], "lr": config.lr_offsets},
            {"params": [log_scales], "lr": config.lr_scales},
            {"params": [color_step], "lr": config.lr_colors},
        ],
        fused=offsets.is_cuda,  # one kernel for all parameters on the GPU
    )
    decay_step = int(config.decay_at * config.iterations)
    stats = TrainStats(0.0, config.iterations)
    losses = []  # kept on the device: reading them each time would wait for the GPU
    synchronize(offsets.device)
    loop_start = time.perf_counter()
    for step in range(config.iterations):
        decay_learning_rates(optimizer, step, decay_step)
        optimizer.zero_grad(set_to_none=True)
        canonical = rig.rest_points + offsets
        means = (blended[..., :3] @ canonical[..., None])[..., 0] + blended[..., 3]
        colors = torch.sigmoid(initial_logits + rate * color_step)
        out = render_gaussians(avatar, means, crop_camera, white, colors, log_scales)
        l1 = (out.features - target).abs().mean()
        image_loss = (1 - config.ssim_weight) * l1 + config.ssim_weight * (1 - ssim(out.features, target))
        mask_loss = (out.alpha - mask_crop).abs().mean()
        offset_loss = (offsets * 100).square().sum(-1).mean()  # cm^2
        loss = image_loss + config.mask_weight * mask_loss + config.offset_weight * offset_loss
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            # Keep offsets near the surface: a mask that includes a held object must not
            # pull the body's Gaussians away from the body.
            length = offsets.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            offsets.mul_(length.clamp(max=config.max_offset) / length)
            log_scales.copy_(
                log_scales.clamp(
                    initial_log_scale + math.log(config.min_scale_ratio),
                    initial_log_scale + math.log(config.max_scale_ratio),
                )
            )
        if step % 10 == 0:
            losses.append(loss.detach())
            if progress is not None:
                progress(step / config.iterations, f"fitting the avatar to the photo ({step}/{config.iterations})")
    synchronize(offsets.device)
    stats.loop_seconds = time.perf_counter() - loop_start
    stats.losses = torch.stack(losses).tolist() if losses else []
    stats.seconds = time.perf_counter() - start
    trained = replace(
        avatar,
        offsets=offsets.detach(),
        log_scales=log_scales.detach(),
        colors=torch.sigmoid(initial_logits + rate * color_step).detach(),
    )
    return trained, stats
