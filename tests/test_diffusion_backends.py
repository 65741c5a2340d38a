"""The diffusion backends inside the generator, on CPU: without weights/GPU the generator
falls back to `synth` and says so; with a (tiny, random) MimicMotion pipeline the backend
returns one frame per driving frame with masks and poses; the root-translation solve
recovers a known shift of the person."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from persona.errors import PersonaError  # noqa: E402
from persona.generate import diffusion  # noqa: E402
from persona.generate.driving import plan_driving  # noqa: E402
from persona.generate.generator import GenerateConfig, generate_training_set  # noqa: E402
from persona.generate.video_bench import build_mimicmotion  # noqa: E402
from persona.hub import WEIGHTS_DIR_VARIABLE  # noqa: E402
from persona.perceive.depth import WEIGHTS  # noqa: E402
from photo_subject import photo_subject  # noqa: E402
from tiny_depth import save_tiny_depth_model  # noqa: E402

CONFIG = GenerateConfig(backend="mimicmotion", motions=("walk",), frames_per_motion=4, resolution=64, blend_frames=2)


@pytest.fixture(scope="module")
def subject(body):
    """The body 3 m in front of a 48 x 64 camera; the 'photo' is the first avatar's render."""
    return photo_subject(body, 48, 64, 15.0)


def test_without_gpu_or_weights_the_generator_falls_back_to_synth(subject, monkeypatch):
    def unavailable():
        raise PersonaError("The diffusion generators need a CUDA GPU; none is available here.")

    monkeypatch.setattr(diffusion, "_device", unavailable)
    training = generate_training_set(subject, CONFIG, seed=0)
    assert training.backend == "synth" and training.num_generated == 4 and training.follows_driving_pose
    assert len(training.notes) == 1 and "'mimicmotion'" in training.notes[0] and "CUDA" in training.notes[0]


def test_mimicmotion_backend_end_to_end_with_a_tiny_pipeline(subject, monkeypatch, tmp_path):
    """Frames, masks, poses and (from a tiny depth model in the Hub's layout) relative depth."""
    tiny = build_mimicmotion(torch.device("cpu"), torch.float32, scale="tiny")
    monkeypatch.setattr(diffusion, "_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(diffusion, "load_mimicmotion", lambda device="cpu": tiny)
    monkeypatch.setitem(diffusion.VIDEO_PRESETS, "mimicmotion", {"preview": diffusion.VideoPreset(4, 64, 1, 2.0, tile=4, overlap=1)})
    save_tiny_depth_model(tmp_path / WEIGHTS)
    monkeypatch.setenv(WEIGHTS_DIR_VARIABLE, str(tmp_path))
    training = generate_training_set(subject, CONFIG, seed=0)
    assert training.backend == "mimicmotion" and training.num_generated == 4 and not training.notes
    assert not training.follows_driving_pose  # a video model's frames: their poses are refined loosely
    for frame in training.generated:
        assert frame.image.shape == (64, 48, 3) and frame.mask.shape == (64, 48)
        assert torch.isfinite(frame.image).all() and 0 <= float(frame.image.min()) and float(frame.image.max()) <= 1
        assert frame.pose.batch == 1 and frame.camera.width == 48
        assert frame.depth_relative and frame.depth.shape == (64, 48) and torch.all(frame.depth[frame.mask <= 0.5] == 0)
    photo = training.captured[0]  # the photo's depth, too (geometry weighting weighs it at 0.1)
    assert photo.depth_relative and torch.all(photo.depth[photo.mask <= 0.5] == 0) and float(photo.depth.max()) > 1
    # Without depth weights the frames keep no depth, and the report says why.
    monkeypatch.setenv(WEIGHTS_DIR_VARIABLE, str(tmp_path / "none"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    training = generate_training_set(subject, CONFIG, seed=0)
    assert training.backend == "mimicmotion" and all(f.depth is None for f in training.frames)
    assert len(training.notes) == 1 and "No depth estimates" in training.notes[0]


def test_generation_size_and_preset_choice():
    assert diffusion.generation_size(480, 640, 704, 16) == (528, 704)
    assert diffusion.generation_size(640, 480, 448, 64) == (448, 320)
    assert diffusion.preset_for("mimicmotion", GenerateConfig(frames_per_motion=24)) is diffusion.VIDEO_PRESETS["mimicmotion"]["standard"]
    assert diffusion.preset_for("wan-vace", GenerateConfig(frames_per_motion=12)) is diffusion.VIDEO_PRESETS["wan-vace"]["preview"]
    for rows in diffusion.VIDEO_PRESETS.values():  # the budget: standard <= 20 s of H100
        assert rows["standard"].seconds_h100 <= 20.0


def test_root_translation_recovers_a_known_shift(subject, body):
    plan = plan_driving(body, subject.shape, subject.photo.pose, subject.photo.camera, ("walk",), 6, 64)
    clip = plan.clips[0]
    shift = torch.tensor([0.06, -0.03, 0.0])
    with torch.no_grad():
        X = body.forward(subject.shape[None], clip.poses).keypoints  # (F, K, 3)
    detected = np.zeros(X.shape[:2] + (3,), np.float32)
    for f, camera in enumerate(clip.cameras):
        pixels, _ = camera.project(X[f] + shift)
        detected[f, :, :2] = pixels.numpy()
        detected[f, :, 2] = 0.9
    detected[2, :, 2] = 0.0  # a frame where nobody was found: held by the smoothing
    poses, offset = diffusion.refine_root_translation(body, subject.shape, clip, detected)
    assert offset.shape == (6, 3)
    # x, y are seen directly; depth (z) is weakly observed from 64 px keypoints
    torch.testing.assert_close(offset[:, :2], shift[:2].expand(6, 2), atol=0.01, rtol=0)
    torch.testing.assert_close(poses.translation, clip.poses.translation + offset)
