"""The PERSONA optimisation: the avatar learns from the captured photo and the generated frames.

Starting from the first avatar (Gaussians on the body, optimised on the photo alone), it adds a
pose-driven deformation (`persona.avatar.deform`) with diffused skinning
(`persona.body.weight_field`: the body's weights near the skin, the field's far from it,
restricted to joints near the point's own; not on frames that show the avatar skinned with the
body's weights, `TrainingSet.body_skinning`, from which no other skinning can be learnt) and
optimises everything on a `TrainingSet` (DESIGN.md §1.3):

- Balanced sampling (`persona.avatar.sampling`): the photo as often as all generated frames.
- Geometry-weighted losses. On a generated frame, the geometry terms (mask; depth and normals
  where the frame has them; optionally the body's part map rendered in the driving pose, where
  the unclothed body covers the pixel: off by default, see `PersonaConfig.part_weight`) at
  full weight; the photometric term on the *refined* render (the main colours plus a second
  colour set that only generated frames train, which absorbs their drift) teaches the main
  colours at 0.1 and the shape at full weight (`generated_image_shape_weight`; PERSONA weighs
  it 0.1 for both: with masks alone the shape starves, and with depth estimates too 0.1 cost
  0.4 dB on the benchmark: see `PersonaConfig`). The 0.1 and the second colour set apply
  where the photo sees the Gaussian (`frame_view`); elsewhere (the back) the generated frames
  are the only source of colour and teach it at full weight. Each generated frame's render is first matched to the
  frame by an affine colour transform (`correct_colors`), which absorbs global colour drift;
  not on frames that show the avatar's colours as they are (`TrainingSet.true_colors`: the
  `synth` renders), where it would only let the colours drift.
  On the captured photo, the photometric terms and the mask at full weight (seams of
  self-occlusion, where the body's depth jumps, down-weighted), the other geometry terms at
  0.1. A generated frame's mask boundary, uncertain by a pixel, is no target (`boundary_band`).
- Per-frame body pose refinement (small rotations of the driving joints, root rotation and
  translation, each pulled towards zero) of the generated frames; each frame's correction is
  its own parameter, so only the frame a step sees moves. Pulled strongly where the frames
  show their driving poses exactly (`TrainingSet.follows_driving_pose`: the `synth` renders),
  loosely where they do not (a video model's frames).
- Where the photo does not see a Gaussian, its colour starts from the generated frames that
  see it (`unseen_colors`).
- Learning rates as PERSONA (1e-3 deformation, 1e-2 scales; colours 3e-2, /10 at 75% of the
  iterations; static offsets 0.2 of the Gaussians' mean size per step: 1 mm at 13.7k); the
  schedule counts epochs, as PERSONA's: `iterations` is the balanced schedule's length, and
  without balancing the same epochs take fewer steps; regularisers: squared offsets (static
  and pose-dependent), total variation of the triplane.

The ablations of the ground-truth benchmark are switches of `PersonaConfig`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F

from persona.avatar.deform import DeformConfig, PoseDeformer
from persona.avatar.losses import affine_aligned, ssim
from persona.avatar.model import AvatarRig, GaussianAvatar, blend_points, render_isotropic
from persona.avatar.sampling import BalancedSampler
from persona.avatar.texture import vertex_normals
from persona.avatar.train import TrainStats, decay_learning_rates, person_crop, seen_by, synchronize
from persona.body.model import BodyModel, BodyPose
from persona.body.regions import dominant_joints, joint_parts
from persona.body.weight_field import WeightFieldConfig
from persona.camera import Camera
from persona.generate.training_set import TrainingFrame, TrainingSet

Progress = Callable[[float, str], None]


@dataclass
class PersonaConfig:
    iterations: int = 600
    # Learning rates (PERSONA) and their decay.
    # Static offsets, per Adam step, as a fraction of the Gaussians' mean initial std: 0.96 mm
    # at 13.7k Gaussians (PERSONA's 1e-3 m), 0.24 mm at 219k. A fixed 1 mm moved the denser
    # avatars' small Gaussians too far per step: at 54.8k, 0.5 mm gave +0.7 dB held-out on ada.
    lr_offsets: float = 0.2
    lr_deform: float = 1e-3
    lr_scales: float = 1e-2
    # Colours at 3x PERSONA's 1e-2 (logits): our schedules are short (hundreds of steps, each
    # Gaussian seen in a fraction of them), and at 1e-2 a back seen only in generated frames
    # cannot reach its colour (ben's dark hair, a white patch on a green shirt): +0.9 dB
    # held-out on the benchmark at 54.8k Gaussians; 1e-1 was worse (noisier).
    lr_colors: float = 3e-2
    # The photo's unseen side starts from the generated frames' mean colour (`unseen_colors`).
    unseen_from_frames: bool = True
    lr_pose: float = 1e-3  # per-frame pose refinement (radians, metres); `pose_weight` below
    decay_at: float = 0.75  # learning rates / 10 after this fraction of the iterations
    # The ingredients (the benchmark's ablations switch them off).
    balanced_sampling: bool = True
    geometry_weighting: bool = True  # False: every term at weight 1 on every frame
    pose_deformation: bool = True
    # Skin the deformed points with the diffused weight field (blended in away from the skin,
    # `persona.body.weight_field.blended_skin_weights`); False: the body's weights at each
    # Gaussian's surface point. Only with the deformation.
    diffused_skinning: bool = True
    refine_poses: bool = True
    # The photo's pose stays as the body fit gave it: it pins the avatar's frame (with every
    # pose refined, a common turn of all frames' poses and the opposite turn of the canonical
    # shape cost nothing, and the held-out poses show the drift. Quick scene: +0.5 dB with the
    # old refinement; +0.3 with per-frame corrections on frames rendered off their poses).
    refine_photo_pose: bool = False
    deform: DeformConfig = field(default_factory=DeformConfig)
    skinning: WeightFieldConfig = field(default_factory=WeightFieldConfig)
    # Weights of the two kinds of terms on the two kinds of frames (geometry weighting). On a
    # generated frame the photometric term teaches the colours at `generated_image_weight` (its
    # colour gradient is scaled) and the geometry at full weight: measured on the benchmark,
    # masks and body part maps alone (we have no depth/normal estimator for generated frames,
    # unlike PERSONA's) teach too little shape without it.
    # The photo's own mask stays at full weight: it comes from a segmenter on the real photo,
    # the most reliable shape cue there is (at 0.1 the benchmark's input-view PSNR fell by 3 dB).
    captured_image_weight: float = 1.0
    captured_geometry_weight: float = 0.1
    captured_mask_weight: float = 1.0
    generated_geometry_weight: float = 1.0
    generated_image_weight: float = 0.1
    # The generated frames' image term's weight on the shape (positions, scales, deformer,
    # pose refinement); its weight on the colours stays `generated_image_weight`. PERSONA's
    # 0.1, with depth estimates on every frame, measured on the full benchmark: cleo +0.4 dB
    # held-out, ada -1.0, mean 25.18 against 25.56; 0.3: 25.54 (README, 2026-12-06).
    generated_image_shape_weight: float = 1.0
    # Terms.
    ssim_weight: float = 0.2  # image loss = (1 - w) L1 + w (1 - SSIM)
    mask_weight: float = 1.0
    # The body's part map is no target by default: rendered from the unclothed body, it is wrong
    # wherever clothes stand off the skin (a skirt bridging the thighs, a sagging sleeve), and
    # there it holds the garment to the body (benchmark: quick run +0.13 dB held-out at 0, 0.05
    # in between; ada in the full setting on the GPU +0.23 dB). PERSONA's target is a part
    # segmentation estimated on each generated frame, which sees the clothes.
    part_weight: float = 0.0
    depth_weight: float = 1.0  # per metre
    normal_weight: float = 0.2
    seam_weight: float = 0.2  # image-loss weight on the photo's self-occlusion seams
    seam_depth_step: float = 0.05  # metres of depth between neighbouring pixels that make a seam
    seam_dilation: int = 2  # pixels
    # Pixels either side of a generated frame's mask boundary where neither the mask nor the
    # image's L1 is a target: a segmenter's boundary on a generated frame is uncertain by about
    # a pixel, and fitting each frame's own error turns into shape noise (benchmark, masks
    # eroded or dilated by a pixel per frame: +0.4 dB held-out on the quick run, +0.5 on ada at
    # 54.8k Gaussians). 0: every pixel. The photo's mask is trusted to the pixel.
    mask_boundary: int = 1
    # On the mean squared static offset, cm^2. The high preset's is 0.1 (full benchmark, 219k
    # Gaussians: +0.4 dB held-out on every subject, -2.4 dB at the input view). It depends on
    # the density and the deformer: at 13.7k Gaussians (the quick run) 0.1 cost 0.8 dB; at
    # 54.8k, with the high preset's deformer, 0.03 gained on a loose shirt and kept a skirt,
    # and with the standard preset's it split (README, 2026-12-06).
    offset_weight: float = 0.01
    deform_weight: float = 0.01  # on the mean squared pose-dependent offset, cm^2
    triplane_tv_weight: float = 1e-2  # total variation of the triplane features
    # On the mean squared pose refinement of the frame in the step (rad^2, m^2). Strong: the
    # benchmark's frames follow their driving poses exactly, and a correction there only
    # absorbs garment and mask noise (no refinement: +0.4 dB on the quick run; at 10, -0.5 dB).
    pose_weight: float = 1000.0
    # The same two for frames that do not follow their driving pose exactly (a video model's,
    # `TrainingSet.follows_driving_pose`): a 10x step and a 100x weaker pull, so the pose can
    # move to what the frame shows. Benchmark, quick scene with every frame rendered 0.03 rad
    # off its driving pose (each fit joint and the root): 24.25 dB held-out against 23.74 with
    # the strict settings above (IoU 0.9526 against 0.9491).
    lr_pose_loose: float = 1e-2
    pose_weight_loose: float = 10.0
    # Generated frames: an affine colour transform per frame, solved in closed form with a ridge
    # towards the identity (`correct_colors`), takes up a video model's global colour drift.
    # Never on frames without drift (`TrainingSet.true_colors`): on the `synth` renders it let
    # the colours drift, and the benchmark's `synth_frames` fell below the first avatar it
    # was trained from (quick run: 21.71 dB held-out against 22.16; without it 22.38).
    color_correction: bool = True
    color_correction_ridge: float = 0.05
    residual_weight: float = 1.0  # on the mean squared generated-only colour residual (logits)
    max_offset: float = 0.08  # metres; static offsets are clipped to this length
    min_scale_ratio: float = 0.6  # scales stay within these ratios of the initial ones
    max_scale_ratio: float = 3.0
    crop_margin: float = 0.05  # of the person box, around the crop that is rendered
    seed: int = 0

    def __post_init__(self) -> None:
        # The colours' gradient on a generated frame is divided by it (`generated_frame_logits`).
        if not self.generated_image_shape_weight > 0:
            raise ValueError(f"generated_image_shape_weight must be positive, got {self.generated_image_shape_weight}")

    def frame_weights(self, captured: bool) -> tuple[float, float, float]:
        """(image weight, scale of the image term's colour gradient, geometry weight) for a
        captured or a generated frame."""
        if not self.geometry_weighting:
            return 1.0, 1.0, 1.0
        if captured:
            return self.captured_image_weight, 1.0, self.captured_geometry_weight
        return self.generated_image_shape_weight, self.generated_image_weight, self.generated_geometry_weight


def scale_gradient(x: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """x in the forward pass; its gradient times `scale` (a number, or a tensor broadcast to
    x) in the backward pass."""
    if isinstance(scale, float) and scale == 1.0:
        return x
    return x.detach() + scale * (x - x.detach())


def generated_frame_logits(
    color_logits: torch.Tensor, generated_colors: torch.Tensor, in_photo: torch.Tensor, color_scale: float, image_weight: float
) -> torch.Tensor:
    """(N, 3) the colour logits a generated frame renders: the main colours (N, 3) plus, where
    the photo sees the Gaussian (in_photo (N, 1) in [0, 1]), the generated-only residual (N, 3).
    Where the photo sees, the main colours learn at `color_scale`; elsewhere at full weight.
    Both gradients are divided by `image_weight`, the image term's weight on the shape, so that
    the colours learn the same whatever it is."""
    to_colors = 1 / image_weight
    logits = scale_gradient(color_logits, (1 - in_photo * (1 - color_scale)) * to_colors)
    return logits + in_photo * scale_gradient(generated_colors, to_colors)


def frame_view(avatar: GaussianAvatar, rig: AvatarRig, frame: TrainingFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """What a frame shows of each Gaussian (`seen_by`): (colours (N, 3), visibility (N,))."""
    return seen_by(avatar, rig, frame.pose, frame.camera, frame.image, frame.mask)


def unseen_colors(avatar: GaussianAvatar, rig: AvatarRig, frames: list[TrainingFrame], in_photo: torch.Tensor) -> torch.Tensor:
    """(N, 3) starting colours: the avatar's where the photo sees the Gaussian (in_photo (N,)),
    elsewhere moving to the generated frames' visibility-weighted mean colour. The photo's
    fill of its unseen side (a mirrored front, a head's back blended from hair and face) is a
    guess; the frames that see the back are evidence, and the optimisation's few steps per
    Gaussian refine colours better than they carry them across the colour space."""
    total, weight = torch.zeros_like(avatar.colors), torch.zeros_like(avatar.colors[:, :1])
    for frame in frames:
        colors, visibility = frame_view(avatar, rig, frame)
        total += visibility[:, None] * colors
        weight += visibility[:, None]
    mean = total / weight.clamp(min=1e-6)
    trust = ((1 - in_photo) * weight.clamp(max=1)[:, 0])[:, None]  # no frame sees it: keep the fill
    return torch.lerp(avatar.colors, mean, trust)


@dataclass
class FrameTargets:
    """What one frame is compared with, cropped to the person's box.

    camera: the crop's camera; image: (h, w, 3) on white; mask: (h, w); parts: (h, w, P) the
    body's part map in the frame's pose; body: (h, w) where the (unclothed) body covers the
    pixel, the only pixels where its part map is a target; pixel_weight: (h, w) image-loss weight
    per pixel (seams down-weighted; 0 on a generated frame's uncertain mask boundary);
    mask_weight: (h, w) mask-loss weight per pixel (0 on that boundary, else 1); depth: (h, w)
    metres (0: unknown) or None, up to a scale and shift where depth_relative; normal: (h, w, 3)
    camera axes or None.
    """

    camera: Camera
    image: torch.Tensor
    mask: torch.Tensor
    parts: torch.Tensor
    body: torch.Tensor
    pixel_weight: torch.Tensor
    mask_weight: torch.Tensor
    depth: torch.Tensor | None
    normal: torch.Tensor | None
    depth_relative: bool = False


def part_features(body: BodyModel, weights: torch.Tensor) -> torch.Tensor:
    """(N, P) one-hot part of each Gaussian (from its dominant joint)."""
    return F.one_hot(joint_parts(body).to(weights.device)[dominant_joints(weights)], len(body.part_roots)).float()


def seam_weights(depth: torch.Tensor, alpha: torch.Tensor, config: PersonaConfig) -> torch.Tensor:
    """(h, w) image-loss weights: `seam_weight` where the body's depth (h, w) jumps by more than
    `seam_depth_step` between neighbours (Sobel, dilated) inside the body (alpha > 0.5), else 1."""
    inside = alpha > 0.5
    z = torch.where(inside, depth / alpha.clamp(min=1e-6), torch.zeros_like(depth))
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=depth.device) / 8
    gx = F.conv2d(z[None, None], kx[None, None], padding=1)[0, 0]
    gy = F.conv2d(z[None, None], kx.T[None, None], padding=1)[0, 0]
    edge = ((gx.square() + gy.square()).sqrt() > config.seam_depth_step / 4) & inside
    k = 2 * config.seam_dilation + 1
    edge = F.max_pool2d(edge[None, None].float(), k, 1, config.seam_dilation)[0, 0] > 0
    return torch.where(edge, torch.full_like(depth, config.seam_weight), torch.ones_like(depth))


def boundary_band(mask: torch.Tensor, width: int) -> torch.Tensor:
    """(h, w) 1 on the pixels within `width` pixels (square neighbourhood) of the boundary of
    mask (h, w) (> 0.5 inside), on either side, else 0: where eroding or dilating the mask by
    up to `width` pixels changes it."""
    k = 2 * width + 1
    inside = (mask > 0.5).float()[None, None]
    dilated = F.max_pool2d(inside, k, 1, width)
    eroded = -F.max_pool2d(-inside, k, 1, width)
    return (dilated - eroded)[0, 0]


def frame_targets(frame: TrainingFrame, avatar: GaussianAvatar, rig: AvatarRig, parts: torch.Tensor, config: PersonaConfig) -> FrameTargets:
    """Crop a frame to its person box and render the body's part map (and, for the photo, its
    seams) in the frame's pose."""
    camera, (x0, y0, x1, y1) = person_crop(frame.camera, frame.mask, config.crop_margin)
    camera = camera.to(frame.image.device)  # no host-to-device copies inside the loop
    mask = frame.mask[y0:y1, x0:x1]
    image = frame.image[y0:y1, x0:x1] * mask[..., None] + (1 - mask[..., None])
    with torch.no_grad():
        means = rig.pose_points(rig.rest_points, frame.pose)[0]  # the body's surface, no offsets
        out = render_isotropic(means, avatar.log_scales, parts, camera)
    pixel_weight = seam_weights(out.depth, out.alpha, config) if frame.captured else torch.ones_like(mask)
    mask_weight = torch.ones_like(mask)
    if not frame.captured and config.mask_boundary > 0:
        mask_weight = 1 - boundary_band(mask, config.mask_boundary)
        pixel_weight = pixel_weight * mask_weight
    crop = lambda t: None if t is None else t[y0:y1, x0:x1]  # noqa: E731
    body = (out.alpha > 0.5).float() * (mask > 0.5).float()
    parts_map = out.features / out.alpha.clamp(min=1e-6)[..., None]
    return FrameTargets(
        camera, image, mask, parts_map, body, pixel_weight, mask_weight, crop(frame.depth), crop(frame.normal), frame.depth_relative
    )


@dataclass
class PersonaStats(TrainStats):
    captured_steps: int = 0
    generated_steps: int = 0


class _PoseRefinement(torch.nn.Module):
    """Per-frame corrections, one parameter per frame (F of them, each (P + 2, 3): rotations of
    the P pose joints, then the root's rotation and translation), all starting at zero.

    One tensor per frame, so a step moves only the frame it saw: with one (F, P + 2, 3) tensor,
    Adam's momentum and the penalty moved every frame's pose at every step."""

    def __init__(self, frames: int, pose_joints: torch.Tensor):
        super().__init__()
        self.register_buffer("pose_joints", pose_joints)
        self.corrections = torch.nn.ParameterList([torch.zeros(len(pose_joints) + 2, 3) for _ in range(frames)])

    def refine(self, k: int, pose: BodyPose) -> BodyPose:
        c = self.corrections[k]
        rotations = pose.joint_rotations.index_add(1, self.pose_joints, c[None, :-2])
        return BodyPose(rotations, pose.global_orient + c[None, -2], pose.translation + c[None, -1])

    def penalty(self, k: int) -> torch.Tensor:
        """Frame k's squared correction (rad^2, m^2), its mean over the numbers."""
        return self.corrections[k].square().mean()


def optimize_persona(
    avatar: GaussianAvatar,
    body: BodyModel,
    training_set: TrainingSet,
    config: PersonaConfig = PersonaConfig(),
    progress: Progress | None = None,
) -> tuple[GaussianAvatar, PersonaStats]:
    """Optimise the avatar on every frame of `training_set` (see the module doc). Returns a new
    avatar (with a deformer when `config.pose_deformation`); the input is not modified."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    pose_joints = tuple(body.fit_joints)
    # The weight field is built only when the deformation and diffused skinning are on, and the
    # frames can teach it: on the first avatar's own renders (skinned with the body's weights)
    # it only moved the avatar away from them (the pipeline's preview preset on the example
    # photo: input view 25.66 dB with it, 26.83 without; the first avatar 26.41).
    use_field = config.pose_deformation and config.diffused_skinning and not training_set.body_skinning
    skinning = config.skinning if use_field else None
    rig = AvatarRig(body, replace(avatar, deformer=None), pose_joints if config.pose_deformation else (), skinning, config.deform.hops, config.deform.hop_tree)
    device = avatar.offsets.device
    pose_joint_index = torch.tensor([body.joint_index(j) for j in pose_joints], device=device)
    frames = training_set.frames
    parts = part_features(body, rig.weights)
    targets = [frame_targets(f, avatar, rig, parts, config) for f in frames]
    # How well the photo sees each Gaussian (N, 1): the photo's identity is protected where it
    # sees the person; elsewhere (the back, under the arms) only generated frames can teach colour.
    captured_frames = [f for f in frames if f.captured]
    in_photo = frame_view(avatar, rig, captured_frames[0])[1] if captured_frames else torch.zeros(len(rig.weights), device=device)
    generated_frames = [f for f in frames if not f.captured]
    start_colors = unseen_colors(avatar, rig, generated_frames, in_photo) if config.unseen_from_frames and generated_frames else avatar.colors
    in_photo = in_photo[:, None]

    # Parameters
    offsets = avatar.offsets.clone().requires_grad_(True)
    log_scales = avatar.log_scales.clone().requires_grad_(True)
    color_logits = torch.logit(start_colors.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
    generated_colors = torch.zeros_like(color_logits, requires_grad=True)  # logit residual, generated frames only
    lo, hi = rig.rest_points.min(0).values, rig.rest_points.max(0).values
    deformer = PoseDeformer(config.deform, len(pose_joints), (lo + hi) / 2).to(device) if config.pose_deformation else None
    refinement = _PoseRefinement(len(frames), pose_joint_index).to(device)
    if training_set.follows_driving_pose:
        lr_pose, pose_weight = config.lr_pose, config.pose_weight
    else:  # a video model's frames
        lr_pose, pose_weight = config.lr_pose_loose, config.pose_weight_loose
    groups = [
        {"params": [offsets], "lr": config.lr_offsets * float(avatar.log_scales.exp().mean())},
        {"params": [log_scales], "lr": config.lr_scales},
        {"params": [color_logits, generated_colors], "lr": config.lr_colors},
    ]
    if deformer is not None:
        groups.append({"params": list(deformer.parameters()), "lr": config.lr_deform})
    if config.refine_poses:
        groups.append({"params": list(refinement.parameters()), "lr": lr_pose})
    optimizer = torch.optim.Adam(groups, fused=device.type == "cuda")  # one kernel for all parameters on a GPU
    initial_log_scale = avatar.log_scales.clone()
    balanced = BalancedSampler(
        [i for i, f in enumerate(frames) if f.captured], [i for i, f in enumerate(frames) if not f.captured],
        config.balanced_sampling, config.seed,
    )  # fmt: skip
    # `iterations` is the length of the balanced schedule; the schedule is a number of epochs
    # (as PERSONA's), which takes fewer steps when the photo is not repeated.
    iterations = balanced.steps_for(config.iterations)
    sampler = iter(balanced)
    if config.part_weight == 0:
        parts = parts[:, :0]  # no part channels to render
    background = torch.cat([torch.ones(3, device=device), torch.zeros(parts.shape[1], device=device)])
    rest_normals = None  # only frames with normal maps need them
    if any(t.normal is not None for t in targets):
        with torch.no_grad():
            rest_vertices = body.rest_vertices(training_set.shape[None])
            rest_normals = F.normalize(avatar.binding.interpolate(body.faces, vertex_normals(rest_vertices, body.faces)[0]), dim=-1)
    posing = body.posing(training_set.shape[None])
    correct_frame_colors = config.color_correction and not training_set.true_colors
    decay_step = int(config.decay_at * iterations)
    stats = PersonaStats(0.0, iterations)
    losses = []  # kept on the device: reading them each time would wait for the GPU
    synchronize(device)
    loop_start = time.perf_counter()

    for step in range(iterations):
        decay_learning_rates(optimizer, step, decay_step)
        k = next(sampler)
        frame, target = frames[k], targets[k]
        optimizer.zero_grad(set_to_none=True)
        refine = config.refine_poses and (config.refine_photo_pose or not frame.captured)
        pose = refinement.refine(k, frame.pose) if refine else frame.pose
        transforms = posing(pose)  # (1, J, 4, 4)
        canonical = rig.rest_points + offsets
        if deformer is not None:
            pose_offsets = rig.pose_offsets(deformer, pose)  # (1, N, 3)
            means = rig.skin_deformed(canonical[None] + pose_offsets, transforms)[0]
        else:
            means = blend_points(rig.weights, transforms, canonical)[0]
        image_weight, color_scale, geometry_weight = config.frame_weights(frame.captured)
        logits = color_logits if frame.captured else generated_frame_logits(color_logits, generated_colors, in_photo, color_scale, image_weight)
        features = torch.cat([torch.sigmoid(logits), parts], -1)
        out = render_isotropic(means, log_scales, features, target.camera, background)
        rgb, part_map = out.features[..., :3], out.features[..., 3:]
        if correct_frame_colors and not frame.captured:
            rgb = correct_colors(rgb, out.alpha, target.image, target.mask, config.color_correction_ridge)

        l1 = ((rgb - target.image).abs().mean(-1) * target.pixel_weight).mean()
        image_loss = (1 - config.ssim_weight) * l1 + config.ssim_weight * (1 - ssim(rgb, target.image))
        mask_loss = config.mask_weight * ((out.alpha - target.mask).abs() * target.mask_weight).mean()
        geometry = torch.zeros((), device=device)
        if config.part_weight > 0:
            # Parts only where the unclothed body covers the pixel: clothes may stand off it.
            part_error = (part_map / out.alpha.clamp(min=1e-6)[..., None] - target.parts).abs().sum(-1) / 2
            geometry = geometry + config.part_weight * (part_error * target.body).mean()
        if target.depth is not None or target.normal is not None:
            # Means over the pixels seen in both, written without branching on the data (a
            # test such as `seen.any()` would wait for the GPU every step).
            seen = ((target.mask > 0.5) & (out.alpha > 0.5)).float()
            seen_mean = lambda x: (x * seen).sum() / seen.sum().clamp(min=1)  # noqa: E731
            if target.depth is not None:
                depth = out.depth / out.alpha.clamp(min=1e-6)
                known = seen * (target.depth > 0).float()
                goal = affine_aligned(target.depth, depth, known) if target.depth_relative else target.depth
                error = ((depth - goal).abs() * known).sum() / known.sum().clamp(min=1)
                geometry = geometry + config.depth_weight * error
            if target.normal is not None:
                normals = _posed_normals(rig.weights, rest_normals, transforms)
                R = target.camera.world_to_camera[:3, :3]
                normal_out = render_isotropic(means, log_scales, normals @ R.T, target.camera)
                cos = (F.normalize(normal_out.features, dim=-1) * target.normal).sum(-1)
                geometry = geometry + config.normal_weight * seen_mean(1 - cos)
        mask_weight = config.captured_mask_weight if frame.captured and config.geometry_weighting else geometry_weight
        loss = image_weight * image_loss + mask_weight * mask_loss + geometry_weight * geometry
        loss = loss + config.offset_weight * (offsets * 100).square().sum(-1).mean()
        if deformer is not None:
            loss = loss + config.deform_weight * (pose_offsets * 100).square().sum(-1).mean()
            plane = deformer.triplane
            tv = (plane[..., 1:, :] - plane[..., :-1, :]).square().mean() + (plane[..., 1:] - plane[..., :-1]).square().mean()
            loss = loss + config.triplane_tv_weight * tv
        if refine:
            loss = loss + pose_weight * refinement.penalty(k)
        if config.residual_weight > 0 and not frame.captured:
            loss = loss + config.residual_weight * generated_colors.square().mean()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            length = offsets.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            offsets.mul_(length.clamp(max=config.max_offset) / length)
            log_scales.copy_(log_scales.clamp(
                initial_log_scale + math.log(config.min_scale_ratio), initial_log_scale + math.log(config.max_scale_ratio)
            ))  # fmt: skip
        if frame.captured:
            stats.captured_steps += 1
        else:
            stats.generated_steps += 1
        if step % 10 == 0:
            losses.append(loss.detach())
            if progress is not None:
                progress(step / iterations, f"optimising the avatar on {len(frames)} frames ({step}/{iterations})")
    synchronize(device)
    stats.loop_seconds = time.perf_counter() - loop_start
    stats.losses = torch.stack(losses).tolist() if losses else []
    stats.seconds = time.perf_counter() - start
    if deformer is not None:
        deformer.requires_grad_(False)
    photo_pose = avatar.photo_pose
    captured = [i for i, f in enumerate(frames) if f.captured]
    if config.refine_poses and config.refine_photo_pose and captured:
        with torch.no_grad():
            photo_pose = refinement.refine(captured[0], frames[captured[0]].pose).detach()
    trained = replace(
        avatar,
        photo_pose=photo_pose,
        offsets=offsets.detach(),
        log_scales=log_scales.detach(),
        colors=torch.sigmoid(color_logits).detach(),
        deformer=deformer,
        skinning=skinning,
        pose_joints=pose_joints if deformer is not None else (),
    )
    return trained, stats


def _posed_normals(weights: torch.Tensor, rest_normals: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """(N, 3) world normals: rest normals (N, 3) turned by the blended bone rotations of
    weights (N, J) and transforms (1, J, 4, 4)."""
    R = torch.einsum("nj,jab->nab", weights, transforms[0, :, :3, :3])
    return F.normalize((R @ rest_normals[..., None])[..., 0], dim=-1)


def correct_colors(rgb: torch.Tensor, alpha: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, ridge: float) -> torch.Tensor:
    """rgb: (h, w, 3) render on white; alpha (h, w); target (h, w, 3) on white; mask (h, w).
    The person's colours mapped by the affine colour transform (3x3 + bias, ridge towards the
    identity, solved in closed form on the pixels inside both silhouettes, no gradient through
    the solve) that best matches the target: a generated frame's global colour drift."""
    with torch.no_grad():
        inside = ((alpha > 0.5) & (mask > 0.5)).reshape(-1)
        a = alpha.reshape(-1, 1)
        person = (rgb.reshape(-1, 3) - (1 - a)) / a.clamp(min=1e-3)
        X = torch.cat([person, torch.ones_like(a)], 1) * inside[:, None]
        Y = target.reshape(-1, 3) * inside[:, None]
        n = inside.sum().clamp(min=1)
        prior = torch.cat([torch.eye(3, device=rgb.device), torch.zeros(1, 3, device=rgb.device)])
        lhs = X.T @ X / n + ridge * torch.eye(4, device=rgb.device)
        rhs = X.T @ Y / n + ridge * prior
        W = torch.linalg.solve_ex(lhs, rhs).result  # (4, 3); solve_ex: no error check, which would wait for a GPU
    premult = rgb - (1 - alpha[..., None])
    return premult @ W[:3] + alpha[..., None] * W[3] + (1 - alpha[..., None])
