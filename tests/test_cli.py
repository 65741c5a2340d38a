"""End to end through the command line, on the bundled example photo (real models, real
renderer, real video files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from persona.avatar.storage import load_avatar
from persona.errors import PersonaError
from persona.io.ply import read_gaussian_ply
from persona.io.video import read_video_frames

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE = next(p for p in (EXAMPLES / "person_full.jpg", EXAMPLES / "person_half.png") if p.exists())


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "persona", *args], capture_output=True, text=True, timeout=1200, cwd=cwd
    )


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("made")
    result = run_cli("make", str(EXAMPLE), "-o", str(out), "--preset", "preview", "--motion", "wave")
    assert result.returncode == 0, result.stderr
    return out, result


def test_make_writes_every_file(made):
    out, result = made
    for name in ("avatar.ply", "avatar.persona", "animation.mp4", "turntable.mp4", "input_view.png", "report.json"):
        assert (out / name).is_file(), name
    assert "Traceback" not in result.stderr
    assert list(out.glob("*.tmp*")) == []  # no half-written files left behind


def test_report_and_input_view_match_the_photo(made):
    out, _ = made
    report = json.loads((out / "report.json").read_text())
    print("report metrics:", report["metrics"], "seconds:", report["seconds"])
    assert report["metrics"]["silhouette_iou"] >= 0.85
    assert report["metrics"]["psnr_in_mask_db"] >= 20.0
    assert set(report["seconds"]) >= {"perceive", "fit", "avatar", "animation", "turntable", "total"}
    assert report["versions"]["anny"] and report["preset"] == "preview"
    view = Image.open(out / "input_view.png")
    original = Image.open(EXAMPLE)
    assert view.mode == "RGBA" and view.size == original.size
    alpha = np.asarray(view)[..., 3]
    assert 0.05 < (alpha > 127).mean() < 0.9  # the person covers part of the frame


def test_report_names_the_training_video_generator(made):
    report = json.loads((made[0] / "report.json").read_text())
    assert report["generator"] == "synth" and report["generator_motions"] == ["walk", "dance"]
    assert report["generated_frames"] == 24 and "generate" in report["seconds"]


def test_clips_are_h264_and_stay_human_shaped(made):
    out, _ = made
    for name in ("animation.mp4", "turntable.mp4"):
        frames = read_video_frames(out / name)
        assert frames.shape[0] >= 48
        coverage = (frames.min(-1) < 200).mean(axis=(1, 2))  # non-white pixels per frame
        # Neither exploding (filling the frame) nor vanishing Gaussians, in every frame.
        assert (coverage > 0.02).all() and (coverage < 0.6).all(), name
        assert coverage.max() / coverage.min() < 4, name


def test_ply_and_package_reload(made, body):
    out, _ = made
    ply = read_gaussian_ply(out / "avatar.ply")
    avatar = load_avatar(out / "avatar.persona", body)
    assert len(ply) == avatar.num_gaussians
    heights = ply.means[:, 1].max() - ply.means[:, 1].min()
    assert 1.2 < heights < 2.2  # metres, Y up
    assert np.isfinite(ply.means).all()
    assert torch.allclose(torch.from_numpy(ply.colors), avatar.colors.clamp(0, 1), atol=1e-5)


def test_animate_a_saved_avatar(made, tmp_path):
    out, _ = made
    clip = tmp_path / "jump.mp4"
    result = run_cli("animate", str(out / "avatar.persona"), "--motion", "jump", "-o", str(clip), "--size", "256")
    assert result.returncode == 0, result.stderr
    frames = read_video_frames(clip)
    assert frames.shape[1:] == (256, 256, 3) and frames.shape[0] >= 48


def test_motions_lists_the_library():
    result = run_cli("motions")
    assert result.returncode == 0
    assert {"walk", "wave", "turn_around", "jump", "dance"} <= {line.split()[0] for line in result.stdout.splitlines()}


@pytest.mark.parametrize(
    "make_input, expected",
    [
        (lambda d: d / "missing.jpg", "does not exist"),
        (lambda d: (d / "notes.jpg").write_text("hello") and d / "notes.jpg", "not an image"),
        (lambda d: Image.new("RGB", (400, 300), "white").save(d / "blank.png") or d / "blank.png", "No person"),
        (lambda d: EXAMPLES / "person_bust.jpg", "hips"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, make_input, expected):
    image = make_input(tmp_path)
    out = tmp_path / "out"
    result = run_cli("make", str(image), "-o", str(out))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("persona: error: "), result.stderr
    assert expected.lower() in lines[0].lower()
    assert not any(out.glob("*")) if out.exists() else True


def test_a_corrupt_package_is_refused(tmp_path, body):
    bad = tmp_path / "bad.persona"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    result = run_cli("animate", str(bad), "-o", str(tmp_path / "x.mp4"))
    assert result.returncode == 2 and result.stderr.startswith("persona: error: ")
    with pytest.raises(PersonaError):
        load_avatar(bad, body)


def test_the_same_photo_preset_and_seed_give_the_same_avatar(made, tmp_path):
    out, _ = made
    again = tmp_path / "again"
    result = run_cli("make", str(EXAMPLE), "-o", str(again), "--preset", "preview", "--motion", "wave")
    assert result.returncode == 0, result.stderr
    for name in ("avatar.persona", "avatar.ply", "input_view.png"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
