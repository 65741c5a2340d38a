"""The PERSONA Space: a Gradio UI and API over `persona.pipeline` (no math here).

Tabs: **Make** (photo -> person and body-fit check -> avatar, clips, files, report) and
**Animate** (a saved `avatar.persona` + a motion -> a new clip, without re-optimising).

Stable API endpoints (see the README, "The app and its API"):
- `/make_avatar(photo, preset, motion, seed, motion_file=None, frames=0, generator="synth")` ->
  animation video, turntable video, avatar.ply, avatar.persona, report (JSON). `frames`:
  generated training frames per driving motion (0: the preset's); `generator`: the
  training-video generator (a diffusion one without CUDA or weights falls back to synth, and
  the report says so).
- `/animate(avatar, motion, motion_file=None, size=384, video=None, side_by_side=False)` -> video;
  with `video`, the motion of the person in it (captured on the CPU, preview limits: 300
  frames, 20 s), optionally side by side with the video. `avatar=None` reuses the
  avatar made last in the same session.
- `/check_photo(photo, preset)` -> image of the person and body fit found, summary (JSON):
  a quick CPU-only check before spending GPU time.

ZeroGPU: the avatar stages (`finish_avatar`: optimisation, files, clips) and `animate_avatar`
run inside `spaces.GPU` functions whose declared duration comes from the preset and the
number of frames; reading the photo, perception and the body fit (`prepare_subject`) run
outside. GPU functions run in a forked worker with pickled arguments and results, so they
take and return paths and CPU data only. Off a Space `spaces.GPU` returns the function
unchanged and everything runs in this process.

Files: one folder per browser (or API client) session under
`$GRADIO_TEMP_DIR/persona-sessions/`, deleted when the session ends (`demo.unload`); gradio's
own copies of the outputs are removed by `delete_cache`; folders of sessions that never
closed are swept after `SESSION_MAX_AGE_S`; a job that fails takes its folder with it.

Limits per request (README, "Limits and errors"): uploads up to `MAX_UPLOAD_MB`, photos up
to the preset's `max_pixels`, motions up to `MAX_MOTION_FRAMES` frames, animate clips up to
`MAX_CLIP_FRAME_UNITS` frames at 384 px (fewer when larger), and `MAX_REQUEST_S` seconds per
step. A GPU out-of-memory error is retried once on the next lower preset (or half the clip
size), then reported as one sentence.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from hashlib import sha256
from pathlib import Path

import persona  # noqa: F401  (first: points GRADIO_TEMP_DIR and the other caches at PERSONA_CACHE_DIR)
import spaces  # before torch and gradio, as ZeroGPU requires
import gradio as gr
import torch

from persona.avatar.animate import ClipConfig
from persona.body.anny_model import load_anny
from persona.cache import cache_root
from persona.config import PRESETS
from persona.errors import PersonaError
from persona.generate.diffusion import preset_for
from persona.generate.generator import BACKENDS
from persona.generate.motions import DESCRIPTIONS, MOTIONS, get_motion
from persona.hub import get_entry
from persona.pipeline import (
    MakeOptions,
    PreparedSubject,
    animate_avatar,
    animate_from_video,
    finish_avatar,
    frames_per_motion_range,
    make_preset,
    prepare_subject,
    subject_preview,
    viewer_ply,
)

log = logging.getLogger("persona.app")

HERE = Path(__file__).resolve().parent
EXAMPLES = [str(HERE / "examples" / name) for name in ("person_full.jpg", "person_half.png") if (HERE / "examples" / name).exists()]

SESSIONS = Path(os.environ["GRADIO_TEMP_DIR"]) / "persona-sessions"
SESSION_MAX_AGE_S = 6 * 3600  # folders of sessions that never closed (a killed client) go after this
# Job folders kept per session and kind (the newest avatar job holds the session's last
# avatar, which /animate reuses); older ones are removed when a new job starts.
JOBS_KEPT = {"avatar": 3, "clip": 5}
STATE_TTL_S = 3600  # server-side session values (the prepared subject, the last avatar)
# Cached example outputs live outside the clone, keyed by this file's content so that a
# changed app never serves outputs cached by an older one.
os.environ.setdefault(
    "GRADIO_EXAMPLES_CACHE", str(cache_root() / "gradio-examples" / sha256(Path(__file__).read_bytes()).hexdigest()[:12])
)

ON_ZEROGPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
# Jobs running at once: each ZeroGPU call gets its own GPU; a local CPU is better used by one.
CONCURRENCY = int(os.environ.get("PERSONA_CONCURRENCY", "2" if ON_ZEROGPU else "1"))
QUEUE_SIZE = int(os.environ.get("PERSONA_QUEUE_SIZE", "32"))

# Declared ZeroGPU seconds. The platform multiplies them by 1.5 on its Blackwell cards and
# refuses a call above the visitor's remaining daily quota (120 s unauthenticated), so a
# standard avatar must declare at most 80 s. (fixed part, per rendered frame): twice what one
# H100 measured (bench/results/gpu_render.json: photo + PERSONA optimisation 3.5 / 15.8 /
# 67.1 s, plus ~3-8 s of generation, export and set-up; 12-20 ms a frame to render and
# encode), for a slower host CPU (the step is launch-bound) and a half card. The generation
# stage is also counted per generated frame (`generation_gpu_seconds`), so that more frames
# or a diffusion generator declare more.
GPU_SECONDS = {"preview": (12.0, 0.03), "standard": (36.0, 0.04), "high": (154.0, 0.05)}
# The training-video generator, per generated frame: synth renders one frame in a few ms
# (declared 0.05 s); a diffusion backend takes twice its measured H100 time per frame at the
# preset's video settings (bench/results/video_gpu.json) plus 0.3 s of mediapipe and 0.1 s of
# depth estimate (a 25M-parameter ViT at 518 px; 14 ms measured on an H200,
# bench/results/depth_estimate_cuda.json) on the frame, and first
# loads its weights and the depth estimator's: declared 2 s per GB (a 1 GB/s read, twice).
SYNTH_GPU_SECONDS_PER_FRAME = 0.05
PERCEIVE_SECONDS_PER_FRAME = 0.4
LOAD_SECONDS_PER_GB = 2.0
GENERATOR_WEIGHTS = {
    "synth": (), "wan-vace": ("wan-vace-1.3b", "depth-anything-v2-small"),
    "mimicmotion": ("mimicmotion", "svd-xt-1-1", "depth-anything-v2-small"),
}  # fmt: skip
ANIMATE_GPU_SECONDS = (4.0, 0.02)  # (fixed: loading the package, per frame at 384 px)
MAX_GPU_SECONDS = 300

# Per-request limits (the README's "Limits and errors"). Photos: the preset's max_pixels,
# checked from the file header (persona.io.image).
MAX_UPLOAD_MB = int(os.environ.get("PERSONA_MAX_UPLOAD_MB", "100"))  # any one upload (photo, package, motion)
MAX_MOTION_FRAMES = 720  # 30 s at 24 fps, for a make's clip and for /animate
MAX_CLIP_FRAME_UNITS = 2400  # /animate: frames x (size / 384)^2: 720 frames up to 640 px, 337 at 1024
# Wall-clock seconds for each step of a request (photo check, avatar, clip) once it runs;
# ZeroGPU also stops a GPU step at its declared duration.
MAX_REQUEST_S = float(os.environ.get("PERSONA_MAX_REQUEST_S", "1800"))
LOWER_PRESET = {"high": "standard", "standard": "preview"}  # retry after a GPU out-of-memory error

BODY = load_anny("cpu")  # once per process (the first build takes about a minute)
MOTION_CHOICES = [(f"{name}: {DESCRIPTIONS.get(name, '')}", name) for name in MOTIONS]
MOTION_FILE_TYPES = [".npz", ".bvh"]  # what `persona.generate.motions.get_motion` reads
MOTION_FILE_LABEL = "Motion file (.npz: ours or SMPL-X/AMASS; .bvh), replaces the motion above"
GENERATOR_CHOICES = [
    (f"{spec.name} · {spec.licence} · {'embedded' if spec.weights == 'none' else 'Hub weights, needs a GPU'}", spec.name)
    for spec in BACKENDS.values()
]
# The frames slider: 0 is the preset's own count; its upper end follows the chosen preset.
FRAMES_LABEL = "Generated training frames per driving motion (0: the preset's)"


# --- errors, sessions, folders -------------------------------------------------------


@contextmanager
def user_errors(doing: str):
    """Show a PersonaError's message to the user (gr.Error); anything else is our fault:
    log the traceback here and show a short message, never the traceback."""
    try:
        yield
    except gr.Error:
        raise
    except PersonaError as err:
        raise gr.Error(html.escape(str(err), quote=False), title="Cannot make this", print_exception=False) from None
    except (MemoryError, torch.OutOfMemoryError):
        log.exception("out of memory while %s", doing)
        raise gr.Error(
            f"The server ran out of memory while {doing}. Try again in a minute, with the preview preset or a smaller video size.",
            print_exception=False,
        ) from None
    except Exception as err:
        log.exception("failed while %s", doing)
        raise gr.Error(
            f"Something went wrong on our side while {doing} ({type(err).__name__}). Please try again; "
            "if it keeps failing, report it with the photo's size and format.",
            print_exception=False,
        ) from None


def session_folder(request: gr.Request | None) -> Path:
    """The folder of this browser tab or API client (its session hash, hashed again so a
    client-chosen value can never name a path)."""
    session = getattr(request, "session_hash", None) or "no-session"
    return SESSIONS / sha256(session.encode()).hexdigest()[:24]


def new_job_folder(request: gr.Request | None, kind: str) -> Path:
    """A fresh folder for one job of `kind` ("avatar" or "clip"); prunes this session's
    older jobs of that kind and the folders of stale sessions."""
    now = time.time()
    if SESSIONS.is_dir():
        for folder in SESSIONS.iterdir():
            try:
                stale = now - folder.stat().st_mtime > SESSION_MAX_AGE_S
            except FileNotFoundError:  # removed meanwhile by its own session's end
                continue
            if stale:
                log.info("removing the stale session folder %s", folder.name)
                shutil.rmtree(folder, ignore_errors=True)
    session = session_folder(request)
    job = session / kind / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    job.mkdir(parents=True)
    session.touch()
    jobs = sorted((p for p in job.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in jobs[: -JOBS_KEPT[kind]]:
        shutil.rmtree(old, ignore_errors=True)
    return job


@contextmanager
def job_folder(request: gr.Request | None, kind: str):
    """`new_job_folder`, removed again if the job fails or is cancelled, so that no partial
    result stays on disk (or is reused by /animate)."""
    folder = new_job_folder(request, kind)
    try:
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def end_session(request: gr.Request) -> None:
    """`demo.unload`: the tab was closed (or the API client disconnected)."""
    folder = session_folder(request)
    if folder.exists():
        shutil.rmtree(folder, ignore_errors=True)
        log.info("session ended: removed %s", folder.name)


def reporter(progress: gr.Progress | None, limit_s: float | None = None):
    """The pipeline's progress(fraction, message) as a Gradio progress bar, and the time
    limit of a request step: past `limit_s` seconds (default `MAX_REQUEST_S`) the next report
    raises PersonaError, which stops the pipeline there (files are written atomically, so
    nothing half-written remains)."""
    limit_s = MAX_REQUEST_S if limit_s is None else limit_s
    deadline = time.monotonic() + limit_s

    def report(fraction: float, message: str) -> None:
        if time.monotonic() > deadline:
            raise PersonaError(
                f"This took longer than the {limit_s:.0f} s allowed for one step here, so it was stopped. "
                "Try the preview preset, a shorter motion or a smaller video size."
            )
        if progress is not None:
            progress(fraction, desc=message)

    return report


def free_gpu_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def finish_with_fallback(prepared: PreparedSubject, folder: str, progress=None):
    """`finish_avatar`; after a GPU out-of-memory error, once more on the next lower preset
    (the report then says so in its warnings), else a clear PersonaError."""
    preset = prepared.options.preset
    try:
        return finish_avatar(prepared, folder, progress)
    except torch.OutOfMemoryError:
        free_gpu_memory()
        lower = LOWER_PRESET.get(preset)
        log.warning("GPU out of memory on preset %s; retrying with %s", preset, lower)
        if lower is None:
            raise PersonaError(
                f"The GPU ran out of memory making this avatar, even with the '{preset}' preset. Please try again in a minute."
            ) from None
    for leftover in Path(folder).iterdir():  # the first attempt's complete files, if any
        if leftover.is_file():
            leftover.unlink()
    note = f"the GPU ran out of memory with the '{preset}' preset, so this avatar was made with '{lower}'"
    subject = prepared.subject
    frames = prepared.options.frames_per_motion  # asked for explicitly: kept, within the lower preset's range
    frames = None if frames is None else min(frames, frames_per_motion_range(PRESETS[lower])[1])
    retry = replace(
        prepared,
        subject=replace(subject, image=replace(subject.image, notes=[*subject.image.notes, note])),
        options=replace(prepared.options, preset=lower, frames_per_motion=frames),
    )
    try:
        return finish_avatar(retry, folder, progress)
    except torch.OutOfMemoryError:
        free_gpu_memory()
        raise PersonaError(
            f"The GPU ran out of memory making this avatar, with the '{preset}' and the '{lower}' presets. "
            "Please try again in a minute, or use the preview preset."
        ) from None


def animate_with_fallback(package: str, motion: str, output: str, size: int, progress=None) -> str:
    """`animate_avatar`; after a GPU out-of-memory error, once more at half the size
    (at least 128 px), else a clear PersonaError."""
    try:
        return str(animate_avatar(package, motion, output, ClipConfig(size=size), progress, device="auto"))
    except torch.OutOfMemoryError:
        free_gpu_memory()
        smaller = max(128, size // 2 // 64 * 64)
        log.warning("GPU out of memory animating at %d px; retrying at %d px", size, smaller)
        if smaller == size:
            raise PersonaError(f"The GPU ran out of memory rendering this clip at {size} px. Please try again in a minute.") from None
    try:
        return str(animate_avatar(package, motion, output, ClipConfig(size=smaller), progress, device="auto"))
    except torch.OutOfMemoryError:
        free_gpu_memory()
        raise PersonaError(
            f"The GPU ran out of memory rendering this clip, at {size} px and at {smaller} px. Please try again in a minute."
        ) from None


def check_motion(motion: str, size: int | None = None) -> str:
    """Refuse a motion too long for the app (and, for /animate, too many pixels to render);
    returns its name."""
    with user_errors("reading the motion"):
        clip = get_motion(motion)
    if clip.num_frames > MAX_MOTION_FRAMES:
        raise gr.Error(
            f"The motion has {clip.num_frames} frames; this app renders at most {MAX_MOTION_FRAMES} "
            f"({MAX_MOTION_FRAMES / 24:.0f} s at 24 fps). Trim it, or use the command line for longer clips.",
            print_exception=False,
        )
    if size is not None and clip.num_frames * (size / 384) ** 2 > MAX_CLIP_FRAME_UNITS:
        most = int(MAX_CLIP_FRAME_UNITS / (size / 384) ** 2)
        raise gr.Error(
            f"A {clip.num_frames}-frame clip at {size} px is more than this app renders in one request "
            f"(at most {most} frames at {size} px). Choose a smaller video size or a shorter motion.",
            print_exception=False,
        )
    return clip.name


# --- GPU functions (ZeroGPU: forked worker, pickled arguments and results) --------------


def generation_gpu_seconds(config) -> float:
    """Declared seconds of the generation stage for a GenerateConfig (its backend, motions and
    frames per motion); see `GENERATOR_WEIGHTS` and the constants above it."""
    frames = len(config.motions) * config.frames_per_motion
    if config.backend == "synth":
        return SYNTH_GPU_SECONDS_PER_FRAME * frames
    row = preset_for(config.backend, config)  # the video settings the backend will use
    per_frame = 2 * row.seconds_h100 / (2 * row.frames_per_motion) + PERCEIVE_SECONDS_PER_FRAME  # measured: 2 clips
    load = LOAD_SECONDS_PER_GB * sum(get_entry(name).size_gb for name in GENERATOR_WEIGHTS[config.backend])
    return load + per_frame * frames


def make_gpu_seconds(prepared: PreparedSubject, folder: str, progress: gr.Progress | None = None) -> int:
    """Declared duration of `finish_on_gpu`, from the preset, the frames to render and the
    training frames to generate (with the chosen generator)."""
    options = prepared.options
    fixed, per_frame = GPU_SECONDS[options.preset]
    preset = make_preset(options)
    frames = get_motion(options.motion).num_frames + preset.clip.turntable_frames
    seconds = math.ceil(fixed + per_frame * frames + generation_gpu_seconds(preset.generate))
    if seconds > MAX_GPU_SECONDS:
        log.warning("make: %d s of GPU estimated for %s, declaring the most, %d s", seconds, options, MAX_GPU_SECONDS)
    return min(MAX_GPU_SECONDS, seconds)


@spaces.GPU(duration=make_gpu_seconds)
def finish_on_gpu(prepared: PreparedSubject, folder: str, progress: gr.Progress | None = None) -> dict:
    """Optimise the avatar, write its files and clips; returns the report (JSON-ready)."""
    with user_errors("making the avatar"):
        result = finish_with_fallback(prepared, folder, reporter(progress))
        return json.loads(result.files.report.read_text())


def animate_gpu_seconds(package: str, motion: str, output: str, size: int, progress: gr.Progress | None = None) -> int:
    fixed, per_frame = ANIMATE_GPU_SECONDS
    return min(MAX_GPU_SECONDS, math.ceil(fixed + per_frame * get_motion(motion).num_frames * (size / 384) ** 2))


@spaces.GPU(duration=animate_gpu_seconds)
def animate_on_gpu(package: str, motion: str, output: str, size: int, progress: gr.Progress | None = None) -> str:
    with user_errors("animating the avatar"):
        return animate_with_fallback(package, motion, output, size, reporter(progress))


# --- handlers ----------------------------------------------------------------------


def make_options(
    preset: str, motion: str, seed: float | int | None, motion_file: str | None, frames: float | int | None = 0,
    generator: str | None = "synth",
) -> MakeOptions:
    """The make's options from the UI / API values (frames 0 or None: the preset's count);
    the pipeline checks the frame count and the generator (`prepare_subject`)."""
    if preset not in PRESETS:
        raise gr.Error(f"Unknown preset '{preset}'. Choose one of: {', '.join(PRESETS)}.", print_exception=False)
    try:
        seed = int(seed or 0)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"The seed must be a whole number, not {str(seed)[:40]!r}.", print_exception=False) from None
    if not 0 <= seed < 2**63:
        raise gr.Error("The seed must be a whole number between 0 and 2^63 - 1.", print_exception=False)
    try:
        frames = int(frames or 0)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"The number of frames must be a whole number, not {str(frames)[:40]!r}.", print_exception=False) from None
    motion = motion_file or motion or "walk"
    check_motion(motion)
    return MakeOptions(
        preset=preset, motion=motion, seed=seed, frames_per_motion=frames or None, generator=generator or "synth"
    )  # fmt: skip


def frames_slider(preset: str) -> dict:
    """The frames slider's settings for a preset: 0 (the preset's own count) up to the most
    the preset accepts (the API's `frames` is checked by the pipeline instead)."""
    if preset not in PRESETS:
        return {}
    default, (_, most) = PRESETS[preset].generate.frames_per_motion, frames_per_motion_range(PRESETS[preset])
    return {"maximum": most, "value": 0, "info": f"'{preset}' makes {default} by default; at most {most}"}


def need_photo(photo: str | None) -> str:
    if not photo:
        raise gr.Error("Add a photo of one person first: upload one, use the webcam or paste one.", print_exception=False)
    return photo


def prepare(photo: str | None, options: MakeOptions, progress: gr.Progress) -> PreparedSubject:
    with user_errors("reading the photo and fitting the body"):
        return prepare_subject(need_photo(photo), options, reporter(progress))


def preview(prepared: PreparedSubject):
    with user_errors("drawing the body fit"):
        return subject_preview(prepared.subject, BODY)


def generator_line(report: dict) -> str:
    """Which generator made the training frames, and how many (the one asked for, if another)."""
    line = (
        f"Training frames: {report['generated_frames']} generated by `{report['generator']}` "
        f"({report['frames_per_motion']} per motion: {', '.join(report['generator_motions'])})"
    )
    if report["generator_requested"] != report["generator"]:
        line += f"; `{report['generator_requested']}` was asked for but was not available here (see the warnings)"
    return line


def summary_markdown(report: dict) -> str:
    """A short human report: size, time per stage, training frames, quality, warnings, licences."""
    seconds = report["seconds"]
    stages = " · ".join(f"{name} {value:.1f} s" for name, value in seconds.items() if name != "total")
    metrics = report["metrics"]
    lines = [
        f"**{report['num_gaussians']:,} Gaussians** · preset `{report['preset']}` · motion `{report['motion']}` · "
        f"seed {report['seed']} · **{seconds['total']:.0f} s** in all",
        "",
        f"Time per stage: {stages}",
        "",
        generator_line(report),
        "",
        f"On the photo: silhouette IoU {metrics['silhouette_iou']:.3f} · PSNR {metrics['psnr_in_mask_db']:.1f} dB · "
        f"keypoint error {metrics['keypoint_error_px']:.1f} px",
    ]
    if report["warnings"]:
        lines += ["", "**Warnings**", *(f"- {html.escape(w, quote=False)}" for w in report["warnings"])]
    lines += ["", "Licences of what made this avatar: " + ", ".join(f"{k} ({v})" for k, v in report["licences"].items())]
    return "\n".join(lines)


def photo_summary(prepared: PreparedSubject) -> dict:
    subject = prepared.subject
    return {
        "source": subject.image.source_name,
        "people_found": subject.perception.people_found,
        "cut_off": subject.perception.cut_off,
        "working_size": list(subject.image.size),
        "keypoint_error_px": round(subject.fit.keypoint_error_px, 2),
        "warnings": list(subject.image.notes) + list(subject.perception.warnings),
        "seconds": prepared.seconds,
    }


def check_photo(photo: str | None, preset: str, progress=gr.Progress(track_tqdm=True)):
    """API /check_photo: the person and body fit found in the photo, and a summary. CPU only."""
    prepared = prepare(photo, make_options(preset, "walk", 0, None), progress)
    return preview(prepared), photo_summary(prepared)


def make_avatar(
    photo: str | None,
    preset: str,
    motion: str,
    seed: float,
    motion_file: str | None = None,
    frames: float = 0,
    generator: str = "synth",
    request: gr.Request = None,
    progress=gr.Progress(track_tqdm=True),
):
    """API /make_avatar: one photo -> animation video, turntable video, avatar.ply,
    avatar.persona, report (JSON). frames: generated training frames per driving motion (0:
    the preset's); generator: the training-video generator (new arguments go last, with
    defaults, so that existing clients keep working)."""
    prepared = prepare(photo, make_options(preset, motion, seed, motion_file, frames, generator), progress)
    with job_folder(request, "avatar") as folder:
        report = finish_on_gpu(prepared, str(folder), progress)
    files = {name: str(folder / name) for name in ("animation.mp4", "turntable.mp4", "avatar.ply", "avatar.persona")}
    return files["animation.mp4"], files["turntable.mp4"], files["avatar.ply"], files["avatar.persona"], report, files["avatar.persona"]


def animate(
    avatar: str | None,
    motion: str,
    motion_file: str | None = None,
    size: float = 384,
    last_package: str | None = None,
    video: str | None = None,
    side_by_side: bool = False,
    request: gr.Request = None,
    progress=gr.Progress(track_tqdm=True),
):
    """API /animate: a saved avatar.persona (or, with avatar=None, the one made last in this
    session) performing a built-in motion, a motion file (.npz, .bvh) or the motion of the
    person in a video (captured first; `side_by_side` puts the video beside the avatar) -> video."""
    package = avatar or (last_package if last_package and Path(last_package).is_file() else None)
    if package is None:
        raise gr.Error("Upload an avatar.persona file, or make an avatar first in the Make tab.", print_exception=False)
    try:
        size = int(size or 384)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"The video size must be a number of pixels, not {str(size)[:40]!r}.", print_exception=False) from None
    if not 128 <= size <= 1024:
        raise gr.Error(f"The video size must be between 128 and 1024 pixels, not {size}.", print_exception=False)
    if video:
        # Motion capture (mediapipe and the body fit) is CPU work: it runs here, with the
        # preview preset's limits (at most 300 frames, 20 s), then the clip is rendered.
        with job_folder(request, "clip") as folder, user_errors("capturing the motion of the video"):
            return str(animate_from_video(
                str(package), video, folder / f"animation-{Path(video).stem[:40]}.mp4", ClipConfig(size=size),
                bool(side_by_side), "preview", reporter(progress),
            ).video)  # fmt: skip
    motion = motion_file or motion or "walk"
    name = check_motion(motion, size)
    with job_folder(request, "clip") as folder:
        return animate_on_gpu(str(package), motion, str(folder / f"animation-{name}.mp4"), size, progress)


