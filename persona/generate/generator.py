"""Generated training videos: one interface, backends registered by name.

`generate_training_set` plans the driving clips (`persona.generate.driving`), asks a backend
for one image and person mask per driving frame, and returns a `TrainingSet`: the captured
photo first, then the generated frames, each with its body pose (the driving pose with the
subject's own shape, known by construction) and camera.

Backends (`BACKENDS`):
- `synth` (the embedded default, no weights): renders the first avatar (Gaussians on the
  fitted body, optimised on the photo) in the driving poses from the driving cameras, with
  the avatar's renderer; the mask is the render's alpha. It also gives depth and normal maps.
  Its frames add views and poses but no information the avatar lacks (the back is the
  texture fill): they give the deformation stage consistent geometry to fit, and exercise the
  whole path that the diffusion backends plug into.
- `wan-vace` (Wan2.1-VACE-1.3B, Apache-2.0) and `mimicmotion` (research-only weights): the
  pose-guided video diffusion backends (`persona.generate.diffusion`). They need Hub weights
  (`persona.hub`) and CUDA; when either is missing they raise `PersonaError`, and
  `generate_training_set` falls back to `synth`, logs why and notes it in the TrainingSet
  (whose `backend` names the backend that really made the frames).

The avatar optimisation does not use the generated frames yet (issue 6 will).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from persona.avatar.model import AvatarRig, GaussianAvatar, blend_points, render_gaussians
from persona.avatar.texture import vertex_normals
from persona.body.model import BodyModel
from persona.errors import PersonaError
from persona.generate.driving import DrivingPlan, plan_driving
from persona.generate.training_set import TrainingFrame, TrainingSet

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]


# Frames per driving motion that `make` accepts (`persona.pipeline.frames_per_motion_range`):
# at least this many (the photo's pose blends into the motion over `blend_frames`), at most
# this many times the preset's own count (time and memory grow with it).
MIN_FRAMES_PER_MOTION = 4
MAX_FRAMES_FACTOR = 3


@dataclass
class GenerateConfig:
    backend: str = "synth"  # a name in BACKENDS
    motions: tuple[str, ...] = ("walk", "dance")  # driving motions (names or .npz), one clip each
    frames_per_motion: int = 16  # frames of each clip, spread over the motion's duration
    resolution: int = 256  # longer side of the generated frames, pixels (the photo's aspect)
    orbit_degrees: float = 360.0  # camera orbit over each clip, alternating direction
    blend_frames: int = 4  # frames over which the photo's pose blends into the motion
    # A relative depth estimate on each frame a diffusion backend makes, and on the photo
    # (`persona.perceive.depth`; the synth backend renders exact depth): a geometry target for
    # the PERSONA optimisation.
    depth_estimates: bool = True


@dataclass
class GenerationInputs:
    """What every backend gets.

    photo: the captured frame (the photo at the training size, its mask, the fitted pose and
    camera). body, shape (S,): the body model and the subject's fitted shape. avatar, rig: the
    first avatar (the `synth` backend renders it; diffusion backends do not need it).
    """

    photo: TrainingFrame
    body: BodyModel
    shape: torch.Tensor
    avatar: GaussianAvatar | None = None
    rig: AvatarRig | None = None


class Backend(Protocol):
    def __call__(
        self, inputs: GenerationInputs, plan: DrivingPlan, config: GenerateConfig,
        generator: torch.Generator, progress: Progress | None,
    ) -> list[TrainingFrame]:  # fmt: skip
        """One frame per driving frame, clip after clip, in the plan's order."""


@dataclass(frozen=True)
class BackendSpec:
    name: str
    description: str
    licence: str
    weights: str  # where its weights come from ("none": embedded)
    run: Backend | None  # None: not available in this version
    # Whether its frames show the person exactly in their driving pose (`TrainingSet`).
    follows_driving_pose: bool = False
    # Whether its frames show the first avatar's colours exactly, with no drift (`TrainingSet`).
    true_colors: bool = False
    # Whether its frames show the first avatar skinned with the body's own weights (`TrainingSet`).
    body_skinning: bool = False


# --- the synth backend ------------------------------------------------------------------------


def synth_backend(
    inputs: GenerationInputs,
    plan: DrivingPlan,
    config: GenerateConfig,
    generator: torch.Generator,
    progress: Progress | None = None,
) -> list[TrainingFrame]:
    """Render the first avatar in every driving pose from every driving camera, on white.
    Deterministic (the generator is unused). Features rendered: RGB and world normals."""
    avatar, rig, body = inputs.avatar, inputs.rig, inputs.body
    if avatar is None or rig is None:
        raise ValueError("the synth backend renders the first avatar: GenerationInputs.avatar and .rig are needed")
    canonical = rig.rest_points + avatar.offsets  # (N, 3)
    background = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], device=canonical.device)  # white, zero normal
    frames, done, total = [], 0, plan.num_frames
    with torch.no_grad():
        for clip in plan.clips:
            posed = body.forward(inputs.shape[None], clip.poses)
            means = blend_points(rig.weights, posed.bone_transforms, canonical)  # (F, N, 3)
            normals = avatar.binding.interpolate(body.faces, vertex_normals(posed.vertices, body.faces))  # (F, N, 3)
            for i, camera in enumerate(clip.cameras):
                features = torch.cat([avatar.colors, normals[i]], -1)  # (N, 6)
                out = render_gaussians(avatar, means[i], camera, background, colors=features)
                alpha = out.alpha  # (H, W)
                person = alpha > 0.5
                R = camera.world_to_camera[:3, :3].to(features)
                normal = torch.nn.functional.normalize(out.features[..., 3:] @ R.T, dim=-1) * person[..., None]
                depth = torch.where(person, out.depth / alpha.clamp(min=1e-6), torch.zeros_like(alpha))
                frames.append(
                    TrainingFrame(
                        out.features[..., :3].clamp(0, 1), alpha, clip.poses.index(i).detach(), camera,
                        captured=False, motion=clip.name, index=i, depth=depth, normal=normal,
                    )
                )  # fmt: skip
                done += 1
                if progress is not None:
                    progress(done / total, f"rendering training frames ({done}/{total})")
    return frames


