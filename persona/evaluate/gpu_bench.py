"""`python -m persona bench gpu`: the avatar stages of each preset on one CUDA GPU.

For each preset (preview, standard, high) a synthetic subject (`persona.evaluate.subjects`) is
built at the preset's sizes: the photo at the preset's training size, the generated frames at
its generation resolution and count, the avatar at its subdivision level. Then, with CUDA
events or a synchronised wall clock:
- `optimize_seconds`: the avatar optimisation on already generated frames, as the pipeline
  runs it (`optimize_on_photo`, then `optimize_persona` with the preset's settings);
- `train_step_ms`: one PERSONA iteration (pose refinement, deformer, diffused skinning,
  render, losses, backward, Adam), the loop's time over its iterations;
- `raw_gsplat_ms` / `reference_ms`: forward+backward of the same Gaussians, features and crop
  camera alone through gsplat / the pure-PyTorch reference;
- `render_fps`: `render_motion` at 512x512 (frames delivered as uint8 on the host);
- `peak_gpu_gb`: the most memory PyTorch held on the GPU during the preset.
Plus the parity of the two backends on the standard preset's avatar (largest absolute RGB
difference, smallest cosine between the gradients) and the animation throughput of 150k
Gaussians at 512x512 with 16 frames per call (the issue's target: 300 fps).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch

from persona.avatar.animate import ClipConfig, render_motion
from persona.avatar.model import AvatarRig, blend_points, render_isotropic
from persona.avatar.optimize import frame_targets, optimize_persona, part_features
from persona.avatar.renderer import resolve_backend
from persona.avatar.train import synchronize
from persona.body.model import BodyModel
from persona.camera import orbit_camera
from persona.config import get_preset
from persona.evaluate.subjects import SUBJECTS, make_subject
from persona.evaluate.synthetic import SyntheticConfig, build_scene
from persona.generate.motions import get_motion

PRESETS = ("preview", "standard", "high")


@dataclass
class PresetTimings:
    gaussians: int
    resolution: int  # longer side of the generated training frames, pixels
    training_frames: int
    iterations: int  # of the PERSONA loop
    raw_gsplat_ms: float
    reference_ms: float
    train_step_ms: float
    train_step_over_gsplat: float
    photo_seconds: float  # the first avatar's optimisation on the photo
    persona_seconds: float  # the PERSONA optimisation, setup included
    optimize_seconds: float  # the two together
    render_fps: float
    peak_gpu_gb: float


def cuda_ms(fn: Callable[[], None], repeats: int = 20) -> float:
    """Median milliseconds of fn() on the GPU (CUDA events), after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def preset_config(preset_name: str) -> SyntheticConfig:
    """A one-subject synthetic scene at the preset's sizes (no held-out frames)."""
    p = get_preset(preset_name)
    height = p.input.train_size
    return SyntheticConfig(
        subjects=1, avatar_level=p.avatar.subdivision, photo_size=(height * 3 // 4, height), resolution=p.generate.resolution,
        train_motions=p.generate.motions, frames_per_motion=p.generate.frames_per_motion, heldout_per_motion=0,
        first_iterations=p.avatar.iterations, persona=p.persona,
    )  # fmt: skip


def _render_inputs(scene, body: BodyModel):
    """The Gaussians of one PERSONA step (first avatar in a generated frame's pose, RGB and
    part features, the frame's crop camera) as leaf tensors."""
    avatar, config = scene.first_avatar, get_preset("standard").persona
    rig = AvatarRig(body, avatar)
    frame = scene.training_set.generated[len(scene.training_set.generated) // 2]
    parts = part_features(body, rig.weights)
    target = frame_targets(frame, avatar, rig, parts, config)
    with torch.no_grad():
        means = rig.posed_means(avatar, frame.pose)[0]
    features = torch.cat([avatar.colors, parts], -1)
    leaves = [t.detach().clone().requires_grad_(True) for t in (means, avatar.log_scales, features)]
    return leaves, target.camera


def raw_render_ms(leaves, camera, backend: str, repeats: int = 20) -> float:
    means, log_scales, features = leaves
    background = torch.ones(features.shape[1], device=means.device)

    def step():
        out = render_isotropic(means, log_scales, features, camera, background, backend)
        (out.features.square().sum() + out.alpha.sum()).backward()

    return cuda_ms(step, repeats)


def parity(leaves, camera) -> dict[str, float]:
    """gsplat against the reference on one real avatar frame: values and gradients."""
    outs, grads = {}, {}
    for backend in ("gsplat", "reference"):
        for t in leaves:
            t.grad = None
        means, log_scales, features = leaves
        out = render_isotropic(means, log_scales, features, camera, torch.ones(features.shape[1], device=means.device), backend)
        weights = torch.linspace(0.5, 1.5, out.features.numel(), device=out.features.device).view_as(out.features)
        ((out.features * weights).sum() + out.alpha.sum()).backward()
        outs[backend] = out.features.detach()
        grads[backend] = [t.grad.flatten().clone() for t in leaves]
    cosines = [float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in zip(grads["gsplat"], grads["reference"])]
    return {
        "max_abs_rgb": round(float((outs["gsplat"][..., :3] - outs["reference"][..., :3]).abs().max()), 6),
        "mean_abs_rgb": round(float((outs["gsplat"][..., :3] - outs["reference"][..., :3]).abs().mean()), 6),
        "grad_cosine_min": round(min(cosines), 6),
        "gaussians": int(leaves[0].shape[0]),
    }


def animation_fps(n: int = 150_000, size: int = 512, batch: int = 16, joints: int = 104) -> float:
    """Frames per second of LBS (`joints` bones) + render for n Gaussians, `batch` poses per call."""
    g = torch.Generator(device="cuda").manual_seed(0)
    means = torch.randn(n, 3, device="cuda", generator=g) * torch.tensor([0.2, 0.5, 0.15], device="cuda") + torch.tensor([0.0, 0.9, 0.0], device="cuda")
    log_scales = torch.full((n, 1), -5.0, device="cuda")
    colors = torch.rand(n, 3, device="cuda", generator=g)
    weights = torch.softmax(torch.randn(n, joints, device="cuda", generator=g), -1)
    transforms = torch.eye(4, device="cuda").expand(batch, joints, 4, 4).contiguous()
    cameras = [orbit_camera(torch.tensor([0.0, 0.9, 0.0]), 2.6, 360.0 * i / batch, 5.0, size, size, 45.0).to("cuda") for i in range(batch)]
    white = torch.ones(3, device="cuda")

    @torch.no_grad()
    def frames():
        posed = blend_points(weights, transforms, means)  # (batch, N, 3)
        for i in range(batch):
            render_isotropic(posed[i], log_scales, colors, cameras[i], white)

    return 1000.0 * batch / cuda_ms(frames, repeats=10)


def time_preset(body: BodyModel, name: str, log: Callable[[str], None]) -> tuple[PresetTimings, object]:
    torch.cuda.reset_peak_memory_stats()
    config = preset_config(name)
    with torch.device(body.faces.device):
        subject = make_subject(body, SUBJECTS[0], config.avatar_level + 1)
    scene = build_scene(body, subject, config, seed=0)
    log(f"{name}: scene built, {scene.first_avatar.num_gaussians} Gaussians, {len(scene.training_set.frames)} frames")
    leaves, camera = _render_inputs(scene, body)
    raw = raw_render_ms(leaves, camera, "gsplat")
    reference = raw_render_ms(leaves, camera, "reference", repeats=5)
    synchronize(torch.device("cuda"))
    avatar, stats = optimize_persona(scene.first_avatar, body, scene.training_set, config.persona)
    step_ms = 1000 * stats.loop_seconds / max(1, stats.iterations)
    rig = AvatarRig(body, avatar)
    motion = get_motion("walk")
    synchronize(torch.device("cuda"))
    start = time.perf_counter()
    count = sum(1 for _ in render_motion(avatar, rig, motion, ClipConfig(size=512)))
    fps = count / (time.perf_counter() - start)
    timings = PresetTimings(
        gaussians=avatar.num_gaussians, resolution=config.resolution, training_frames=len(scene.training_set.frames),
        iterations=stats.iterations, raw_gsplat_ms=round(raw, 3), reference_ms=round(reference, 3),
        train_step_ms=round(step_ms, 3), train_step_over_gsplat=round(step_ms / raw, 2),
        photo_seconds=round(scene.photo_seconds, 2), persona_seconds=round(stats.seconds, 2),
        optimize_seconds=round(scene.photo_seconds + stats.seconds, 2), render_fps=round(fps, 1),
        peak_gpu_gb=round(torch.cuda.max_memory_allocated() / 1e9, 3),
    )  # fmt: skip
    log(f"{name}: {asdict(timings)}")
    return timings, (leaves, camera)


def run_gpu_benchmark(body: BodyModel, presets: tuple[str, ...] = PRESETS, log: Callable[[str], None] = print) -> dict:
    if not torch.cuda.is_available():
        raise RuntimeError("bench gpu needs a CUDA GPU")
    if resolve_backend("cuda") != "gsplat":
        raise RuntimeError("gsplat cannot be loaded here (see the log for why)")
    from persona.benchmark import machine
    from persona.pipeline import versions

    results, parity_inputs = {}, None
    for name in presets:
        results[name], inputs = time_preset(body, name, log)
        if name == "standard" or parity_inputs is None:
            parity_inputs = inputs
    record = {
        "benchmark": "gpu_render",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0),
        "machine": machine(),
        "versions": {**versions(), "python": platform.python_version(), "cuda": torch.version.cuda, "gsplat": metadata.version("gsplat")},
        "presets": {name: asdict(t) for name, t in results.items()},
        "parity": parity(*parity_inputs),
        "animation_150k_512_fps": round(animation_fps(), 1),
        "targets": {"standard.train_step_over_gsplat": 2.0, "animation_150k_512_fps": 300, "standard.optimize_seconds": 60},
    }
    return record


def write_gpu_benchmark(body: BodyModel, out: Path | None = None, presets: tuple[str, ...] = PRESETS, log=print) -> Path:
    record = run_gpu_benchmark(body, presets, log)
    out = out or Path("bench") / "results" / "gpu_render.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out

