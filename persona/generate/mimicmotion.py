"""MimicMotion (Tencent, 2024) as a diffusers pipeline: pose-guided image-to-video.

The paper's generator (PERSONA section 3.2): Stable Video Diffusion img2vid-xt-1.1 with its
whole UNet fine-tuned and a small PoseNet whose output is added to the UNet's first
feature map. We run it on the *stock* `UNetSpatioTemporalConditionModel` of diffusers
0.42.1: MimicMotion's fork only adds `sample = conv_in(sample) + pose_latents`, which a
forward hook on `unet.conv_in` reproduces exactly (the hook adds nothing when the pose is
None, which is the unconditional CFG pass).

Faithful to `Tencent/MimicMotion` (`pipelines/pipeline_mimicmotion.py`, `configs/test.yaml`):
- CLIP image embedding of the reference at 224 px (antialiased); VAE latent of the reference
  (`latent_dist.mode()`, *not* scaled) repeated over frames and concatenated on channels.
- CFG as two batch-1 UNet calls: unconditional = zero CLIP embedding, zero image latents,
  no pose; conditional = everything. One constant guidance scale (2.0 in the paper).
- Long videos in tiles of T frames overlapping by O, frame 0 (the reference's own pose) in
  every tile; the tiles' predictions are fused at *every* step with triangle weights
  w_k = min((k + .5) 2/T, 2 - (k + .5) 2/T), then CFG, then one scheduler step.
- One T-frame noise sample, repeated along time; VAE decoding in chunks (8).
- Micro-conditioning [fps - 1, motion bucket, noise aug] = [6, 127, 0].

Shapes: F frames, H x W pixels, h x w = H/8 x W/8 latents, C = 320 (UNet conv_in width).
Pose images are DWPose drawings (`persona.generate.condition.draw_dwpose`) in [0, 255].

Weights (see `persona.hub`): `svd-xt-1-1` (VAE, CLIP, configs; gated) and `mimicmotion`
(UNet + PoseNet, research only). `load_mimicmotion_checkpoint` reads the released `.pth`
with `torch.load(weights_only=True)` (never unpickling code) or the safetensors copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    ModelMixin,
    UNetSpatioTemporalConditionModel,
)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import _resize_with_antialiasing
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from torch import nn
from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

from persona.errors import PersonaError

log = logging.getLogger(__name__)


# --- PoseNet ----------------------------------------------------------------------------------


class PoseNet(ModelMixin, ConfigMixin):
    """MimicMotion's pose encoder: (F, 3, H, W) skeleton images in [-1, 1] ->
    (F, C, H/8, W/8) residuals for the UNet's first feature map.

    Eight 3x3/4x4 convolutions with SiLU (three of them stride 2), a 1x1 projection to C
    (zero-initialised, so an untrained PoseNet leaves the UNet unchanged) and a learnt scale
    (init 2). Parameter names (`conv_layers.N`, `final_proj`, `scale`) equal the released
    checkpoint's `pose_net.*` keys, so its state dict loads as is.
    """

    @register_to_config
    def __init__(self, noise_latent_channels: int = 320):
        super().__init__()
        widths = [(3, 3, 3, 1), (3, 16, 4, 2), (16, 16, 3, 1), (16, 32, 4, 2), (32, 32, 3, 1), (32, 64, 4, 2), (64, 64, 3, 1), (64, 128, 3, 1)]  # fmt: skip
        layers: list[nn.Module] = []
        for c_in, c_out, k, s in widths:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=k, stride=s, padding=1), nn.SiLU()]
        self.conv_layers = nn.Sequential(*layers)
        self.final_proj = nn.Conv2d(128, noise_latent_channels, kernel_size=1)
        for m in self.conv_layers:
            if isinstance(m, nn.Conv2d):  # He init, zero bias, as the source
                nn.init.normal_(m.weight, std=float(np.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.in_channels))))
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.final_proj.weight)
        nn.init.zeros_(self.final_proj.bias)
        self.scale = nn.Parameter(torch.ones(1) * 2)

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        """pose: (F, 3, H, W) or (B, F, 3, H, W) in [-1, 1] -> (F or B*F, C, H/8, W/8)."""
        if pose.dim() == 5:
            pose = pose.flatten(0, 1)
        return self.final_proj(self.conv_layers(pose)) * self.scale


# --- checkpoint conversion --------------------------------------------------------------------


@dataclass
class CheckpointParts:
    """A MimicMotion checkpoint split by module: `unet` and `pose_net` state dicts (prefix
    removed); `other`: keys with neither prefix (reported, never loaded)."""

    unet: dict[str, torch.Tensor]
    pose_net: dict[str, torch.Tensor]
    other: list[str]


def load_mimicmotion_checkpoint(path: str | Path) -> CheckpointParts:
    """Read the released checkpoint: `.pth`/`.pt`/`.bin` through `torch.load(weights_only=True)`
    (a plain dict of tensors; any pickled code is refused) or `.safetensors`. Keys
    `unet.*` / `pose_net.*` (as MimicMotion's loader writes them)."""
    path = Path(path)
    if not path.is_file():
        raise PersonaError(f"MimicMotion checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle refusals and corrupt files alike: name the file
        raise PersonaError(f"Could not read the MimicMotion checkpoint {path.name}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PersonaError(f"{path.name} is not a state dict of tensors (expected keys unet.* and pose_net.*).")
    parts = CheckpointParts({}, {}, [])
    for key, value in state.items():
        if key.startswith("unet."):
            parts.unet[key[len("unet.") :]] = value
        elif key.startswith("pose_net."):
            parts.pose_net[key[len("pose_net.") :]] = value
        else:
            parts.other.append(key)
    if not parts.unet or not parts.pose_net:
        raise PersonaError(
            f"{path.name} has no {'unet.*' if not parts.unet else 'pose_net.*'} keys; is it a MimicMotion checkpoint?"
        )
    return parts


def convert_checkpoint(
    parts: CheckpointParts, unet: UNetSpatioTemporalConditionModel, pose_net: PoseNet
) -> tuple[UNetSpatioTemporalConditionModel, PoseNet]:
    """Load the checkpoint into the stock UNet and our PoseNet, strictly: every parameter of
    both must be in the checkpoint with its shape (MimicMotion fine-tuned the whole UNet).
    Modules built on the meta device get the checkpoint's tensors assigned (no copy)."""
    for name, module, state in (("unet", unet, parts.unet), ("pose_net", pose_net, parts.pose_net)):
        expected = module.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or wrong:
            raise PersonaError(
                f"The MimicMotion checkpoint does not fit the {name}: {len(missing)} missing "
                f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])}), "
                f"{len(wrong)} of another shape ({', '.join(wrong[:3])})."
            )
        meta = any(p.is_meta for p in module.parameters())
        module.load_state_dict(state, strict=True, assign=meta)
    if parts.other:
        log.info("mimicmotion: %d checkpoint keys outside unet/pose_net ignored", len(parts.other))
    return unet, pose_net


