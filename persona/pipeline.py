"""One photo to an animated avatar: the stages, wired in order.

image -> Subject (mask, keypoints, body fit, texture) -> GaussianAvatar (optimised on the
photo) -> files. Each stage is a function of typed values, so the app can cache and re-run
them separately (e.g. re-animate a finished avatar). Progress goes to an optional callback
`progress(fraction in [0, 1], message)`.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

import persona
from persona.avatar.animate import ClipConfig, render_motion, render_motion_from, render_turntable, side_by_side
from persona.avatar.losses import iou, psnr
from persona.avatar.model import AvatarRig, GaussianAvatar, render_gaussians
from persona.avatar.optimize import PersonaStats, optimize_persona
from persona.avatar.storage import AVATAR_SCHEMA, export_ply, load_avatar, save_avatar
from persona.avatar.texture import VertexColors, project_texture
from persona.avatar.train import initial_avatar, optimize_on_photo
from persona.body.registry import BODY_LICENCES, load_body
from persona.body.model import BodyModel
from persona.camera import Camera
from persona.config import Preset, get_preset
from persona.errors import PersonaError
from persona.generate.generator import (
    BACKENDS,
    MAX_FRAMES_FACTOR,
    MIN_FRAMES_PER_MOTION,
    GenerateConfig,
    GenerationInputs,
    generate_training_set,
    get_backend,
)
from persona.generate.motion_capture import CaptureReport, CapturedMotion, capture_motion, save_capture
from persona.generate.motions import get_motion
from persona.generate.training_set import TrainingFrame, TrainingSet
from persona.io import atomic_write
from persona.io.image import ImageSource, LoadedImage, load_image
from persona.io.package import read_package
from persona.io.ply import read_gaussian_ply, write_gaussian_ply
from persona.io.video_reader import is_video_path, read_video
from persona.io.video import write_png_rgba, write_video
from persona.perceive.fit import BodyFit, fit_body
from persona.perceive.keypoints import COCO23_FIT_WEIGHTS, mediapipe_to_coco23
from persona.perceive.person import Perception, perceive_person

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]

# Licences of what the embedded default path uses (recorded in the manifest and the report).
LICENCES = {
    "anny body model": "Apache-2.0",
    "mediapipe holistic / face detection models": "Apache-2.0",
    "persona": "Apache-2.0",
}


def licences_for(body: BodyModel) -> dict[str, str]:
    """`LICENCES` with the body model actually used (SMPL-X: the user's own licence)."""
    others = {k: v for k, v in LICENCES.items() if k not in BODY_LICENCES["anny"]}
    return {**BODY_LICENCES[body.name], **others}


@dataclass
class MakeOptions:
    preset: str = "preview"
    motion: str = "walk"  # built-in motion name or a motion file (see `get_motion`)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    body: str = "anny"  # anny | smplx (see `persona.body.registry`)
    body_model: str | None = None  # SMPL-X: the model file or folder (user-supplied)
    frames_per_motion: int | None = None  # generated training frames per driving motion; None: the preset's
    generator: str = "synth"  # training-video generator, a name in `persona.generate.generator.BACKENDS`


def frames_per_motion_range(preset: Preset) -> tuple[int, int]:
    """(least, most) generated frames per driving motion that `make` accepts with `preset`
    (`MIN_FRAMES_PER_MOTION`, `MAX_FRAMES_FACTOR` x the preset's own)."""
    return MIN_FRAMES_PER_MOTION, MAX_FRAMES_FACTOR * preset.generate.frames_per_motion


def generate_config(preset: Preset, frames_per_motion: int | None, generator: str) -> GenerateConfig:
    """The preset's GenerateConfig with the asked frame count (None: the preset's) and generator.

    Raises PersonaError on an unknown generator or a frame count outside
    `frames_per_motion_range(preset)`."""
    get_backend(generator)
    if frames_per_motion is None:  # the preset's own count: no bounds to check
        return replace(preset.generate, backend=generator)
    frames = frames_per_motion
    low, high = frames_per_motion_range(preset)
    if isinstance(frames, bool) or not isinstance(frames, int) or not low <= frames <= high:
        raise PersonaError(
            f"The generated training frames per motion must be a whole number from {low} to {high} with the "
            f"'{preset.name}' preset (its default is {preset.generate.frames_per_motion}), not {str(frames)[:40]}."
        )
    return replace(preset.generate, backend=generator, frames_per_motion=frames)


def make_preset(options: MakeOptions) -> Preset:
    """The named preset with the options' generation settings (PersonaError on bad values)."""
    preset = get_preset(options.preset)
    return replace(preset, generate=generate_config(preset, options.frames_per_motion, options.generator))


def generator_licences(backend: str) -> dict[str, str]:
    """The licence of the weights of the training-video generator that made the frames
    (none for the embedded `synth`: its licence is persona's)."""
    spec = BACKENDS[backend]
    return {} if spec.weights == "none" else {f"training-video generator {spec.name} ({spec.weights})": spec.licence}


@dataclass
class Subject:
    """What we know of the person in the photo (at the working image size)."""

    image: LoadedImage
    perception: Perception
    fit: BodyFit
    texture: VertexColors


@dataclass
class InputViewMetrics:
    silhouette_iou: float  # render alpha vs the person mask, thresholds 0.5
    psnr_in_mask_db: float  # render vs photo inside the mask
    keypoint_error_px: float  # body fit, at the working image size


@dataclass
class OutputFiles:
    folder: Path
    ply: Path
    package: Path
    animation: Path
    turntable: Path
    input_view: Path
    report: Path


@dataclass
class Report:
    preset: str
    motion: str
    seed: int
    device: str
    source: str
    original_size: tuple[int, int]
    working_size: tuple[int, int]
    num_gaussians: int
    seconds: dict[str, float]
    metrics: InputViewMetrics
    people_found: int
    cut_off: bool
    warnings: list[str]
    versions: dict[str, str]
    licences: dict[str, str]
    fit_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    generator: str = "none"  # the backend that made the generated training frames
    generated_frames: int = 0
    generator_requested: str = "synth"  # the backend asked for (a diffusion one falls back to synth: see warnings)
    frames_per_motion: int = 0  # generated frames of each driving clip
    generator_motions: list[str] = field(default_factory=list)
    persona_loss: list[float] = field(default_factory=list)  # the PERSONA optimisation, every 10 steps
    deformation: bool = False  # the avatar has a learned pose-driven deformation


@dataclass
class Result:
    avatar: GaussianAvatar
    files: OutputFiles
    report: Report


def versions() -> dict[str, str]:
    out = {"persona": persona.__version__, "python": platform.python_version(), "platform": platform.platform()}
    for name in ("torch", "numpy", "anny", "mediapipe", "imageio-ffmpeg", "safetensors"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available else cpu; an unavailable cuda is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PersonaError("--device cuda was asked for, but no CUDA GPU is available here. Use --device cpu.")
    if name not in ("cpu", "cuda"):
        raise PersonaError(f"Unknown device '{name}'. Use auto, cpu or cuda.")
    return torch.device(name)


class _Stages:
    """Times stages and maps their progress onto the whole run."""

    def __init__(self, progress: Progress | None, plan: dict[str, float]):
        self.progress, self.seconds = progress, {}
        total = sum(plan.values())
        self._start, acc = {}, 0.0
        for name, weight in plan.items():
            self._start[name] = (acc / total, weight / total)
            acc += weight

    def sub(self, stage: str) -> Progress:
        begin, span = self._start[stage]
        return lambda f, msg: self.progress and self.progress(begin + span * min(max(f, 0.0), 1.0), msg)

    def run(self, stage: str, message: str, fn, *args, **kwargs):
        self.sub(stage)(0.0, message)
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds[stage] = round(time.perf_counter() - t, 3)
        log.info("%s: %.1f s", stage, self.seconds[stage])
        return out


def texture_subject(body: BodyModel, image: LoadedImage, perception: Perception, fit: BodyFit, preset: Preset) -> VertexColors:
    with torch.no_grad():
        posed = body.forward(fit.shape[None], fit.pose).vertices[0]
    head = body.skin_weights[:, [body.joint_index(j) for j in body.head_joints]].sum(1) > 0.5
    return project_texture(
        posed, body.faces, head, fit.camera, torch.from_numpy(image.rgb), torch.from_numpy(perception.mask), preset.texture
    )


def _resized(image: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) or (H, W, C) float array -> tensor at size (width, height), box filter."""
    planes = image[..., None] if image.ndim == 2 else image
    resized = [np.array(Image.fromarray(planes[..., c].astype(np.float32)).resize(size, Image.Resampling.BOX)) for c in range(planes.shape[-1])]
    out = torch.from_numpy(np.stack(resized, -1))
    return out[..., 0] if image.ndim == 2 else out


def build_avatar(subject: Subject, body: BodyModel, preset: Preset, progress: Progress | None = None):
    """The first avatar, optimised on the photo at the preset's training size.

    Returns (avatar, rig, train stats, metrics on the training view)."""
    fit, image = subject.fit, subject.image
    avatar = initial_avatar(body, fit.shape, fit.pose, fit.camera, subject.texture.colors, preset.avatar)
    rig = AvatarRig(body, avatar)
    W, H = image.size
    factor = min(1.0, preset.input.train_size / max(W, H))
    camera = fit.camera.scaled(factor)
    device = body.faces.device  # the avatar lives where the body model does
    rgb = _resized(image.rgb, (camera.width, camera.height)).to(device)
    mask = _resized(subject.perception.mask, (camera.width, camera.height)).to(device)
    avatar, stats = optimize_on_photo(avatar, rig, rgb, mask, camera, preset.avatar, progress)
    return avatar, rig, stats, input_view_metrics(avatar, rig, rgb, mask, camera, fit.keypoint_error_px)


def input_view_metrics(
    avatar: GaussianAvatar, rig: AvatarRig, rgb: torch.Tensor, mask: torch.Tensor, camera: Camera, keypoint_error_px: float
) -> InputViewMetrics:
    """The avatar seen from the photo's camera (at the size of rgb (H, W, 3) and mask (H, W))
    against the photo."""
    with torch.no_grad():
        out = render_gaussians(avatar, rig.posed_means(avatar, avatar.photo_pose)[0], camera, torch.ones(3))
    rgb, mask = rgb.to(out.alpha.device), mask.to(out.alpha.device)
    target = rgb * mask[..., None] + (1 - mask[..., None])
    return InputViewMetrics(iou(out.alpha, mask), psnr(out.features, target, mask), keypoint_error_px)


def refine_avatar(
    avatar: GaussianAvatar, body: BodyModel, training_set: TrainingSet, preset: Preset, progress: Progress | None = None
) -> tuple[GaussianAvatar, AvatarRig, PersonaStats | None]:
    """The PERSONA optimisation on the training set (photo + generated frames): pose-driven
    deformation, diffused skinning, balanced sampling, geometry weighting. A preset with 0
    iterations keeps the first avatar."""
    if preset.persona.iterations <= 0:
        return avatar, AvatarRig(body, avatar), None
    trained, stats = optimize_persona(avatar, body, training_set.to(avatar.offsets.device), preset.persona, progress)
    return trained, AvatarRig(body, trained), stats


def generate_frames(
    subject: Subject, body: BodyModel, avatar: GaussianAvatar, rig: AvatarRig, preset: Preset, seed: int,
    progress: Progress | None = None,
) -> TrainingSet:
    """The training set: the photo (at the training size) and the generated clips, made by the
    preset's generator backend (`synth` by default: the first avatar in the driving poses)."""
    fit, image = subject.fit, subject.image
    W, H = image.size
    camera = fit.camera.scaled(min(1.0, preset.input.train_size / max(W, H)))
    size = (camera.width, camera.height)
    photo = TrainingFrame(
        _resized(image.rgb, size).clamp(0, 1), _resized(subject.perception.mask, size).clamp(0, 1), fit.pose, camera,
        captured=True, motion="photo",
    ).to(avatar.offsets.device)  # fmt: skip
    inputs = GenerationInputs(photo, body, fit.shape.to(avatar.offsets.device), avatar, rig)
    return generate_training_set(inputs, preset.generate, seed, progress)


def render_input_view(avatar: GaussianAvatar, rig: AvatarRig, original_size: tuple[int, int], max_size: int) -> np.ndarray:
    """RGBA (H, W, 4) float of the avatar seen from the photo's camera, at the oriented
    input's size (rendered at most `max_size` on the long side, then resized)."""
    W, H = original_size
    camera = avatar.photo_camera
    factor = min(max_size, max(W, H)) / max(camera.width, camera.height)
    render_camera = camera.scaled(factor)
    with torch.no_grad():
        means = rig.posed_means(avatar, avatar.photo_pose)[0]
        out = render_gaussians(avatar, means, render_camera, torch.zeros(3))
    alpha = out.alpha.clamp(1e-6, 1)[..., None]
    rgba = torch.cat([out.features / alpha, out.alpha[..., None]], -1).clamp(0, 1).cpu().numpy()  # straight colour
    if (render_camera.width, render_camera.height) != (W, H):
        rgba = _resized(rgba, (W, H)).numpy()
    return rgba


# Relative weight of each stage in the progress bar (both halves of `make_avatar` use it).
_PROGRESS_PLAN = {
    "load": 1, "body_model": 2, "perceive": 3, "fit": 8, "texture": 2, "avatar": 30, "generate": 5, "persona": 20, "export": 2,
    "animation": 20, "turntable": 15,
}  # fmt: skip


@dataclass
class PreparedSubject:
    """The first half of `make_avatar` (photo, perception, body fit, texture), ready for the
    second half (`finish_avatar`). CPU tensors and arrays only, so it pickles: the app sends
    it into a GPU worker process (ZeroGPU)."""

    subject: Subject
    options: MakeOptions
    seconds: dict[str, float]  # per stage so far


def prepare_subject(image: ImageSource, options: MakeOptions = MakeOptions(), progress: Progress | None = None) -> PreparedSubject:
    """The CPU stages: read the photo, find the person, fit the body, project the texture.

    Fails early (PersonaError) on a bad preset, generator, frame count, device, motion or photo."""
    preset = make_preset(options)
    resolve_device(options.device)
    get_motion(options.motion)  # fail early on a bad motion name or file
    torch.manual_seed(options.seed)
    stages = _Stages(progress, _PROGRESS_PLAN)
    loaded = stages.run("load", "reading the photo", load_image, image, preset.input.max_pixels, preset.input.working_size)
    body = stages.run("body_model", "loading the body model", load_body, options.body, options.body_model)
    perception = stages.run("perceive", "finding the person", perceive_person, loaded.rgb, preset.perceive, loaded.alpha)
    fit = stages.run(
        "fit", "fitting the body", fit_body, body, mediapipe_to_coco23(perception.body), perception.mask, preset.fit, COCO23_FIT_WEIGHTS
    )
    texture = stages.run("texture", "projecting the photo onto the body", texture_subject, body, loaded, perception, fit, preset)
    return PreparedSubject(Subject(loaded, perception, fit, texture), options, dict(stages.seconds))


def finish_avatar(prepared: PreparedSubject, output_dir: str | Path, progress: Progress | None = None) -> Result:
    """The avatar stages (the GPU half): optimise the avatar, write the files and the clips
    into `output_dir`. Seeds torch again, so the result depends only on (subject, options),
    whichever process runs it."""
    options, subject = prepared.options, prepared.subject
    preset = make_preset(options)
    device = resolve_device(options.device)
    motion = get_motion(options.motion)
    torch.manual_seed(options.seed)
    stages = _Stages(progress, _PROGRESS_PLAN)
    stages.seconds.update(prepared.seconds)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded, perception, fit = subject.image, subject.perception, subject.fit
    # Built once per process and device (timed in `prepare_subject` for the CPU); the avatar
    # stages run where the body model is.
    body = load_body(options.body, options.body_model, str(device))

    avatar, rig, train_stats, _ = stages.run(
        "avatar", "optimising the avatar on the photo", build_avatar, subject, body, preset, stages.sub("avatar")
    )
    training_set = stages.run(
        "generate", f"generating training frames ('{preset.generate.backend}')", generate_frames,
        subject, body, avatar, rig, preset, options.seed, stages.sub("generate"),
    )  # fmt: skip
    avatar, rig, persona_stats = stages.run(
        "persona", "learning pose-driven deformation from the training frames", refine_avatar,
        avatar, body, training_set, preset, stages.sub("persona"),
    )  # fmt: skip
    photo = training_set.captured[0]
    metrics = input_view_metrics(avatar, rig, photo.image, photo.mask, photo.camera, fit.keypoint_error_px)
    versions_used = versions()
    licences = {**licences_for(body), **generator_licences(training_set.backend)}
    manifest = {"preset": preset.name, "source": loaded.source_name, "versions": versions_used, "licences": licences}

    def export() -> OutputFiles:
        files = OutputFiles(
            out, out / "avatar.ply", out / "avatar.persona", out / "animation.mp4", out / "turntable.mp4",
            out / "input_view.png", out / "report.json",
        )  # fmt: skip
        export_ply(files.ply, avatar, rig)
        save_avatar(files.package, avatar, manifest)
        write_png_rgba(files.input_view, render_input_view(avatar, rig, loaded.original_size, preset.input.input_view_max_size))
        return files

    files = stages.run("export", "writing the avatar files", export)
    stages.run(
        "animation", f"animating ('{motion.name}')", write_video, files.animation,
        render_motion(avatar, rig, motion, preset.clip, stages.sub("animation")), round(motion.fps),
    )  # fmt: skip
    stages.run("turntable", "rendering the turntable", write_video, files.turntable, render_turntable(avatar, rig, preset.clip, stages.sub("turntable")), 24)
    report = Report(
        preset=preset.name, motion=motion.name, seed=options.seed, device=str(device), source=loaded.source_name,
        original_size=loaded.original_size, working_size=loaded.size, num_gaussians=avatar.num_gaussians,
        seconds={**stages.seconds, "total": round(sum(stages.seconds.values()), 3)}, metrics=metrics,
        people_found=perception.people_found, cut_off=perception.cut_off,
        warnings=[*loaded.notes, *perception.warnings, *training_set.notes], versions=versions_used, licences=licences,
        fit_loss=fit.history, train_loss=train_stats.losses, persona_loss=persona_stats.losses if persona_stats else [],
        deformation=avatar.deformer is not None,
        generator=training_set.backend, generated_frames=training_set.num_generated, generator_motions=training_set.motions,
        generator_requested=preset.generate.backend, frames_per_motion=preset.generate.frames_per_motion,
    )  # fmt: skip
    with atomic_write(files.report) as tmp:  # like every other output: never half-written
        tmp.write_text(json.dumps(asdict(report), indent=2, default=str))
    if progress:
        progress(1.0, "done")
    return Result(avatar, files, report)


def make_avatar(
    image: ImageSource,
    output_dir: str | Path,
    options: MakeOptions = MakeOptions(),
    progress: Progress | None = None,
) -> Result:
    """Run every stage on one photo and write the files into `output_dir`
    (`prepare_subject`, then `finish_avatar`)."""
    return finish_avatar(prepare_subject(image, options, progress), output_dir, progress)


def package_body_name(package: str | Path | bytes) -> str:
    """The body model an avatar package was made on (its manifest's `body_model`)."""
    return str(read_package(package, AVATAR_SCHEMA).manifest.get("body_model", "anny"))


def animate_avatar(
    package: str | Path | bytes,
    motion_name: str,
    output: str | Path,
    clip: ClipConfig = ClipConfig(),
    progress: Progress | None = None,
    body_model: str | None = None,
    device: str = "cpu",
) -> Path:
    """Render a saved avatar performing a motion into an MP4 at `output`. The body model is the
    one the avatar was made on; an SMPL-X avatar needs `body_model` (the SMPL-X model file).
    device: auto | cpu | cuda, where the posing and rendering run (a video motion: on the CPU)."""
    if is_video_path(motion_name):
        return animate_from_video(package, motion_name, output, clip, progress=progress, body_model=body_model).video
    motion = get_motion(motion_name)
    body = load_body(package_body_name(package), body_model, str(resolve_device(device)))
    avatar = load_avatar(package, body)
    rig = AvatarRig(body, avatar)
    return write_video(output, render_motion(avatar, rig, motion, clip, progress), round(motion.fps))


def capture_video(
    video: str | Path, output: str | Path | None = None, preset: str = "preview", progress: Progress | None = None
) -> CapturedMotion:
    """Motion capture of a driving video with the preset's limits (`CaptureConfig`); with
    `output` (.npz), the motion and its cameras are saved there and the report beside it
    (`<output>.json`)."""
    captured = capture_motion(video, load_body("anny"), get_preset(preset).capture, progress)
    if output is not None:
        output = Path(output)
        save_capture(captured, output)
        with atomic_write(output.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(asdict(captured.report), indent=2))
    return captured


@dataclass
class VideoAnimation:
    video: Path  # the clip written
    capture: CaptureReport  # what the motion capture found (warnings included)


def animate_from_video(
    package: str | Path | bytes,
    video: str | Path,
    output: str | Path,
    clip: ClipConfig = ClipConfig(),
    side: bool = False,
    preset: str = "preview",
    progress: Progress | None = None,
    body_model: str | None = None,
) -> VideoAnimation:
    """Capture the motion of the person in `video` and render the saved avatar performing it,
    seen from the video's viewpoint, `clip.size` pixels on the longer side; with `side`, the
    driving video and the avatar side by side."""
    say = progress or (lambda f, m: None)
    limits = get_preset(preset).capture.limits
    source = read_video(video, limits)
    captured = capture_motion(source, load_body("anny"), get_preset(preset).capture, lambda f, m: say(0.6 * f, m))
    body = load_body(package_body_name(package), body_model)
    avatar = load_avatar(package, body)
    rig = AvatarRig(body, avatar)
    frames = render_motion_from(avatar, rig, captured.motion, captured.cameras, clip.size, lambda f, m: say(0.6 + 0.4 * f, m))
    if side:
        frames = side_by_side(iter(source.frames), frames)
    path = write_video(output, frames, max(1, round(source.fps)))
    return VideoAnimation(path, captured.report)


def subject_preview(subject: Subject, body: BodyModel, body_opacity: float = 0.5) -> np.ndarray:
    """What perception and the body fit found, to check at a glance: the photo dimmed outside
    the person mask, the fitted body shaded on top (`body_opacity`), the detected keypoints as
    green dots. Returns (H, W, 3) uint8 at the working image size."""
    image, perception, fit = subject.image, subject.perception, subject.fit
    mask = perception.mask[..., None]
    base = image.rgb * (0.3 + 0.7 * mask)  # (H, W, 3)
    with torch.no_grad():
        vertices = body.forward(fit.shape[None], fit.pose).vertices[0]  # (V, 3)
    pixels, depth = fit.camera.project(vertices)  # (V, 2), (V,)
    triangles = vertices[body.faces]  # (F, 3, 3)
    normals = torch.linalg.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    to_camera = fit.camera.center.to(triangles.dtype) - triangles.mean(1)
    facing = (torch.nn.functional.normalize(normals, dim=-1) * torch.nn.functional.normalize(to_camera, dim=-1)).sum(-1).abs()
    order = torch.argsort(depth[body.faces].mean(1), descending=True)  # painter's algorithm: far to near
    W, H = image.size
    layer = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    colours = (torch.tensor([110.0, 160.0, 255.0]) * (0.3 + 0.7 * facing[:, None])).round().int().tolist()
    corners = pixels[body.faces].tolist()  # (F, 3, 2)
    for f in order.tolist():
        draw.polygon([tuple(p) for p in corners[f]], fill=(*colours[f], 255))
    overlay = np.asarray(layer, dtype=np.float32) / 255.0
    alpha = overlay[..., 3:] * body_opacity
    out = Image.fromarray(np.clip((base * (1 - alpha) + overlay[..., :3] * alpha) * 255, 0, 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(out)
    radius = max(3.0, max(W, H) / 180)
    for x, y, visibility in mediapipe_to_coco23(perception.body):
        if visibility >= 0.5:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(40, 220, 90), outline=(0, 0, 0))
    return np.asarray(out)


def viewer_ply(source: str | Path, output: str | Path, height: float = 1.4) -> Path:
    """A display copy of `avatar.ply` for web splat viewers in the INRIA scene convention
    (Y down, e.g. gsplat.js in Gradio's Model3D): turned 180 degrees about X, centred on its
    bounding box and scaled to `height` units, so that the whole avatar stands upright in the
    viewer's default camera (5 units away). `avatar.ply` itself stays Y-up, in metres."""
    ply = read_gaussian_ply(source)
    means = ply.means * np.array([1.0, -1.0, -1.0], dtype=np.float32)  # (N, 3)
    means -= (means.max(0) + means.min(0)) / 2
    factor = height / max(float(np.ptp(means[:, 1])), 1e-6)
    w, x, y, z = ply.quats.T
    quats = np.stack([-x, w, -z, y], 1)  # (N, 4) WXYZ: (0, 1, 0, 0) * q, the same turn
    return write_gaussian_ply(output, means * factor, ply.scales * factor, quats, ply.opacities, ply.colors)
