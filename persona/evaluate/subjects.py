"""Synthetic subjects with known ground truth, for the PERSONA benchmark.

A subject is an anny body dressed by a procedural texture (skin, hair, a striped top with a
patch on its back only, trousers or a skirt, shoes) and a pose-dependent garment displacement:
- `skirt`: the legs' region between waist and knees flares out from the body's axis, more
  when the legs are apart, and swings forward with each leg; like cloth, it does not follow
  its leg rigidly: towards the hem its skinning moves halfway from the leg to the pelvis;
- `loose_shirt`: the torso's lower part stands off the body and its hem lifts when the arms
  rise; the sleeves sag below the upper arms.
It is rendered as dense Gaussians (one level finer than the avatar) with the project's own
renderer, so the ground truth of any pose and view is exact.

Generated training frames are rendered from the same simulator with imperfections like a video
diffusion model's (`Imperfections`), growing along each clip as the view leaves the photo's:
per-frame colour jitter and a global colour drift; an identity drift that is local, as a
video model's is (a few regions of the body, drawn per clip, change hue, and the texture's
fine detail, stripes and patterns, washes out), so no global colour correction can undo it;
shape noise (the garment's amplitude varies per frame, the mask is eroded or dilated by a
pixel); and pose noise (the person is rendered in a slightly different pose than the driving
one the frame records). Each frame can also carry a depth estimate of what it shows, known
only up to a scale and a shift and off by a smooth error, as a monocular estimator's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from persona.avatar.model import blend_points, render_isotropic
from persona.avatar.rasterizer import RenderOutput
from persona.avatar.surface import SurfaceBinding, bind_surface
from persona.avatar.train import face_areas
from persona.body.model import BodyModel, BodyPose
from persona.body.regions import dominant_joints, joint_parts
from persona.camera import Camera

GARMENTS = ("skirt", "loose_shirt")


@dataclass
class SubjectSpec:
    name: str
    shape: tuple[float, ...]  # the body's shape parameters, each in [0, 1]
    garment: str  # one of GARMENTS
    top: tuple[float, float, float]  # RGB of the top
    bottom: tuple[float, float, float]  # RGB of the trousers / skirt
    patch: tuple[float, float, float]  # RGB of the patch on the back of the top
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    amplitude: float = 0.06  # metres, the garment's displacement scale


SUBJECTS = (
    SubjectSpec("ada", (0.2, 0.4, 0.5, 0.45, 0.55, 0.5), "skirt", (0.85, 0.25, 0.2), (0.2, 0.3, 0.6),
                (0.95, 0.85, 0.2), (0.85, 0.65, 0.5), (0.25, 0.15, 0.1), 0.09),
    SubjectSpec("ben", (0.8, 0.5, 0.6, 0.6, 0.6, 0.5), "loose_shirt", (0.2, 0.55, 0.35), (0.25, 0.25, 0.3),
                (0.9, 0.9, 0.9), (0.55, 0.4, 0.3), (0.1, 0.08, 0.06), 0.07),
    SubjectSpec("cleo", (0.4, 0.6, 0.4, 0.7, 0.4, 0.5), "loose_shirt", (0.95, 0.6, 0.15), (0.15, 0.35, 0.3),
                (0.2, 0.2, 0.7), (0.7, 0.5, 0.4), (0.5, 0.3, 0.15), 0.06),
)  # fmt: skip


@dataclass
class Imperfections:
    """How generated frames differ from the truth (0 everywhere: perfect frames)."""

    color_jitter: float = 0.04  # std of a per-frame, per-channel gain
    color_drift: float = 0.12  # brightness gain reached at the end of a clip
    identity_drift: float = 0.35  # fraction of the way to a hue-rotated colour at a clip's end, in the drifting regions
    shape_noise: float = 0.3  # std of the garment amplitude's per-frame factor
    mask_noise: int = 1  # pixels of random erosion or dilation of the mask
    detail_loss: float = 0.5  # fraction of the texture's fine detail washed out at a clip's end
    drift_regions: int = 6  # regions whose hue drifts, drawn per clip
    drift_radius: float = 0.15  # metres, the regions' size (Gaussian falloff)
    detail_size: float = 0.08  # metres, the scale below which detail washes out
    # std (radians) of a per-frame rotation added to each of the body fit's joints and the root
    # before rendering (the frame keeps the driving pose): a video model follows its pose
    # conditioning only roughly, which is what the per-frame pose refinement is for.
    pose_noise: float = 0.0
    depth_noise: float = 0.01  # metres, the smooth error of the frames' depth estimates (`estimated_depth`)


@dataclass
class Subject:
    """A dressed body. binding: M surface points (the ground truth's Gaussians); colors:
    (M, 3); log_scales: (M, 1); rest_points / weights: (M, 3) / (M, J); region masks (M,)."""

    spec: SubjectSpec
    shape: torch.Tensor
    binding: SurfaceBinding
    colors: torch.Tensor
    log_scales: torch.Tensor
    rest_points: torch.Tensor
    weights: torch.Tensor
    skirt: torch.Tensor  # (M,) in [0, 1]: 0 at the waist, 1 at the hem, -1 outside the skirt
    shirt: torch.Tensor  # (M,) in [0, 1] the same for the shirt's torso, -1 outside
    sleeve: torch.Tensor  # (M,) bool
    centre: torch.Tensor  # (3,) the rest body's hip centre


def _part_of(body: BodyModel, weights: torch.Tensor) -> torch.Tensor:
    return joint_parts(body)[dominant_joints(weights)]


def make_subject(body: BodyModel, spec: SubjectSpec, level: int = 1) -> Subject:
    """Dress the body of `spec.shape` (see the module doc)."""
    shape = torch.tensor(spec.shape)
    with torch.no_grad():
        rest = body.rest_vertices(shape[None])[0]
    binding = bind_surface(body.faces, len(rest), level)
    points = binding.interpolate(body.faces, rest)
    weights = binding.interpolate(body.faces, body.skin_weights)
    part = _part_of(body, weights)
    roots = {name: p for p, name in enumerate(body.part_roots)}
    keypoints = body.keypoints_from_vertices(rest[None])[0]
    kp = {n: keypoints[i] for i, n in enumerate(body.keypoint_names)}
    hip_y = float((kp["left_hip"][1] + kp["right_hip"][1]) / 2)
    knee_y = float((kp["left_knee"][1] + kp["right_knee"][1]) / 2)
    ankle_y = float((kp["left_ankle"][1] + kp["right_ankle"][1]) / 2)
    shoulder_y = float((kp["left_shoulder"][1] + kp["right_shoulder"][1]) / 2)
    centre = (kp["left_hip"] + kp["right_hip"]) / 2
    y, z = points[:, 1], points[:, 2]
    is_head = part == roots[body.part_roots[1]]
    is_torso = part == 0
    upper_arm = torch.zeros_like(is_head)
    lower_arm = torch.zeros_like(is_head)
    for p, name in enumerate(body.part_roots):
        if name.startswith(("upperarm", "left_shoulder", "right_shoulder")):
            upper_arm |= part == p
        if name.startswith(("lowerarm", "left_elbow", "right_elbow")):
            lower_arm |= part == p
    legs = ~(is_head | is_torso | upper_arm | lower_arm)

    def rgb(c):
        return torch.tensor(c).expand(len(points), 3)

    colors = rgb(spec.skin).clone()
    waist_y = hip_y + 0.08
    top = (is_torso & (y > waist_y - 0.12)) | upper_arm
    stripes = 0.8 + 0.2 * (torch.sin(2 * math.pi * y / 0.07) > 0).float()
    colors[top] = rgb(spec.top)[top] * stripes[top, None]
    back = top & is_torso & (z < centre[2] - 0.03) & ((points[:, 0] - centre[0]).abs() < 0.1) & (y > shoulder_y - 0.3) & (y < shoulder_y - 0.1)
    colors[back] = rgb(spec.patch)[back]
    bottom = legs | (is_torso & ~top)
    colors[bottom] = rgb(spec.bottom)[bottom] * (0.9 + 0.1 * torch.sin(2 * math.pi * points[bottom, 0:1] / 0.05))
    shoes = legs & (y < ankle_y + 0.03)
    colors[shoes] = 0.12
    head_top = is_head & ((y > float(kp["left_eye"][1]) + 0.03) | (z < float(kp["nose"][2]) - 0.1))
    colors[head_top] = rgb(spec.hair)[head_top]

    skirt = torch.full((len(points),), -1.0)
    shirt = torch.full((len(points),), -1.0)
    sleeve = torch.zeros(len(points), dtype=torch.bool)
    if spec.garment == "skirt":
        hem_y = knee_y + 0.06
        inside = bottom & (y <= waist_y) & (y >= hem_y)
        skirt[inside] = ((waist_y - y[inside]) / (waist_y - hem_y)).clamp(0, 1)
        root = torch.zeros(body.num_joints)
        root[[j for j, p in enumerate(body.parents) if p < 0]] = 1.0
        hang = 0.5 * skirt.clamp(min=0)[:, None]  # 0 at the waist, 0.5 at the hem
        weights = (1 - hang) * weights + hang * root
        colors[inside] = rgb(spec.bottom)[inside] * (0.85 + 0.15 * (torch.sin(2 * math.pi * y[inside] / 0.05) > 0).float()[:, None])
    elif spec.garment == "loose_shirt":
        low = top & is_torso & (y < shoulder_y - 0.15)
        shirt[low] = ((shoulder_y - 0.15 - y[low]) / (shoulder_y - 0.15 - (waist_y - 0.12))).clamp(0, 1)
        sleeve = upper_arm
    else:
        raise ValueError(f"unknown garment {spec.garment!r}; choose one of {GARMENTS}")
    n = 2**level
    spacing = (2 * face_areas(rest, body.faces)[binding.face_index]).sqrt() / n
    log_scales = (0.6 * spacing).clamp(min=1e-4).log()[:, None]
    return Subject(spec, shape, binding, colors.clamp(0, 1), log_scales, points, weights, skirt, shirt, sleeve, centre)


def _angle(pose: BodyPose, body: BodyModel, joint: str, axis: int) -> torch.Tensor:
    """(B,) the rotation of `joint` about a world axis (its axis-angle component), radians."""
    return pose.joint_rotations[:, body.joint_index(joint), axis]


def garment_offsets(subject: Subject, body: BodyModel, pose: BodyPose, amplitude_factor: float = 1.0) -> torch.Tensor:
    """(B, M, 3) canonical displacement of the garment in each pose (see the module doc)."""
    spec, p = subject.spec, subject.rest_points
    B = pose.batch
    A = spec.amplitude * amplitude_factor
    radial = p - subject.centre
    radial = F.normalize(radial * torch.tensor([1.0, 0.0, 1.0]), dim=-1)  # horizontal, away from the axis
    out = torch.zeros(B, len(p), 3)
    names = body.part_roots
    if spec.garment == "skirt":
        t = subject.skirt.clamp(min=0)[None]  # (1, M)
        inside = (subject.skirt >= 0).float()[None]
        left_leg, right_leg = names[6], names[8]
        flex_l, flex_r = _angle(pose, body, left_leg, 0), _angle(pose, body, right_leg, 0)  # (B,)
        spread = (flex_l - flex_r).abs()[:, None]  # legs apart: the skirt flares more
        flare = A * t**1.5 * (1 + 2.5 * spread) * inside
        side_left = (p[:, 0] > subject.centre[0]).float()[None]
        swing = A * 1.5 * t * inside * (side_left * torch.sin(flex_l)[:, None] + (1 - side_left) * torch.sin(flex_r)[:, None])
        out = flare[..., None] * radial[None] + swing[..., None] * torch.tensor([0.0, 0.0, -1.0])
    else:
        t = subject.shirt.clamp(min=0)[None]
        inside = (subject.shirt >= 0).float()[None]
        up_l, up_r = _angle(pose, body, names[2], 2), _angle(pose, body, names[4], 2)  # arm raise (about Z)
        raise_ = ((up_l.abs() + up_r.abs()) / 2)[:, None]
        stand_off = A * 0.5 * (0.4 + t) * inside * (1 + raise_)
        lift = A * 1.2 * t * inside * raise_
        out = stand_off[..., None] * radial[None] + lift[..., None] * torch.tensor([0.0, 1.0, 0.0])
        sag = A * 0.5 * subject.sleeve.float()[None] * (1 + raise_)
        out = out + sag[..., None] * torch.tensor([0.0, -1.0, 0.0])
    return out


def drifted_colors(subject: Subject, imperfections: Imperfections, generator: torch.Generator) -> torch.Tensor:
    """(M, 3) the subject's colours at the end of a clip whose identity drifts: in
    `drift_regions` random regions of the body (Gaussian falloff of `drift_radius` around random
    surface points) the colours move up to `identity_drift` of the way to a channel-rotated
    version (red turns green-ish, or blue-ish), and everywhere the detail finer than
    `detail_size` (the colour's departure from its local mean) fades by `detail_loss`."""
    colors, points = subject.colors, subject.rest_points
    # Detail: the colour's departure from the mean over its `detail_size` voxel.
    cell = torch.floor((points - points.min(0).values) / imperfections.detail_size).long()
    _, voxel = torch.unique(cell, dim=0, return_inverse=True)
    count = torch.zeros(int(voxel.max()) + 1, device=colors.device).index_add_(0, voxel, torch.ones_like(colors[:, 0]))
    mean = torch.zeros(len(count), 3, device=colors.device).index_add_(0, voxel, colors) / count[:, None]
    out = torch.lerp(colors, mean[voxel], imperfections.detail_loss)
    # Regions: random centres on the surface, each rotating the channels one way or the other.
    k = imperfections.drift_regions
    if k > 0 and imperfections.identity_drift > 0:
        centres = points[torch.randint(len(points), (k,), generator=generator, device="cpu").to(points.device)]  # (k, 3)
        shifts = (1 + torch.randint(2, (k,), generator=generator, device="cpu")).tolist()
        weight = torch.exp(-(points[:, None] - centres[None]).square().sum(-1) / (2 * imperfections.drift_radius**2))  # (M, k)
        for r, shift in enumerate(shifts):
            amount = imperfections.identity_drift * weight[:, r : r + 1]
            out = torch.lerp(out, out.roll(shift, -1), amount)
    return out.clamp(0, 1)


def render_subject(
    subject: Subject,
    body: BodyModel,
    pose: BodyPose,
    camera: Camera,
    amplitude_factor: float = 1.0,
    colors: torch.Tensor | None = None,
    garment_pose: BodyPose | None = None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The subject in `pose` (batch 1) seen by `camera`: image (H, W, 3) on white, alpha (H, W).
    colors (M, 3) / weights (M, J) replace the subject's colours / skinning weights; garment_pose:
    the pose whose garment shape the subject wears (default: `pose`)."""
    means = _posed_means(subject, body, pose, amplitude_factor, pose if garment_pose is None else garment_pose, weights)
    with torch.no_grad():
        out = render_isotropic(means, subject.log_scales, subject.colors if colors is None else colors, camera, torch.ones(3))
    return out.features.clamp(0, 1), out.alpha.clamp(0, 1)


def render_subject_with_depth(subject: Subject, body: BodyModel, pose: BodyPose, camera: Camera) -> RenderOutput:
    """`render_subject(subject, body, pose, camera)`'s render, unclamped, with its depth."""
    with torch.no_grad():
        return render_isotropic(_posed_means(subject, body, pose, 1.0, pose, None), subject.log_scales, subject.colors, camera, torch.ones(3))


def _posed_means(
    subject: Subject, body: BodyModel, pose: BodyPose, amplitude_factor: float, garment_pose: BodyPose, weights: torch.Tensor | None
) -> torch.Tensor:
    """(M, 3) the subject's Gaussians in `pose` (batch 1), wearing the garment of garment_pose."""
    with torch.no_grad():
        transforms = body.forward(subject.shape[None], pose).bone_transforms
        garment = garment_offsets(subject, body, garment_pose, amplitude_factor)[0]
        return blend_points(subject.weights if weights is None else weights, transforms, subject.rest_points + garment)[0]


def estimated_depth(
    depth: torch.Tensor, alpha: torch.Tensor, imperfections: Imperfections, generator: torch.Generator
) -> torch.Tensor:
    """A monocular depth estimate of a rendered frame: the true depth (H, W) (alpha-weighted, as
    `RenderOutput.depth`) where alpha (H, W) > 0.5, 0 elsewhere, with a smooth error field
    (`depth_noise` metres, bilinear over a 4x4 grid: estimators err on the large scale, not per
    pixel) and then a random scale (log std 0.1) and shift (std 0.2 m): only its shape is
    known, as a relative estimator's (`TrainingFrame.depth_relative`)."""
    draw = lambda *shape: torch.randn(*shape, generator=generator, device="cpu").to(depth.device)  # noqa: E731
    person = alpha > 0.5
    field = F.interpolate(draw(1, 1, 4, 4), size=depth.shape, mode="bilinear", align_corners=True)[0, 0]
    z = depth / alpha.clamp(min=1e-6) + imperfections.depth_noise * field
    z = z * math.exp(0.1 * float(draw(()))) + 0.2 * float(draw(()))
    return torch.where(person, z, torch.zeros_like(z))


def noisy_pose(body: BodyModel, pose: BodyPose, std: float, generator: torch.Generator) -> BodyPose:
    """`pose` (batch 1) with a random rotation (axis-angle, each component of std `std` radians)
    added to each of the body fit's joints and to the root orientation."""
    joints = torch.tensor([body.joint_index(j) for j in body.fit_joints])
    noise = std * torch.randn(len(joints) + 1, 3, generator=generator, device="cpu").to(pose.joint_rotations.device)
    rotations = pose.joint_rotations.index_add(1, joints.to(noise.device), noise[None, :-1])
    return BodyPose(rotations, pose.global_orient + noise[None, -1], pose.translation)


def imperfect_frame(
    subject: Subject,
    body: BodyModel,
    pose: BodyPose,
    camera: Camera,
    progress_in_clip: float,
    imperfections: Imperfections,
    generator: torch.Generator,
    drifted: torch.Tensor | None = None,
    depth_generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A generated-looking frame: (image (H, W, 3) on white, mask (H, W) in {0, 1}, a depth
    estimate (H, W) of what the image shows (`estimated_depth`, drawn from depth_generator;
    None without one)).
    drifted: (M, 3) the clip's colours at its end (`drifted_colors`; None: no identity drift)."""
    # The draws come from a CPU generator (also when the subject lives on a GPU).
    amplitude = 1.0 + imperfections.shape_noise * float(torch.randn((), generator=generator, device="cpu"))
    colors = subject.colors if drifted is None else torch.lerp(subject.colors, drifted, progress_in_clip)
    if imperfections.pose_noise > 0:
        pose = noisy_pose(body, pose, imperfections.pose_noise, generator)
    with torch.no_grad():
        out = render_isotropic(_posed_means(subject, body, pose, max(0.0, amplitude), pose, None), subject.log_scales, colors, camera, torch.ones(3))
    image, alpha = out.features.clamp(0, 1), out.alpha.clamp(0, 1)
    gain = 1 + imperfections.color_drift * progress_in_clip + imperfections.color_jitter * torch.randn(3, generator=generator, device="cpu").to(image.device)
    background = 1 - alpha[..., None]
    image = ((image - background) * gain + background).clamp(0, 1)  # the gain on the person only
    mask = (alpha > 0.5).float()
    if imperfections.mask_noise > 0:
        k = 2 * imperfections.mask_noise + 1
        if float(torch.rand((), generator=generator, device="cpu")) < 0.5:
            mask = F.max_pool2d(mask[None, None], k, 1, imperfections.mask_noise)[0, 0]
        else:
            mask = -F.max_pool2d(-mask[None, None], k, 1, imperfections.mask_noise)[0, 0]
    depth = None if depth_generator is None else estimated_depth(out.depth, alpha, imperfections, depth_generator)
    return image, mask, depth