# --- the pipeline -----------------------------------------------------------------------------


@dataclass
class MimicMotionPipelineOutput(BaseOutput):
    """frames: (B, F, H, W, 3) float in [0, 1] for "np", (B, F, 3, H, W) tensor for "pt",
    B lists of F PIL images for "pil", or the (B, F, 4, h, w) latents for "latent"."""

    frames: np.ndarray | torch.Tensor | list[list[PIL.Image.Image]]


def tile_indices(num_frames: int, tile_size: int, tile_overlap: int) -> list[list[int]]:
    """MimicMotion's tiles: each holds frame 0 and T-1 consecutive frames; the stride is
    T-O; a last tile ends at the last frame. num_frames <= tile_size gives one tile."""
    N, T = num_frames, tile_size
    if N <= T:
        return [list(range(N))]
    tiles = [[0, *range(i + 1, min(i + T, N))] for i in range(0, N - T + 1, T - tile_overlap)]
    if tiles[-1][-1] < N - 1:
        tiles.append([0, *range(N - T + 1, N)])
    return tiles


def triangle_weights(tile_size: int) -> torch.Tensor:
    """(T,) fusion weights of a tile's frames: min((k+.5)2/T, 2-(k+.5)2/T), peaking mid-tile."""
    k = (torch.arange(tile_size, dtype=torch.float32) + 0.5) * 2.0 / tile_size
    return torch.minimum(k, 2.0 - k)


