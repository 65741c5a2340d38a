"""Wan2.1-VACE (Apache-2.0) through diffusers' own `WanVACEPipeline`: pose-controlled video
with the photo as the reference image.

A thin wrapper: the skeleton video (Wan-style drawing, `condition.draw_wan_pose`) is the
`video` control with an all-white mask (every pixel generated, guided by the control), the
photo is `reference_images`, and a fixed prompt describes the shot. diffusers prepends the
reference latent in time and drops it again before decoding, so the output has exactly the
control video's frames.

Sizes: Wan's VAE compresses time by 4 and space by 8 and the transformer patches 2x2, so
frames must be 4k+1 and H, W multiples of 16. `generate` pads the control video with its
last frame up to 4k+1 and trims the output back. Frames: F; images (H, W, 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import WanVACEPipeline

DEFAULT_PROMPT = (
    "A person moving naturally, full body in view, same clothes and appearance as the reference image, "
    "plain static background, sharp, well lit"
)
# Wan's usual negative prompt (English rendering of the model card's), shortened.
DEFAULT_NEGATIVE_PROMPT = (
    "blurry, low quality, static, extra limbs, deformed hands, deformed face, extra fingers, "
    "fused fingers, text, watermark, several people, cluttered background"
)
SPATIAL_MULTIPLE = 16
TEMPORAL_MULTIPLE = 4


@dataclass
class WanVaceOutput:
    """frames: (F, H, W, 3) float32 in [0, 1]; seconds: wall time of the pipeline call."""

    frames: np.ndarray
    seconds: float


def padded_length(num_frames: int) -> int:
    """The smallest 4k+1 >= num_frames (Wan's VAE needs 1 + 4k frames)."""
    return 1 + TEMPORAL_MULTIPLE * max(0, -(-(num_frames - 1) // TEMPORAL_MULTIPLE))


def load_pipeline(
    folder: str | Path, dtype: torch.dtype = torch.bfloat16, device: torch.device | str | None = None
) -> WanVACEPipeline:
    """The pipeline from a folder laid out like `Wan-AI/Wan2.1-VACE-1.3B-diffusers`. The VAE
    stays in float32 (diffusers' recommendation for Wan's VAE); the rest in `dtype`."""
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
    pipe = WanVACEPipeline.from_pretrained(folder, vae=vae, torch_dtype=dtype)
    if device is not None:
        pipe.to(device)
    return pipe


def generate(
    pipe: WanVACEPipeline,
    reference: np.ndarray,
    skeleton: np.ndarray,
    num_inference_steps: int = 25,
    guidance_scale: float = 5.0,
    generator: torch.Generator | None = None,
    prompt: str | None = DEFAULT_PROMPT,
    negative_prompt: str | None = DEFAULT_NEGATIVE_PROMPT,
    prompt_embeds: torch.Tensor | None = None,
    negative_prompt_embeds: torch.Tensor | None = None,
    max_sequence_length: int = 512,
) -> WanVaceOutput:
    """Animate `reference` along `skeleton`.

    reference: (H, W, 3) uint8 photo (resized to the skeleton's size). skeleton: (F, H, W, 3)
    uint8 control frames, H and W multiples of 16. prompt_embeds (1, L, D): precomputed text
    embeddings (then `prompt` is ignored; the benchmark uses random ones to skip UMT5).
    """
    if skeleton.ndim != 4 or skeleton.shape[-1] != 3 or skeleton.dtype != np.uint8:
        raise ValueError(f"skeleton must be (F, H, W, 3) uint8, got {skeleton.shape} {skeleton.dtype}")
    F, H, W = skeleton.shape[:3]
    if H % SPATIAL_MULTIPLE or W % SPATIAL_MULTIPLE:
        raise ValueError(f"height and width must be multiples of {SPATIAL_MULTIPLE}, got {H} x {W}")
    if reference.ndim != 3 or reference.shape[-1] != 3:
        raise ValueError(f"reference must be (H, W, 3), got {reference.shape}")
    n = padded_length(F)
    frames = list(skeleton) + [skeleton[-1]] * (n - F)  # hold the last pose
    video = [PIL.Image.fromarray(f) for f in frames]
    mask = [PIL.Image.new("L", (W, H), 255)] * n  # white: generate every pixel
    ref = PIL.Image.fromarray(np.asarray(reference, dtype=np.uint8)).resize((W, H), PIL.Image.BICUBIC)
    text = {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds} if prompt_embeds is not None else {
        "prompt": prompt, "negative_prompt": negative_prompt if guidance_scale > 1.0 else None,
    }  # fmt: skip
    start = time.perf_counter()
    out = pipe(
        video=video, mask=mask, reference_images=ref, height=H, width=W, num_frames=n,
        num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, generator=generator,
        output_type="np", max_sequence_length=max_sequence_length, **text,
    ).frames[0]  # fmt: skip
    seconds = time.perf_counter() - start
    return WanVaceOutput(np.asarray(out[:F], dtype=np.float32), seconds)
