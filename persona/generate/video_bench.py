"""`python -m persona bench video` (also `python bench/video_gpu.py`): cost of the diffusion
generators, measured where no weights can be downloaded.

Full-size architectures with random weights (MimicMotion = SVD-xt-1.1 UNet 1.52B + PoseNet +
temporal VAE + CLIP ViT-H/14, fp16; Wan2.1-VACE-1.3B transformer in bf16 with its float32
VAE; UMT5 is skipped by passing random prompt embeddings, since the text is fixed and its
embedding can be computed once). For each candidate preset one clip is generated after a
warm-up call; seconds cover the whole pipeline call (encoders, denoising, decoding), timed
with CUDA synchronisation; peak memory is `torch.cuda.max_memory_allocated`. A preset's
seconds = clips x seconds of one clip (clips are independent and of equal cost).

On a machine without CUDA it times the embedded `synth` backend on the preview preset
instead (the `generate` stage of `make`) and adds it to the JSON already there. `scale="tiny"` runs the same code on tiny random
models (a smoke test of this file, on CPU).

Output: bench/results/video_gpu.json,
{"device", "date", "versions", "backends": {name: {preset: {frames, resolution, steps, ...}}}}.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One measured setting: clips x frames at height x width (pixels), steps, guidance."""

    name: str
    clips: int
    frames: int
    height: int
    width: int
    steps: int
    guidance: float
    tile: int = 72  # MimicMotion only
    overlap: int = 6


CANDIDATES: dict[str, list[Candidate]] = {
    "mimicmotion": [
        Candidate("preview", 2, 16, 448, 256, 8, 1.0),
        Candidate("standard", 2, 24, 576, 320, 10, 2.0),
        Candidate("standard-large", 2, 24, 704, 384, 12, 2.0),
        Candidate("high", 2, 72, 1024, 576, 25, 2.0),  # the paper's setting (one 72-frame tile)
    ],
    "wan-vace": [
        Candidate("preview", 2, 17, 448, 256, 8, 1.0),
        Candidate("standard", 2, 25, 576, 320, 10, 1.0),
        Candidate("standard-cfg", 2, 25, 576, 320, 10, 5.0),
        Candidate("high", 2, 81, 832, 480, 25, 5.0),  # the model card's size and frames
    ],
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- model builders (random weights) ----------------------------------------------------------


def build_mimicmotion(device: torch.device, dtype: torch.dtype, scale: str = "full"):
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from persona.generate.mimicmotion import MimicMotionPipeline, PoseNet

    torch.manual_seed(0)
    if scale == "full":
        unet_kw, vae_kw = {}, dict(down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2)  # fmt: skip
        clip = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                                patch_size=14, image_size=224, projection_dim=1024, hidden_act="gelu")  # fmt: skip
        pose_channels = 320
    else:
        unet_kw = dict(
            sample_size=8, down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
            up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), block_out_channels=(32, 64),
            layers_per_block=1, cross_attention_dim=32, num_attention_heads=(2, 4), addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=24, num_frames=4,
        )  # fmt: skip
        vae_kw = dict(down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32,) * 4, layers_per_block=1)
        clip = CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
                                image_size=224, patch_size=32, intermediate_size=37)  # fmt: skip
        pose_channels = 32
    with torch.device(device):  # random init on the GPU: seconds instead of minutes
        unet = UNetSpatioTemporalConditionModel(**unet_kw).eval()  # eval, as from_pretrained gives
        vae = AutoencoderKLTemporalDecoder(latent_channels=4, **vae_kw).eval()
        encoder = CLIPVisionModelWithProjection(clip).eval()
        pose_net = PoseNet(noise_latent_channels=pose_channels).eval()
    scheduler = EulerDiscreteScheduler(**SVD_SCHEDULER)
    pipe = MimicMotionPipeline(vae, encoder, unet, scheduler, CLIPImageProcessor(crop_size=224, size=224), pose_net)
    pipe.to(device)  # AlphaBlender.mix_factor is made on the CPU whatever the default device
    pipe.to(dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


SVD_SCHEDULER = dict(
    beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, prediction_type="v_prediction",
    interpolation_type="linear", use_karras_sigmas=True, sigma_min=0.002, sigma_max=700.0,
    timestep_spacing="leading", timestep_type="continuous", steps_offset=1, num_train_timesteps=1000,
)  # fmt: skip


def build_wan_vace(device: torch.device, dtype: torch.dtype, scale: str = "full"):
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline, WanVACETransformer3DModel

    torch.manual_seed(0)
    if scale == "full":  # Wan2.1-VACE-1.3B
        tkw = dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, num_layers=30, text_dim=4096,
                   vace_layers=list(range(0, 30, 2)), rope_max_seq_len=1024)  # fmt: skip
        vkw: dict = {}
    else:
        tkw = dict(num_attention_heads=2, attention_head_dim=12, ffn_dim=32, num_layers=3, text_dim=32,
                   vace_layers=[0, 2], rope_max_seq_len=32)  # fmt: skip
        vkw = dict(base_dim=3, dim_mult=[1, 1, 1, 1], num_res_blocks=1)
    with torch.device(device):
        transformer = WanVACETransformer3DModel(
            patch_size=(1, 2, 2), in_channels=16, out_channels=16, freq_dim=256, cross_attn_norm=True,
            qk_norm="rms_norm_across_heads", eps=1e-6, vace_in_channels=96, **tkw,
        ).eval()  # fmt: skip
        vae = AutoencoderKLWan(z_dim=16, temperal_downsample=[False, True, True], **vkw).eval()
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0)
    transformer.to(device, dtype)
    keep = set(transformer._keep_in_fp32_modules or [])  # as from_pretrained(torch_dtype=...) leaves them
    for name, module in transformer.named_modules():
        if name.split(".")[-1] in keep:
            module.float()
    for name, param in transformer.named_parameters():
        if name.split(".")[-1] in keep:
            param.data = param.data.float()
    pipe = WanVACEPipeline(tokenizer=None, text_encoder=None, vae=vae.to(device, torch.float32),
                           scheduler=scheduler, transformer=transformer)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- one measurement --------------------------------------------------------------------------