class MimicMotionPipeline(DiffusionPipeline):
    """Pose-guided image-to-video with MimicMotion (see the module doc).

    Components: vae (AutoencoderKLTemporalDecoder), image_encoder (CLIPVisionModelWithProjection),
    unet (the stock UNetSpatioTemporalConditionModel), scheduler (EulerDiscreteScheduler, SVD
    config), feature_extractor (CLIPImageProcessor), pose_net (PoseNet).
    """

    model_cpu_offload_seq = "image_encoder->pose_net->unet->vae"

    def __init__(
        self,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        unet: UNetSpatioTemporalConditionModel,
        scheduler: EulerDiscreteScheduler,
        feature_extractor: CLIPImageProcessor,
        pose_net: PoseNet,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
            feature_extractor=feature_extractor, pose_net=pose_net,
        )  # fmt: skip
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1) if getattr(self, "vae", None) else 8
        self.video_processor = VideoProcessor(do_resize=True, vae_scale_factor=self.vae_scale_factor)

    # -- inputs ------------------------------------------------------------------------------

    def check_inputs(
        self, image, pose_video, height: int, width: int, tile_size: int, tile_overlap: int,
        num_inference_steps: int, guidance_scale: float, decode_chunk_size: int, latents,
    ) -> None:  # fmt: skip
        if not isinstance(image, (PIL.Image.Image, torch.Tensor)):
            raise ValueError(f"`image` must be a PIL image or a (3, H, W) / (1, 3, H, W) tensor in [0, 1], got {type(image)}")
        if isinstance(image, torch.Tensor) and not (image.dim() == 3 or (image.dim() == 4 and image.shape[0] == 1)):
            raise ValueError(f"`image` tensor must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        # the VAE divides by 8, then every UNet down block but the last halves the latent again
        multiple = self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if height % multiple or width % multiple:
            raise ValueError(f"`height` and `width` must be multiples of {multiple}, got {height} x {width}")
        if not isinstance(pose_video, (np.ndarray, torch.Tensor)) or pose_video.ndim != 4:
            raise ValueError(f"`pose_video` must be (F, H, W, 3) uint8 or (F, 3, H, W) float, got {type(pose_video)}")
        shape = tuple(pose_video.shape)
        if shape not in ((shape[0], height, width, 3), (shape[0], 3, height, width)) or shape[0] < 1:
            raise ValueError(f"`pose_video` of shape {shape} does not match height {height} and width {width}")
        if not 0 <= tile_overlap < tile_size - 1:
            raise ValueError(f"need 0 <= tile_overlap < tile_size - 1, got tile_size {tile_size}, overlap {tile_overlap}")
        if num_inference_steps < 1 or guidance_scale < 1.0 or decode_chunk_size < 1:
            raise ValueError(
                f"need num_inference_steps >= 1, guidance_scale >= 1, decode_chunk_size >= 1, got "
                f"{num_inference_steps}, {guidance_scale}, {decode_chunk_size}"
            )
        F, h, w = shape[0], height // self.vae_scale_factor, width // self.vae_scale_factor
        channels = self.unet.config.out_channels
        if latents is not None and tuple(latents.shape) != (1, F, channels, h, w):
            raise ValueError(f"`latents` must be (1, {F}, {channels}, {h}, {w}), got {tuple(latents.shape)}")

    @staticmethod
    def _image_tensor(image: PIL.Image.Image | torch.Tensor, processor: VideoProcessor) -> torch.Tensor:
        """(1, 3, H, W) float in [0, 1]."""
        if isinstance(image, PIL.Image.Image):
            return processor.numpy_to_pt(processor.pil_to_numpy(image.convert("RGB")))
        return (image[None] if image.dim() == 3 else image).float()

    def encode_image(self, image: torch.Tensor, device: torch.device) -> torch.Tensor:
        """image: (1, 3, H, W) in [0, 1] -> CLIP image embedding (1, 1, D). Normalised to
        [-1, 1] before the antialiased resize to 224, as SVD and MimicMotion do."""
        dtype = next(self.image_encoder.parameters()).dtype
        x = _resize_with_antialiasing(image * 2.0 - 1.0, (224, 224))
        x = (x + 1.0) / 2.0
        x = self.feature_extractor(
            images=x, do_normalize=True, do_center_crop=False, do_resize=False, do_rescale=False, return_tensors="pt"
        ).pixel_values  # fmt: skip
        return self.image_encoder(x.to(device=device, dtype=dtype)).image_embeds.unsqueeze(1)

    def encode_vae_image(self, image: torch.Tensor) -> torch.Tensor:
        """image: (1, 3, H, W) in [-1, 1] -> (1, 4, h, w) latent mode, unscaled. An fp16 VAE
        with force_upcast encodes in fp32 (fp16 overflows in its encoder)."""
        upcast = self.vae.dtype == torch.float16 and self.vae.config.force_upcast
        if upcast:
            self.vae.to(dtype=torch.float32)
        latents = self.vae.encode(image.to(dtype=self.vae.dtype)).latent_dist.mode()
        if upcast:
            self.vae.to(dtype=torch.float16)
        return latents

    def pose_tensor(self, pose_video: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(F, H, W, 3) uint8 [0, 255] or (F, 3, H, W) float [0, 1] -> (F, 3, H, W) in [-1, 1]
        (MimicMotion feeds PoseNet `pixels / 127.5 - 1`)."""
        if isinstance(pose_video, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(pose_video)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        else:
            x = pose_video.float() * 2.0 - 1.0 if pose_video.shape[1] == 3 else pose_video.permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return x

    def prepare_latents(
        self, num_frames: int, tile_size: int, height: int, width: int, dtype: torch.dtype,
        device: torch.device, generator: torch.Generator | None, latents: torch.Tensor | None,
    ) -> torch.Tensor:  # fmt: skip
        """(1, F, 4, h, w) initial noise x init sigma: one T-frame sample repeated along time
        (MimicMotion), unless `latents` are given."""
        if latents is None:
            T = min(tile_size, num_frames)
            shape = (1, T, self.unet.config.out_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
            latents = latents.repeat(1, num_frames // T + 1, 1, 1, 1)[:, :num_frames]
        return latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma

    def _unet(self, sample, t, embeds, time_ids, pose_residual: torch.Tensor | None) -> torch.Tensor:
        """One UNet call; pose_residual (F, C, h, w) is added right after conv_in (None: no pose)."""
        handle = None
        if pose_residual is not None:
            handle = self.unet.conv_in.register_forward_hook(lambda module, args, output: output + pose_residual)
        try:
            return self.unet(sample, t, encoder_hidden_states=embeds, added_time_ids=time_ids, return_dict=False)[0]
        finally:
            if handle is not None:
                handle.remove()

    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int) -> torch.Tensor:
        """(1, F, 4, h, w) -> (1, 3, F, H, W) float32 in [-1, 1], `decode_chunk_size` frames at
        a time (the temporal decoder sees each chunk as one clip)."""
        num_frames = latents.shape[1]
        latents = latents.flatten(0, 1) / self.vae.config.scaling_factor
        frames = [
            self.vae.decode(chunk, num_frames=chunk.shape[0]).sample for chunk in latents.split(decode_chunk_size)
        ]
        frames = torch.cat(frames)
        return frames.reshape(-1, num_frames, *frames.shape[1:]).permute(0, 2, 1, 3, 4).float()

    # -- generation --------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        image: PIL.Image.Image | torch.Tensor,
        pose_video: np.ndarray | torch.Tensor,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 2.0,
        tile_size: int = 72,
        tile_overlap: int = 6,
        fps: int = 7,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.0,
        decode_chunk_size: int = 8,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> MimicMotionPipelineOutput | tuple:
        """Animate `image` along `pose_video`.

        image: the reference (PIL, or (3, H, W) / (1, 3, H, W) in [0, 1]); resized to H x W.
        pose_video: F skeleton frames at H x W ((F, H, W, 3) uint8 or (F, 3, H, W) in [0, 1]);
            frame 0 must be the reference image's own pose (MimicMotion's convention).
        height, width: output size in pixels (multiples of 8); default: the pose video's.
        tile_size, tile_overlap: T and O of the long-video tiling (72 and 6 in the paper).
        guidance_scale: constant CFG scale; 1 runs the conditional pass only.
        Returns F frames (frame 0 reconstructs the reference; MimicMotion's demo drops it).
        """
        # 0. Default size: the pose video's
        if height is None or width is None:
            hw = pose_video.shape[1:3] if pose_video.shape[-1] == 3 else pose_video.shape[2:4]
            height, width = int(hw[0]), int(hw[1])
        # 1. Check inputs
        self.check_inputs(
            image, pose_video, height, width, tile_size, tile_overlap, num_inference_steps, guidance_scale,
            decode_chunk_size, latents,
        )  # fmt: skip
        # 2. Define call parameters
        device = self._execution_device
        num_frames = pose_video.shape[0]
        do_cfg = guidance_scale > 1.0
        # 3. Encode the reference image with CLIP; the unconditional pass sees zeros
        reference = self._image_tensor(image, self.video_processor)
        embeds = self.encode_image(reference, device)  # (1, 1, D)
        # 4. Encode the reference image with the VAE (noise drawn before the latents, as SVD)
        pixels = self.video_processor.preprocess(reference, height=height, width=width).to(device)  # (1, 3, H, W)
        noise = randn_tensor(pixels.shape, generator=generator, device=device, dtype=pixels.dtype)
        image_latents = self.encode_vae_image(pixels + noise_aug_strength * noise).to(embeds.dtype)
        image_latents = image_latents.unsqueeze(1).repeat(1, num_frames, 1, 1, 1)  # (1, F, 4, h, w)
        # 5. Micro-conditioning (SVD was trained on fps - 1)
        time_ids = torch.tensor([[fps - 1, motion_bucket_id, noise_aug_strength]], dtype=embeds.dtype, device=device)
        expected = self.unet.add_embedding.linear_1.in_features
        if self.unet.config.addition_time_embed_dim * 3 != expected:
            raise ValueError(f"the UNet expects {expected} added-time features, not 3 x {self.unet.config.addition_time_embed_dim}")
        # 6. Encode the poses: (F, C, h, w) residuals for conv_in's output
        pose = self.pose_tensor(pose_video).to(device=device, dtype=self.pose_net.dtype)
        pose_latents = self.pose_net(pose).to(embeds.dtype)
        # 7. Prepare timesteps
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        # 8. Prepare latents
        latents = self.prepare_latents(num_frames, tile_size, height, width, embeds.dtype, device, generator, latents)
        # 9. Tiles and their fusion weights
        tiles = tile_indices(num_frames, tile_size, tile_overlap)
        T = len(tiles[0])
        weight = triangle_weights(T).to(device=device, dtype=latents.dtype)[:, None, None, None]  # (T, 1, 1, 1)
        count = torch.zeros(num_frames, device=device, dtype=latents.dtype)
        for idx in tiles:
            count[idx] += weight[:, 0, 0, 0]
        zeros_embeds, zeros_latents = torch.zeros_like(embeds), torch.zeros_like(image_latents)
        # 10. Denoising loop: fuse the tiles at every step, then CFG, then one step
        self._num_timesteps = len(timesteps)
        with self.progress_bar(total=len(timesteps) * len(tiles)) as progress_bar:
            for t in timesteps:
                scaled = self.scheduler.scale_model_input(latents, t)
                pred_cond = torch.zeros_like(latents)
                pred_uncond = torch.zeros_like(latents) if do_cfg else None
                for idx in tiles:
                    if do_cfg:
                        sample = torch.cat([scaled[:, idx], zeros_latents[:, idx]], dim=2)
                        pred_uncond[:, idx] += self._unet(sample, t, zeros_embeds, time_ids, None)[0] * weight
                    sample = torch.cat([scaled[:, idx], image_latents[:, idx]], dim=2)
                    pred_cond[:, idx] += self._unet(sample, t, embeds, time_ids, pose_latents[idx])[0] * weight
                    progress_bar.update()
                noise_pred = pred_cond / count[:, None, None, None]
                if do_cfg:
                    uncond = pred_uncond / count[:, None, None, None]
                    noise_pred = uncond + guidance_scale * (noise_pred - uncond)
                latents = self.scheduler.step(noise_pred, t, latents).prev_sample
        # 11. Decode in chunks
        if output_type == "latent":
            frames = latents
        else:
            video = self.decode_latents(latents, decode_chunk_size)
            frames = self.video_processor.postprocess_video(video=video, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (frames,)
        return MimicMotionPipelineOutput(frames=frames)


# --- loading the released weights -------------------------------------------------------------


def build_pipeline(
    svd_folder: str | Path, checkpoint: str | Path, dtype: torch.dtype = torch.float16,
    device: torch.device | str | None = None,
) -> MimicMotionPipeline:  # fmt: skip
    """The pipeline from an SVD-xt-1.1 folder laid out like the Hub repo (VAE, CLIP, scheduler,
    feature extractor, UNet *config*) and the MimicMotion checkpoint (UNet + PoseNet weights).

    The UNet is built on the meta device and gets the checkpoint's tensors assigned, so the
    1.5B random weights are never materialised."""
    svd_folder = Path(svd_folder)
    variant = "fp16" if any((svd_folder / "vae").glob("*.fp16.safetensors")) else None
    parts = load_mimicmotion_checkpoint(checkpoint)
    config = UNetSpatioTemporalConditionModel.load_config(svd_folder, subfolder="unet")
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel.from_config(config)
    pose_net = PoseNet(noise_latent_channels=unet.config.block_out_channels[0])
    convert_checkpoint(parts, unet, pose_net)
    leftover = [n for n, t in list(unet.named_parameters()) + list(unet.named_buffers()) if t.is_meta]
    if leftover:
        raise PersonaError(f"The MimicMotion checkpoint left UNet tensors unset: {', '.join(leftover[:3])}")
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd_folder, subfolder="vae", variant=variant, torch_dtype=dtype)
    encoder = CLIPVisionModelWithProjection.from_pretrained(
        svd_folder, subfolder="image_encoder", variant=variant, dtype=dtype
    )  # fmt: skip
    scheduler = EulerDiscreteScheduler.from_pretrained(svd_folder, subfolder="scheduler")
    extractor = CLIPImageProcessor.from_pretrained(svd_folder, subfolder="feature_extractor")
    pipe = MimicMotionPipeline(vae, encoder, unet.to(dtype), scheduler, extractor, pose_net.to(dtype))
    if device is not None:
        # after building: AlphaBlender.mix_factor comes from torch.Tensor([...]) on the CPU
        pipe.to(device)
    return pipe
