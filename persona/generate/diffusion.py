"""The pose-guided video diffusion backends (`mimicmotion`, `wan-vace`) of the generator.

Each backend has the generator's `Backend` signature. Per driving clip it:
1. draws the clip's skeleton video (`driving.clip_keypoints` + `condition.skeleton_video`,
   DWPose style for MimicMotion, Wan style for Wan) at the model's generation size: the
   preset's long side at the photo's aspect, rounded to the model's multiple;
2. animates the photo along it (frame 0 of every clip is the photo's own pose and camera,
   as MimicMotion expects);
3. resizes the frames to the clip cameras' size and adds per-frame geometry (`frame_geometry`):
   the person mask from the embedded segmenter (mediapipe), and the body pose, which is the
   driving pose (known by construction) with only the root translation re-solved against
   the keypoints detected on the generated frame and smoothed over the clip (the video
   model may drift the person a little from the drawn skeleton).

Weights come through `persona.hub` and need CUDA; when they cannot be had, the backend raises
`PersonaError` and `generate_training_set` falls back to `synth`, noting why.

`VIDEO_PRESETS` holds the per-backend settings chosen from `bench/results/video_gpu.json`
(one H100, random full-size weights): the standard preset's generation is <= 20 s of GPU.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from persona.body.model import BodyModel, BodyPose
from persona.errors import PersonaError
from persona.generate.condition import skeleton_video
from persona.generate.driving import DrivingClip, DrivingPlan, clip_keypoints
from persona.generate.training_set import TrainingFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoPreset:
    """Settings of one diffusion backend at one quality.

    frames_per_motion: frames of each driving clip (what GenerateConfig.frames_per_motion
    should be for this backend); long_side: generation size in pixels (the photo's aspect,
    multiples of 16); steps, guidance: denoising steps and CFG scale (1: one pass);
    tile, overlap: MimicMotion's long-video tiling. seconds_h100: the measured generation
    time of 2 clips on one H100 (bench/results/video_gpu.json; model loading excluded).
    """

    frames_per_motion: int
    long_side: int
    steps: int
    guidance: float
    tile: int = 72
    overlap: int = 6
    seconds_h100: float = 0.0


# Measured 2026-11-25 on one H100 (bench/results/video_gpu.json, 2 clips each):
# mimicmotion 448x256/16f/8 steps/no CFG 2.3 s; 576x320/24f/10/CFG 8.1 s; 704x384/24f/12/CFG
# 11.3 s; 1024x576/72f/25/CFG (the paper) 109.5 s. wan-vace 448x256/17f/8/no CFG 2.4 s;
# 576x320/25f/10 5.2 s, with CFG 5 7.2 s; 832x480/81f/25/CFG 128.8 s.
VIDEO_PRESETS: dict[str, dict[str, VideoPreset]] = {
    "mimicmotion": {
        "preview": VideoPreset(16, 448, 8, 1.0, seconds_h100=2.3),
        "standard": VideoPreset(24, 704, 12, 2.0, seconds_h100=11.3),
        "high": VideoPreset(72, 1024, 25, 2.0, seconds_h100=109.5),  # the paper's tile and sampler
    },
    "wan-vace": {
        "preview": VideoPreset(17, 448, 8, 1.0, seconds_h100=2.4),
        "standard": VideoPreset(25, 576, 10, 5.0, seconds_h100=7.2),
        "high": VideoPreset(81, 832, 25, 5.0, seconds_h100=128.8),  # the model card's size
    },
}
# MimicMotion: VAE /8 then three UNet downsamplings /8 -> 64 px; Wan: VAE /8, patch 2 -> 16 px.
SIZE_MULTIPLE = {"mimicmotion": 64, "wan-vace": 16}


def preset_for(backend: str, config) -> VideoPreset:
    """The backend's settings for a GenerateConfig: the row named by `config.video_preset`
    when the config has that field, else the row whose frame count is nearest to
    `config.frames_per_motion` (GenerateConfig has no steps/guidance fields yet)."""
    rows = VIDEO_PRESETS[backend]
    name = getattr(config, "video_preset", None)
    if name is not None:
        if name not in rows:
            raise ValueError(f"unknown video preset {name!r} for {backend}; use one of {list(rows)}")
        return rows[name]
    return min(rows.values(), key=lambda r: abs(np.log(r.frames_per_motion / max(config.frames_per_motion, 1))))


def generation_size(width: int, height: int, long_side: int, multiple: int) -> tuple[int, int]:
    """(W, H) with the long side `long_side` and the aspect of width x height, both rounded to
    `multiple` pixels."""
    factor = long_side / max(width, height)
    return (max(multiple, round(width * factor / multiple) * multiple), max(multiple, round(height * factor / multiple) * multiple))


def _device() -> torch.device:
    if not torch.cuda.is_available():
        raise PersonaError("The diffusion generators need a CUDA GPU; none is available here.")
    return torch.device("cuda")


# --- model loading (kept between requests: loading takes tens of seconds) ---------------------


@functools.lru_cache(maxsize=1)
def load_mimicmotion(device: str = "cuda"):
    from persona.generate.mimicmotion import build_pipeline
    from persona.hub import fetch

    svd, weights = fetch("svd-xt-1-1"), fetch("mimicmotion")
    pipe = build_pipeline(svd, weights / "MimicMotion_1-1.pth", torch.float16, device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@functools.lru_cache(maxsize=1)
def load_wan_vace(device: str = "cuda"):
    from persona.generate.wan_vace import load_pipeline
    from persona.hub import fetch

    pipe = load_pipeline(fetch("wan-vace-1.3b"), torch.bfloat16, device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- per-frame geometry -----------------------------------------------------------------------


def refine_root_translation(
    body: BodyModel, shape: torch.Tensor, clip: DrivingClip, detected: np.ndarray,
    smoothness: float = 10.0, max_offset_m: float = 0.3, min_points: int = 4,
) -> tuple[BodyPose, torch.Tensor]:  # fmt: skip
    """The clip's poses with the root translation re-solved against detected keypoints.

    detected: (F, K, 3) the body model's keypoints as found on the generated frames, pixels +
    score (0: not found). Solves one offset per frame, (F, 3) metres in world axes, minimising
    sum_k score * |project(X_k + d_f) - detected_k|^2 / image size^2 + smoothness * sum_f
    |d_f - d_(f-1)|^2 (the smoothing over time), frames with fewer than `min_points`
    confident keypoints held by the smoothing alone; offsets are clamped to `max_offset_m`.
    Returns (poses with translation + d, d)."""
    F = clip.num_frames
    with torch.no_grad():
        X = body.forward(shape[None], clip.poses).keypoints.float()  # (F, K, 3)
    target = torch.as_tensor(detected[..., :2], dtype=torch.float32)
    score = torch.as_tensor(detected[..., 2], dtype=torch.float32) * (torch.as_tensor(detected[..., 2]) > 0.3)
    score = score * (score.gt(0).sum(-1, keepdim=True) >= min_points)  # (F, K)
    offset = torch.zeros(F, 3, requires_grad=True)
    optimiser = torch.optim.LBFGS([offset], lr=1.0, max_iter=50, line_search_fn="strong_wolfe")

    def loss_fn() -> torch.Tensor:
        optimiser.zero_grad()
        loss = offset.new_zeros(())
        for f, camera in enumerate(clip.cameras):
            pixels, _ = camera.project(X[f] + offset[f])
            size = float(max(camera.width, camera.height))
            loss = loss + (score[f] * ((pixels - target[f]) / size).pow(2).sum(-1)).sum()
        loss = loss + smoothness * (offset[1:] - offset[:-1]).pow(2).sum() + 1e-4 * offset.pow(2).sum()
        loss.backward()
        return loss

    if score.sum() > 0:
        optimiser.step(loss_fn)
    d = offset.detach()
    d = d * (max_offset_m / d.norm(dim=-1, keepdim=True).clamp(min=max_offset_m))  # clamp the length
    poses = clip.poses
    return BodyPose(poses.joint_rotations, poses.global_orient, poses.translation + d.to(poses.translation)), d


def frame_geometry(
    body: BodyModel, shape: torch.Tensor, clip: DrivingClip, images: np.ndarray
) -> tuple[np.ndarray, BodyPose, list[str]]:
    """Masks and poses for a clip's generated frames. images: (F, H, W, 3) float [0, 1] at the
    cameras' size -> masks (F, H, W) float [0, 1] from the embedded segmenter (zeros where it
    finds nobody), poses (batch F), notes."""
    from persona.perceive.keypoints import COCO23, mediapipe_to_coco23
    from persona.perceive.person import perceive_person

    F, H, W = images.shape[:3]
    names = body.keypoint_names
    masks = np.zeros((F, H, W), np.float32)
    detected = np.zeros((F, len(names), 3), np.float32)
    missed = 0
    for f in range(F):
        try:
            found = perceive_person(images[f].astype(np.float32))
        except PersonaError:
            missed += 1
            continue
        masks[f] = found.mask
        coco = mediapipe_to_coco23(found.body)  # (23, 3)
        for k, name in enumerate(names):
            if name in COCO23:
                detected[f, k] = coco[COCO23.index(name)]
    poses, offset = refine_root_translation(body, shape, clip, detected)
    notes = []
    if missed:
        notes.append(f"{clip.name}: no person found on {missed} of {F} generated frames (mask left empty)")
    log.info("%s: root offsets up to %.3f m", clip.name, float(offset.norm(dim=-1).max()) if F else 0.0)
    return masks, poses, notes


# --- the backends -----------------------------------------------------------------------------


def _photo_uint8(frame: TrainingFrame) -> np.ndarray:
    return (frame.image.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


def _run_backend(name: str, inputs, plan: DrivingPlan, config, generator: torch.Generator, progress, clip_fn) -> list[TrainingFrame]:
    preset = preset_for(name, config)
    photo = _photo_uint8(inputs.photo)
    frames: list[TrainingFrame] = []
    notes: list[str] = []
    for c, clip in enumerate(plan.clips):
        camera = clip.cameras[0]
        W, H = generation_size(camera.width, camera.height, preset.long_side, SIZE_MULTIPLE[name])
        keypoints = clip_keypoints(inputs.body, inputs.shape, clip)  # (F, K, 3) camera pixels
        keypoints[..., 0] *= W / camera.width
        keypoints[..., 1] *= H / camera.height
        skeleton = skeleton_video(keypoints, H, W, "dwpose" if name == "mimicmotion" else "wan")
        reference = cv2.resize(photo, (W, H), interpolation=cv2.INTER_AREA)
        video = clip_fn(reference, skeleton, preset, generator)  # (F, H, W, 3) float [0, 1]
        video = np.stack([cv2.resize(v, (camera.width, camera.height), interpolation=cv2.INTER_AREA) for v in video])
        masks, poses, clip_notes = frame_geometry(inputs.body, inputs.shape, clip, np.clip(video, 0, 1))
        notes += clip_notes
        for i, cam in enumerate(clip.cameras):
            frames.append(TrainingFrame(
                torch.from_numpy(np.ascontiguousarray(video[i])).float().clamp(0, 1), torch.from_numpy(masks[i]),
                poses.index(i).detach(), cam, captured=False, motion=clip.name, index=i,
            ))  # fmt: skip
        if progress is not None:
            progress((c + 1) / len(plan.clips), f"generating training videos with {name} ({c + 1}/{len(plan.clips)})")
    for note in notes:
        log.warning(note)
    return frames


def mimicmotion_backend(inputs, plan: DrivingPlan, config, generator: torch.Generator, progress=None) -> list[TrainingFrame]:
    """MimicMotion (research-only weights): see the module doc."""
    device = _device()
    pipe = load_mimicmotion(str(device))

    def clip_fn(reference, skeleton, preset: VideoPreset, gen):
        import PIL.Image

        out = pipe(
            PIL.Image.fromarray(reference), skeleton, num_inference_steps=preset.steps, guidance_scale=preset.guidance,
            tile_size=preset.tile, tile_overlap=preset.overlap, generator=gen, output_type="np",
        ).frames[0]  # fmt: skip
        return np.asarray(out, dtype=np.float32)

    return _run_backend("mimicmotion", inputs, plan, config, generator, progress, clip_fn)


def wan_vace_backend(inputs, plan: DrivingPlan, config, generator: torch.Generator, progress=None) -> list[TrainingFrame]:
    """Wan2.1-VACE-1.3B (Apache-2.0): see the module doc."""
    from persona.generate.wan_vace import generate

    device = _device()
    pipe = load_wan_vace(str(device))

    def clip_fn(reference, skeleton, preset: VideoPreset, gen):
        return generate(pipe, reference, skeleton, preset.steps, preset.guidance, gen).frames

    return _run_backend("wan-vace", inputs, plan, config, generator, progress, clip_fn)