def _inputs(c: Candidate) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8)
    skeleton = np.zeros((c.frames, c.height, c.width, 3), np.uint8)
    for f in range(c.frames):  # a few coloured sticks, moving: content does not change the cost
        x = (f * 7) % c.width
        skeleton[f, c.height // 4 : 3 * c.height // 4, x : x + 4] = (255, 85, 0)
    return reference, skeleton


def run_mimicmotion(pipe, c: Candidate, device: torch.device) -> None:
    import PIL.Image

    reference, skeleton = _inputs(c)
    pipe(
        PIL.Image.fromarray(reference), skeleton, num_inference_steps=c.steps, guidance_scale=c.guidance,
        tile_size=c.tile, tile_overlap=c.overlap, generator=torch.Generator().manual_seed(0), output_type="np",
    )  # fmt: skip


def run_wan_vace(pipe, c: Candidate, device: torch.device) -> None:
    from persona.generate.wan_vace import generate

    reference, skeleton = _inputs(c)
    dim = pipe.transformer.config.text_dim
    dtype = pipe.transformer.dtype
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(1, 512 if dim > 64 else 16, dim, generator=g).to(device, dtype)
    negative = torch.randn(embeds.shape, generator=g).to(device, dtype) if c.guidance > 1.0 else None
    generate(pipe, reference, skeleton, c.steps, c.guidance, torch.Generator().manual_seed(0),
             prompt_embeds=embeds, negative_prompt_embeds=negative)  # fmt: skip


def measure(run: Callable, pipe, c: Candidate, device: torch.device) -> dict[str, object]:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    run(pipe, c, device)
    _sync(device)
    seconds_clip = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {
        "frames": c.clips * c.frames, "clips": c.clips, "frames_per_clip": c.frames,
        "resolution": f"{c.height}x{c.width}", "steps": c.steps, "guidance": c.guidance,
        "seconds": round(seconds_clip * c.clips, 2), "seconds_per_clip": round(seconds_clip, 2),
        "seconds_per_frame": round(seconds_clip / c.frames, 4),
        "peak_gpu_gb": round(peak, 2) if peak is not None else None, "clips_measured": 1,
    }  # fmt: skip


BUILDERS = {"mimicmotion": (build_mimicmotion, run_mimicmotion, torch.float16), "wan-vace": (build_wan_vace, run_wan_vace, torch.bfloat16)}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("diffusers", "transformers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def run_video_benchmark(
    out: Path | None = None, backends: tuple[str, ...] = ("mimicmotion", "wan-vace"),
    presets: tuple[str, ...] | None = None, scale: str = "full", device: str | None = None,
    printer: Callable[[str], None] = print,
) -> Path:  # fmt: skip
    """Measure and write the JSON (after every measurement, so a run cut short keeps what it
    measured). Returns the JSON path."""
    out = out or Path("bench") / "results" / "video_gpu.json"
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    record: dict[str, object] = {
        "benchmark": "video_gpu", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "scale": scale, "weights": "random (full-size architectures)" if scale == "full" else "random (tiny)",
        "versions": _versions(), "backends": {},
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out.write_text(json.dumps(record, indent=2) + "\n")

    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if dev.type != "cuda" and scale == "full":
        # CPU: time synth and add it to the GPU record already there (never overwrite it)
        if out.is_file():
            record = json.loads(out.read_text())
        record.setdefault("backends", {})["synth"] = {"preview": synth_preview_seconds(printer)}  # type: ignore[index]
        save()
        return out
    for name in backends:
        build, run, dtype = BUILDERS[name]
        dtype = dtype if dev.type == "cuda" else torch.float32
        start = time.perf_counter()
        pipe = build(dev, dtype, scale)
        printer(f"{name}: built in {time.perf_counter() - start:.1f} s ({dtype})")
        candidates = [c for c in CANDIDATES[name] if presets is None or c.name in presets]
        if scale != "full":
            candidates = [Candidate(c.name, 1, 5 if name == "wan-vace" else 4, 64, 48, 2, c.guidance, 4, 1) for c in candidates]
        warm = candidates[0]
        run(pipe, Candidate("warm-up", 1, warm.frames, warm.height, warm.width, 2, 2.0, warm.tile, warm.overlap), dev)
        results: dict[str, object] = {}
        record["backends"][name] = results  # type: ignore[index]
        for c in candidates:
            try:
                results[c.name] = measure(run, pipe, c, dev)
            except torch.cuda.OutOfMemoryError as err:  # record it and go on with the others
                results[c.name] = {**asdict(c), "error": f"out of memory: {err}"[:200]}
            printer(f"{name} {c.name}: {json.dumps(results[c.name])}")
            save()
        del pipe
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    save()
    return out


def synth_preview_seconds(printer: Callable[[str], None] = print) -> dict[str, object]:
    """CPU time of the `synth` backend in a preview `make` (its `generate` stage)."""
    import tempfile

    from persona.cli import EXAMPLE
    from persona.config import PRESETS
    from persona.pipeline import MakeOptions, make_avatar

    with tempfile.TemporaryDirectory(prefix="persona-bench-") as folder:
        result = make_avatar(EXAMPLE, folder, MakeOptions(preset="preview", device="cpu"))
    report = result.report
    seconds = float(report.seconds["generate"])
    frames = int(report.generated_frames)
    entry = {
        "frames": frames, "resolution": f"long side {PRESETS['preview'].generate.resolution}",
        "seconds": round(seconds, 3), "seconds_per_frame": round(seconds / max(frames, 1), 4), "peak_gpu_gb": None,
        "device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    printer(f"synth preview: {json.dumps(entry)}")
    return entry
