"""Motion capture of a driving video (`persona.generate.motion_capture`), on real video files
rendered from a known motion: the example photo's textured body (real anny model) in known
poses, tracked by the real mediapipe. About a minute in all on 2 cores (the textured body and
the clip are made once)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from persona.avatar.animate import ClipConfig
from persona.avatar.storage import save_avatar
from persona.errors import PersonaError
from persona.evaluate.capture import clip_camera, foot_sliding, known_motion, place_in_view, render_clip, segment_errors, textured_avatar
from persona.generate.motion_capture import load_capture_cameras
from persona.generate.motions import get_motion
from persona.io.video import read_video_frames, write_video
from persona.io.video_reader import VideoLimits, read_video
from persona.perceive.fit_motion import KeypointRig, bone_transforms_check
from persona.pipeline import animate_from_video, capture_video

FRAMES, FPS = 48, 24.0


@pytest.fixture(scope="module")
def scene(body, tmp_path_factory):
    """The textured body, the true poses and the clip (an H.264 file) of the known motion.
    On one thread: on the shared 2-core machine this took 18 s, against 140 s on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        avatar = textured_avatar(body)
        truth = place_in_view(body, known_motion(FRAMES, FPS))
        frames = render_clip(body, avatar, truth, clip_camera(384, 512))
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path_factory.mktemp("capture")
    video = write_video(folder / "known.mp4", frames, int(FPS))
    return avatar, truth, frames, video


def test_keypoint_shortcut_matches_the_body(body):
    """The fit's linear-skinning keypoints equal the body model's own (under 1 cm)."""
    assert bone_transforms_check(body, place_in_view(body, known_motion(FRAMES, FPS))) < 0.01


def test_capture_recovers_the_known_motion(body, scene, tmp_path):
    _, truth, _, video = scene
    captured = capture_video(video, tmp_path / "motion.npz")
    report = captured.report
    assert report.frames == FRAMES and report.tracked_frames == FRAMES and report.warnings == []
    errors = segment_errors(body, truth, captured.fit.poses)
    direction = float(np.mean(list(errors["direction"].values())))
    geodesic = float(np.mean(list(errors["geodesic"].values())))
    sliding = foot_sliding(body, truth, captured.fit.poses)
    print(f"limb direction error {direction:.1f} deg, geodesic {geodesic:.1f} deg, foot sliding {sliding}")
    assert direction <= 15.0, errors
    assert max(errors["direction"].values()) <= 25.0, errors
    # The right foot never moves in the truth: the capture keeps it within 1.5 cm per frame on average.
    assert sliding["frames"] >= FRAMES and sliding["mean"] <= 1.5 and sliding["p95"] <= 4.0, sliding
    assert captured.fit.contacts[:, 1].mean() > 0.8  # the right foot is found planted

    # The file: any motion loader reads it; its cameras show the body where the video did.
    motion = get_motion(tmp_path / "motion.npz")
    assert motion.num_frames == FRAMES and motion.fps == FPS and motion.skeleton == "anny"
    cameras = load_capture_cameras(tmp_path / "motion.npz", FRAMES)
    assert cameras is not None and (cameras[0].width, cameras[0].height) == (384, 512)
    with torch.no_grad():
        points = KeypointRig(body).keypoints(motion.to_pose(body))
    pixels = torch.stack([c.project(p)[0] for c, p in zip(cameras, points)])
    kp = torch.from_numpy(captured.track.keypoints)
    seen = kp[..., 2] > 0.5
    assert (pixels - kp[..., :2]).norm(dim=-1)[seen].median() < 12.0
    assert json.loads((tmp_path / "motion.json").read_text())["frames"] == FRAMES
    # Grounded and starting at the origin, like imported motions.
    assert motion.translation[0, [0, 2]].abs().max() < 1e-5


def test_lost_frames_are_interpolated_with_a_warning(body, scene, tmp_path):
    _, _, frames, _ = scene
    frames = frames[:24].copy()
    frames[10:14] = 255  # the person disappears for 4 frames
    video = write_video(tmp_path / "gap.mp4", frames, int(FPS))
    captured = capture_video(video)
    assert captured.report.tracked_frames == 20
    assert any("lost in 4 of 24 frames (frames 10-13)" in w for w in captured.report.warnings), captured.report.warnings
    assert np.isfinite(captured.motion.rotations.numpy()).all()


def test_no_person_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    frames = (rng.random((6, 256, 256, 3)) * 60 + 100).astype(np.uint8)
    video = write_video(tmp_path / "empty.mp4", frames, 24)
    with pytest.raises(PersonaError, match="No person was found in the video"):
        capture_video(video)


def test_bad_and_too_long_videos_are_refused(tmp_path):
    frames = np.full((30, 64, 64, 3), 200, np.uint8)
    video = write_video(tmp_path / "long.mp4", frames, 24)
    with pytest.raises(PersonaError, match="more than 20 frames"):
        read_video(video, VideoLimits(max_frames=20))
    with pytest.raises(PersonaError, match="lasts 1.2 s; at most 0.5 s"):
        read_video(video, VideoLimits(max_seconds=0.5))
    assert read_video(video, VideoLimits(max_fps=12)).num_frames == 15  # 24 fps read at 12
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 100)
    with pytest.raises(PersonaError, match="could not be read"):
        read_video(fake)
    with pytest.raises(PersonaError, match="does not exist"):
        read_video(tmp_path / "missing.mp4")


def test_cli_capture_and_side_by_side_animation(body, scene, tmp_path, capsys):
    from persona.cli import main

    avatar, _, frames, _ = scene
    video = write_video(tmp_path / "short.mp4", frames[:16], int(FPS))
    assert main(["capture", str(video), "-o", str(tmp_path / "short.npz")]) == 0
    assert get_motion(tmp_path / "short.npz").num_frames == 16
    package = tmp_path / "avatar.persona"
    save_avatar(package, avatar, {"preset": "preview"})
    out = tmp_path / "side.mp4"
    assert main(["animate", str(package), "--motion", str(video), "--side-by-side", "--size", "128", "-o", str(out)]) == 0
    clip = read_video_frames(out)
    assert clip.shape == (16, 128, 96 + 96, 3)  # the 384x512 video scaled to 96x128, then the avatar
    right = clip[:, :, 96:].astype(np.float32)
    assert (right.mean(-1) < 200).mean() > 0.05  # the avatar is drawn, not an empty frame
    assert main(["animate", str(package), "--motion", "walk", "--side-by-side", "-o", str(out)]) == 2
    assert "needs a video" in capsys.readouterr().err
    result = animate_from_video(package, video, tmp_path / "plain.mp4", ClipConfig(size=160))
    assert result.capture.frames == 16 and read_video_frames(result.video).shape[1:] == (160, 120, 3)