# UI steps: first the check (CPU), shown at once; then the avatar (GPU).


def ui_check(photo, preset, motion, seed, motion_file, frames, generator, progress=gr.Progress(track_tqdm=True)):
    prepared = prepare(photo, make_options(preset, motion, seed, motion_file, frames, generator), progress)
    return preview(prepared), prepared


def ui_build(prepared: PreparedSubject | None, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
    if prepared is None:
        raise gr.Error("The photo check expired; press the button again.", print_exception=False)
    with job_folder(request, "avatar") as folder:
        report = finish_on_gpu(prepared, str(folder), progress)
        return ui_outputs(folder, report)


def ui_outputs(folder: Path, report: dict) -> tuple:
    """Animation, turntable, 3D view, the downloads, summary, report, the Animate tab's
    avatar and the session's last package (in the order of `build_outputs`). Plain values,
    no component updates: lazily cached examples cannot replay updates in gradio 6.31."""
    path = {name: str(folder / name) for name in ("animation.mp4", "turntable.mp4", "avatar.ply", "avatar.persona", "report.json")}
    with user_errors("preparing the 3D view"):
        view = viewer_ply(folder / "avatar.ply", folder / "avatar_viewer.ply")  # Model3D's viewer is Y-down
    files = [path[name] for name in ("avatar.persona", "avatar.ply", "animation.mp4", "turntable.mp4", "report.json")]
    return (
        path["animation.mp4"], path["turntable.mp4"], str(view), files,
        summary_markdown(report), report, path["avatar.persona"], path["avatar.persona"],
    )  # fmt: skip


def example_make(photo: str, request: gr.Request = None, progress=gr.Progress(track_tqdm=True)):
    """An example photo with the default settings (cached after its first use)."""
    prepared = prepare(photo, make_options("preview", "walk", 0, None), progress)
    check = preview(prepared)
    with job_folder(request, "avatar") as folder:
        report = finish_on_gpu(prepared, str(folder), progress)
        return (check, *ui_outputs(folder, report)[:-1])


# --- the UI ------------------------------------------------------------------------

INTRO = """
# PERSONA · one photo → an animatable 3D avatar
Upload a photo of **one person, ideally head to feet**, facing the camera. We find the person,
fit a 3D body, build 3D Gaussians on it, optimise them on your photo and animate them.
You get clips, a 3D view and files (`avatar.ply` for splat viewers, `avatar.persona` to
re-animate here or with `python -m persona animate`). The *preview* preset takes about a minute.
"""

# Outputs are created first (render=False) so the example can name them; placed below.
check_image = gr.Image(label="Person and body fit found", interactive=False, height=300, elem_id="check", render=False)
animation = gr.Video(label="Animation", autoplay=True, loop=True, height=320, elem_id="animation", render=False)
turntable = gr.Video(label="Turntable", autoplay=True, loop=True, height=300, elem_id="turntable", render=False)
viewer = gr.Model3D(label="3D Gaussians (avatar.ply): drag to turn", height=420, elem_id="viewer", render=False)
downloads = gr.File(label="Download the avatar", file_count="multiple", interactive=False, elem_id="downloads", render=False)
summary = gr.Markdown(elem_id="summary", render=False)
report = gr.JSON(label="report.json", render=False)
avatar_file = gr.File(label="avatar.persona", file_types=[".persona"], elem_id="avatar-file", render=False)

with gr.Blocks(title="PERSONA: one photo to an animatable 3D avatar", delete_cache=(1800, 3600)) as demo:
    gr.Markdown(INTRO)
    prepared_state = gr.State(None, time_to_live=STATE_TTL_S)  # the CPU half, between the two UI steps
    last_package = gr.State(None, time_to_live=STATE_TTL_S)  # avatar.persona made last in this session
    build_outputs = [animation, turntable, viewer, downloads, summary, report, avatar_file, last_package]

    with gr.Tab("Make", id="make"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=4, min_width=300):
                photo = gr.Image(
                    type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                    label="Photo of one person", height=360, elem_id="photo",
                )  # fmt: skip
                preset = gr.Radio(
                    list(PRESETS), value="preview", label="Preset",
                    info="preview: ~14k Gaussians, quick · standard: ~55k · high: ~219k, slowest",
                )  # fmt: skip
                motion = gr.Dropdown(MOTION_CHOICES, value="walk", label="Motion")
                with gr.Accordion("Advanced settings", open=False):
                    seed = gr.Number(0, precision=0, minimum=0, label="Seed")
                    motion_file = gr.File(label=MOTION_FILE_LABEL, file_types=MOTION_FILE_TYPES, height=90)
                    frames = gr.Slider(0, step=1, label=FRAMES_LABEL, elem_id="frames", **frames_slider("preview"))
                    generator = gr.Dropdown(
                        GENERATOR_CHOICES, value="synth", label="Training-video generator (licence)", elem_id="generator",
                        info="The diffusion generators need a GPU and their Hub weights; without them the embedded "
                        "synth makes the frames, and the report says so.",
                    )  # fmt: skip
                make_button = gr.Button("Make the avatar", variant="primary", elem_id="make-button")
                gr.Examples(
                    EXAMPLES, inputs=[photo], outputs=[check_image, *build_outputs[:-1]], fn=example_make,
                    label="Example (preview preset, walk; cached after its first use)", cache_examples=True, cache_mode="lazy",
                )  # fmt: skip
            with gr.Column(scale=5, min_width=320):
                check_image.render()
                animation.render()
                downloads.render()
            with gr.Column(scale=5, min_width=320):
                turntable.render()
                viewer.render()
        summary.render()
        with gr.Accordion("Report (JSON)", open=False):
            report.render()

    with gr.Tab("Animate", id="animate"):
        gr.Markdown(
            "Give a saved **avatar.persona** (the one you just made is already here) a new motion: "
            "no re-optimisation, a new clip in seconds."
        )
        with gr.Row():
            with gr.Column():
                avatar_file.render()
                animate_motion = gr.Dropdown(MOTION_CHOICES, value="jump", label="Motion")
                with gr.Accordion("Advanced settings", open=False):
                    animate_motion_file = gr.File(label=MOTION_FILE_LABEL, file_types=MOTION_FILE_TYPES, height=90)
                    size = gr.Slider(128, 1024, value=384, step=64, label="Video size (pixels)")
                with gr.Accordion("Motion from a video", open=False):
                    driving_video = gr.Video(
                        label="A video of one person (up to 20 s): their motion replaces the one above",
                        sources=["upload"], elem_id="driving-video",
                    )  # fmt: skip
                    side = gr.Checkbox(False, label="The video and the avatar side by side")
                animate_button = gr.Button("Animate", variant="primary", elem_id="animate-button")
            with gr.Column():
                animate_video = gr.Video(label="New clip", autoplay=True, loop=True, elem_id="animate-video")

    # The UI: check first (the preview appears after a few seconds), then the avatar.
    make_button.click(
        ui_check, [photo, preset, motion, seed, motion_file, frames, generator], [check_image, prepared_state],
        api_visibility="private", concurrency_id="make", concurrency_limit=CONCURRENCY,
    ).success(
        ui_build, [prepared_state], build_outputs,
        api_visibility="private", concurrency_id="make", concurrency_limit=CONCURRENCY,
    )  # fmt: skip

    preset.change(lambda name: gr.update(**frames_slider(name)), [preset], [frames], api_visibility="private", queue=False)

    # API-only endpoints on hidden triggers; their inputs come from the client, and their
    # hidden outputs name the returned values in the API page.
    with gr.Row(visible=False):
        api_photo = gr.File(label="photo")
        api_make = gr.Button("make_avatar")
        api_check = gr.Button("check_photo")
        api_outputs = [
            gr.Video(label="animation"), gr.Video(label="turntable"), gr.File(label="avatar_ply"),
            gr.File(label="avatar_persona"), gr.JSON(label="report"),
        ]  # fmt: skip
        api_preview, api_summary = gr.Image(label="preview"), gr.JSON(label="summary")
        # Any whole number (the pipeline refuses one outside the preset's range, with its message).
        api_frames = gr.Number(0, precision=0, label="frames")
    api_make.click(
        make_avatar, [api_photo, preset, motion, seed, motion_file, api_frames, generator], [*api_outputs, last_package],
        api_name="make_avatar", concurrency_id="make", concurrency_limit=CONCURRENCY,
    )  # fmt: skip
    # The same limit as the makes: events sharing a concurrency_id get the lowest limit among
    # them, and gradio's default (1) here would hold the makes to one at a time on ZeroGPU too.
    api_check.click(
        check_photo, [api_photo, preset], [api_preview, api_summary],
        api_name="check_photo", concurrency_id="make", concurrency_limit=CONCURRENCY,
    )  # fmt: skip
    animate_button.click(
        animate, [avatar_file, animate_motion, animate_motion_file, size, last_package, driving_video, side], [animate_video],
        api_name="animate", concurrency_id="animate", concurrency_limit=CONCURRENCY,
    )  # fmt: skip
    demo.unload(end_session)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    demo.queue(max_size=QUEUE_SIZE).launch(max_file_size=f"{MAX_UPLOAD_MB}mb")
