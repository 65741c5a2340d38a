"""The avatar stages on CUDA give what they give on the CPU (marked `gpu`: run on the device
machine; skipped with a reason elsewhere).

The subject is a synthetic person (`persona.evaluate.subjects`) photographed in the rest pose,
standing in for the photo stages (perception and the body fit need mediapipe, which the GPU
machine does not carry). Tolerances: gsplat and the reference renderer differ by ~1e-3 per
pixel, and a few dozen Adam steps amplify that, so metrics are compared within 1 dB PSNR and
0.02 IoU, not bit for bit.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch

from persona.avatar.animate import ClipConfig, render_motion
from persona.avatar.optimize import PersonaConfig, optimize_persona
from persona.avatar.texture import project_texture
from persona.body.weight_field import WeightFieldConfig
from persona.config import get_preset
from persona.evaluate.subjects import SUBJECTS, make_subject, render_subject
from persona.evaluate.synthetic import SyntheticConfig, build_scene, evaluate, photo_setup
from persona.generate.motions import get_motion
from persona.io.image import LoadedImage
from persona.perceive.fit import BodyFit
from persona.perceive.person import Perception
from persona.pipeline import Subject, build_avatar, generate_frames, input_view_metrics, refine_avatar

pytestmark = pytest.mark.gpu


def _photo_subject(body) -> Subject:
    """A pipeline `Subject` for a synthetic person, as the photo stages would describe it."""
    subject = make_subject(body, SUBJECTS[0], level=1)
    shape = subject.shape
    pose, camera = photo_setup(body, shape, (192, 256))
    image, alpha = render_subject(subject, body, pose, camera)
    with torch.no_grad():
        posed = body.forward(shape[None], pose).vertices[0]
    head = body.skin_weights[:, [body.joint_index(j) for j in body.head_joints]].sum(1) > 0.5
    texture = project_texture(posed, body.faces, head, camera, image, alpha)
    mask = alpha.numpy().astype(np.float32)
    ys, xs = np.nonzero(mask > 0.5)
    loaded = LoadedImage(image.numpy().astype(np.float32), None, (camera.width, camera.height), 1.0, "synthetic")
    perception = Perception(
        mask, np.zeros((33, 3), np.float32), np.zeros((33, 3), np.float32), None, None, None,
        (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), 1, False,
    )  # fmt: skip
    return Subject(loaded, perception, BodyFit(shape, pose, camera, 0.0, 0.0), texture)


def _run_stages(subject: Subject, device: str):
    from persona.body.anny_model import load_anny

    body = load_anny(device)
    preview = get_preset("preview")
    preset = replace(
        preview,
        input=replace(preview.input, train_size=192),
        avatar=replace(preview.avatar, iterations=40),
        generate=replace(preview.generate, frames_per_motion=4, resolution=128),
        persona=replace(preview.persona, iterations=30),
    )
    avatar, rig, _, first = build_avatar(subject, body, preset)
    training_set = generate_frames(subject, body, avatar, rig, preset, seed=0)
    avatar, rig, stats = refine_avatar(avatar, body, training_set, preset)
    photo = training_set.captured[0]
    final = input_view_metrics(avatar, rig, photo.image, photo.mask, photo.camera, 0.0)
    frames = list(itertools.islice(render_motion(avatar, rig, get_motion("walk"), ClipConfig(size=128)), 3))
    return avatar, training_set, stats, first, final, frames


def test_the_avatar_stages_run_on_cuda_as_on_the_cpu(body):
    subject = _photo_subject(body)
    on_cpu = _run_stages(subject, "cpu")
    on_gpu = _run_stages(subject, "cuda")
    avatar, training_set, stats, first, final, frames = on_gpu
    assert avatar.offsets.device.type == "cuda" and avatar.deformer.triplane.device.type == "cuda"
    assert all(f.image.device.type == "cuda" for f in training_set.frames)
    assert stats.loop_seconds > 0 and len(stats.losses) == 3
    assert len(frames) == 3 and frames[0].shape == (128, 128, 3) and frames[0].dtype == np.uint8
    for cpu, gpu in ((on_cpu[3], first), (on_cpu[4], final)):
        print(f"input view: cpu {cpu}, cuda {gpu}")
        assert abs(cpu.psnr_in_mask_db - gpu.psnr_in_mask_db) < 1.0 and abs(cpu.silhouette_iou - gpu.silhouette_iou) < 0.02
    difference = np.abs(on_cpu[5][0].astype(np.float32) - frames[0].astype(np.float32)).mean()
    print(f"first animation frame: mean |cpu - cuda| = {difference:.2f} / 255")
    assert difference < 4.0


def test_the_synthetic_benchmark_runs_on_cuda_as_on_the_cpu(body):
    from persona.body.anny_model import load_anny

    config = SyntheticConfig(
        subjects=1, avatar_level=0, photo_size=(48, 64), resolution=64, frames_per_motion=3, heldout_per_motion=1,
        first_iterations=20,
        persona=PersonaConfig(iterations=24, skinning=WeightFieldConfig(resolution=16)),
    )  # fmt: skip
    metrics = {}
    for device in ("cpu", "cuda"):
        gpu_body = load_anny(device)
        with torch.device(device):
            subject = make_subject(gpu_body, SUBJECTS[0], level=1)
        scene = build_scene(gpu_body, subject, config, seed=0)
        avatar, _ = optimize_persona(scene.first_avatar, gpu_body, scene.training_set, config.persona)
        assert avatar.offsets.device.type == device
        metrics[device] = evaluate(avatar, gpu_body, scene)
    print(metrics)
    assert abs(metrics["cpu"]["psnr_heldout"] - metrics["cuda"]["psnr_heldout"]) < 1.0
    assert abs(metrics["cpu"]["iou_heldout"] - metrics["cuda"]["iou_heldout"]) < 0.02