# --- the registry -----------------------------------------------------------------------------


def _mimicmotion(*args, **kwargs) -> list[TrainingFrame]:
    from persona.generate.diffusion import mimicmotion_backend  # diffusers loads only when asked for

    return mimicmotion_backend(*args, **kwargs)


def _wan_vace(*args, **kwargs) -> list[TrainingFrame]:
    from persona.generate.diffusion import wan_vace_backend

    return wan_vace_backend(*args, **kwargs)


BACKENDS: dict[str, BackendSpec] = {
    "synth": BackendSpec(
        "synth", "renders the first avatar in the driving poses (embedded, no weights)", "Apache-2.0", "none", synth_backend,
        follows_driving_pose=True, true_colors=True, body_skinning=True,
    ),
    "wan-vace": BackendSpec(
        "wan-vace", "Wan2.1-VACE-1.3B pose-controlled video diffusion (diffusers WanVACEPipeline)", "Apache-2.0",
        "Hub: Wan-AI/Wan2.1-VACE-1.3B-diffusers", _wan_vace,
    ),
    "mimicmotion": BackendSpec(
        "mimicmotion", "MimicMotion (SVD-xt-1.1 + PoseNet), the paper's generator",
        "research only (MimicMotion), SVD-xt-1.1 community licence (gated)",
        "Hub: tencent/MimicMotion + stabilityai/stable-video-diffusion-img2vid-xt-1-1", _mimicmotion,
    ),
}  # fmt: skip


def get_backend(name: str) -> BackendSpec:
    """The backend spec for `name`; PersonaError when unknown or not available."""
    if name not in BACKENDS:
        raise PersonaError(f"Unknown training-video generator '{name}'. Choose one of: {', '.join(BACKENDS)}.")
    spec = BACKENDS[name]
    if spec.run is None:
        raise PersonaError(
            f"The '{name}' generator needs Hub weights ({spec.weights.removeprefix('Hub: ')}) and is not available "
            "in this version yet. Use the embedded 'synth' generator."
        )
    return spec


def generate_training_set(
    inputs: GenerationInputs,
    config: GenerateConfig = GenerateConfig(),
    seed: int = 0,
    progress: Progress | None = None,
) -> TrainingSet:
    """The captured frame plus one generated clip per driving motion (see the module doc)."""
    # 1. Check inputs
    spec = get_backend(config.backend)
    if config.frames_per_motion < 1 or config.resolution < 16:
        raise ValueError(f"frames_per_motion must be >= 1 and resolution >= 16, got {config}")
    start = time.perf_counter()
    # 2. Plan the driving clips: poses on the subject, cameras like the photo's
    photo = inputs.photo
    plan = plan_driving(
        inputs.body, inputs.shape, photo.pose, photo.camera, config.motions, config.frames_per_motion,
        config.resolution, config.orbit_degrees, config.blend_frames,
    )  # fmt: skip
    # 3. Generate the frames; a diffusion backend without weights or GPU falls back to synth
    generator = torch.Generator().manual_seed(seed)
    notes: list[str] = []
    try:
        frames = spec.run(inputs, plan, config, generator, progress)
    except PersonaError as err:
        if spec.name == "synth":
            raise
        log.warning("generate: '%s' unavailable, using 'synth': %s", spec.name, err)
        notes.append(f"The '{spec.name}' generator was not available ({err}); the embedded 'synth' generator made the frames.")
        spec = BACKENDS["synth"]
        frames = spec.run(inputs, plan, config, torch.Generator().manual_seed(seed), progress)
    assert len(frames) == plan.num_frames, (len(frames), plan.num_frames)
    if spec.name != "synth" and config.depth_estimates:
        from persona.perceive.depth import add_depth_estimates

        if progress is not None:
            progress(1.0, "estimating the photo's and the generated frames' depth")
        estimated, depth_notes = add_depth_estimates([photo, *frames], "cuda" if torch.cuda.is_available() else "cpu")
        photo, frames = estimated[0], estimated[1:]
        notes += depth_notes
    seconds = time.perf_counter() - start
    log.info("generate: %d frames with '%s' in %.1f s", len(frames), spec.name, seconds)
    return TrainingSet(
        [photo, *frames], inputs.shape, spec.name, [c.name for c in plan.clips], round(seconds, 3), notes,
        spec.follows_driving_pose, spec.true_colors, spec.body_skinning,
    )  # fmt: skip
