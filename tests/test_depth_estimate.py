"""The depth estimator of the photo and the generated frames (persona.perceive.depth): its
conversion of an estimated disparity to a relative depth, the real loading code on a tiny
random-weight model in the Hub's format, and the fail-over without weights."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from persona import hub  # noqa: E402
from persona.avatar.losses import affine_aligned  # noqa: E402
from persona.avatar.model import AvatarRig, render_gaussians  # noqa: E402
from persona.perceive.depth import WEIGHTS, DepthEstimator, add_depth_estimates, load_depth_estimator  # noqa: E402
from photo_subject import photo_subject  # noqa: E402
from tiny_depth import save_tiny_depth_model  # noqa: E402


@pytest.fixture(scope="module")
def subject(body):
    return photo_subject(body, 96, 128, 30.0)


def true_depth(subject, body):
    """(H, W) metres where the photo's person is, and that mask."""
    avatar = subject.avatar
    with torch.no_grad():
        means = AvatarRig(body, avatar).pose_points(AvatarRig(body, avatar).rest_points + avatar.offsets, subject.photo.pose)[0]
        out = render_gaussians(avatar, means, subject.photo.camera)
    mask = (out.alpha > 0.5).float()
    return out.depth / out.alpha.clamp(min=1e-6) * mask, mask


class KnownDisparity(torch.nn.Module):
    """Stands in for the network: 'predicts' a fixed disparity map at the input's size."""

    def __init__(self, disparity: torch.Tensor):
        super().__init__()
        self.disparity = disparity

    def forward(self, pixel_values: torch.Tensor):
        size = pixel_values.shape[-2:]
        return SimpleNamespace(predicted_depth=F.interpolate(self.disparity[None, None], size=size, mode="bilinear")[:, 0])


def test_an_estimated_disparity_becomes_a_depth_up_to_scale_and_shift(subject, body):
    """A disparity affine in 1 / depth (what the estimator predicts) comes out affine in depth
    over the person, to a few millimetres, in [1, 2] there and 0 elsewhere."""
    depth, mask = true_depth(subject, body)
    person = mask > 0.5
    disparity = torch.where(person, 2.0 / depth.clamp(min=0.1) + 0.3, torch.zeros_like(depth))
    estimator = DepthEstimator(KnownDisparity(disparity), torch.device("cpu"), input_size=140)
    estimate = estimator(subject.photo.image, mask)
    assert estimate.shape == mask.shape and torch.all(estimate[~person] == 0)
    assert 1.0 <= float(estimate[person].min()) and float(estimate[person].max()) <= 2.0
    inner = (-F.max_pool2d(-mask[None, None], 5, 1, 2))[0, 0] > 0.5  # away from the resampled edge
    error = (affine_aligned(estimate, depth, inner.float()) - depth).abs()[inner]
    assert float(error.mean()) < 0.005, float(error.mean())
    assert torch.all(estimator(subject.photo.image, torch.zeros_like(mask)) == 0)  # nobody: nothing known


def test_a_tiny_model_in_the_hub_layout_estimates_the_photo_and_every_generated_frame(subject, tmp_path, monkeypatch):
    save_tiny_depth_model(tmp_path / "weights" / WEIGHTS)
    monkeypatch.setenv(hub.WEIGHTS_DIR_VARIABLE, str(tmp_path / "weights"))
    estimator = load_depth_estimator("cpu")
    photo = subject.photo
    generated = [
        type(photo)(photo.image, photo.mask, photo.pose, photo.camera, captured=False, motion="walk", index=i) for i in range(2)
    ]  # fmt: skip
    known = type(photo)(photo.image, photo.mask, photo.pose, photo.camera, captured=False, motion="walk", depth=photo.mask.clone())
    frames, notes = add_depth_estimates([photo, *generated, known], estimator=estimator)
    assert not notes and frames[-1] is known  # a frame with depth keeps it
    assert frames[0].captured and photo.depth is None  # the photo gets its estimate in a new frame
    for frame in frames[:-1]:
        assert frame.depth_relative and frame.depth.shape == photo.mask.shape and torch.isfinite(frame.depth).all()
        assert torch.all(frame.depth[photo.mask <= 0.5] == 0) and float(frame.depth[photo.mask > 0.5].min()) >= 1.0


def test_without_weights_the_frames_come_back_unchanged_with_a_note(subject, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv(hub.WEIGHTS_DIR_VARIABLE, raising=False)
    photo = subject.photo
    frame = type(photo)(photo.image, photo.mask, photo.pose, photo.camera, captured=False, motion="walk")
    frames, notes = add_depth_estimates([photo, frame])
    assert frames == [photo, frame] and frames[1].depth is None
    assert len(notes) == 1 and WEIGHTS in notes[0] and "Apache-2.0" in notes[0] and "masks and images alone" in notes[0]


def test_the_timing_benchmark_builds_the_real_architecture_and_times_a_frame(tmp_path):
    """bench/depth_estimate.py: Depth Anything V2 Small's sizes (24.8M parameters, as the Hub's
    model card), loaded by the real loading code, and a timed frame."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "depth_estimate.py"
    spec = importlib.util.spec_from_file_location("depth_estimate_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert round(bench.save_depth_anything_v2_small(tmp_path) / 1e6, 1) == 24.8
    estimator = load_depth_estimator("cpu", local_dir=tmp_path)
    timing = bench.time_preset(estimator, resolution=64, frames=1, warmup=0)
    assert timing["frame_size"] == [48, 64] and timing["seconds_per_frame"] > 0
