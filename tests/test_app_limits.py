"""The app's limits and failure handling, in this process (issue 10, item 3): a GPU
out-of-memory error retried once lower or reported clearly, the time limit of a request step,
cancellation leaving no half-written file, failed jobs and old sessions cleaned from disk,
motion and clip limits, and the queue's concurrency settings. The launched app is tested in
tests/test_app.py."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
import torch
from bad_inputs import EXAMPLES, long_motion, small_package

from persona.errors import PersonaError
from persona.io.image import load_image
from persona.io.video import read_video_frames
from persona.pipeline import MakeOptions, PreparedSubject, Subject

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def space():
    """app.py imported here (builds the UI, no server; a few seconds)."""
    spec = importlib.util.spec_from_file_location("space_app_limits", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sessions(space, tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(space, "SESSIONS", tmp_path / "sessions")
    return tmp_path / "sessions"


@pytest.fixture(scope="module")
def package(tmp_path_factory, body) -> Path:
    return small_package(tmp_path_factory.mktemp("package") / "avatar.persona", body)


def prepared_for(preset: str) -> PreparedSubject:
    """A prepared subject with a real loaded photo (perception and fit are not needed here)."""
    image = load_image(EXAMPLES / "person_half.png", max_side=256)
    return PreparedSubject(Subject(image, None, None, None), MakeOptions(preset=preset), {})


# --- GPU out of memory --------------------------------------------------------------------------


def test_out_of_memory_on_make_is_retried_once_on_the_lower_preset(space, monkeypatch, tmp_path):
    calls = []

    def finish(prepared, folder, progress=None):
        calls.append((prepared.options.preset, list(prepared.subject.image.notes), sorted(p.name for p in Path(folder).iterdir())))
        if prepared.options.preset == "high":
            (Path(folder) / "avatar.ply").write_bytes(b"a complete file of the first attempt")
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "result"

    monkeypatch.setattr(space, "finish_avatar", finish)
    original = prepared_for("high")
    assert space.finish_with_fallback(original, str(tmp_path)) == "result"
    assert [c[0] for c in calls] == ["high", "standard"]
    assert any("ran out of memory" in note and "'standard'" in note for note in calls[1][1])  # in the report's warnings
    assert calls[1][2] == []  # the first attempt's files were removed before the retry
    assert original.options.preset == "high" and not any("memory" in note for note in original.subject.image.notes)  # untouched


def test_the_lower_preset_keeps_the_generator_and_at_most_its_own_most_frames(space, monkeypatch, tmp_path):
    from dataclasses import replace

    seen = []

    def finish(prepared, folder, progress=None):
        seen.append((prepared.options.preset, prepared.options.frames_per_motion, prepared.options.generator))
        if len(seen) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return "result"

    monkeypatch.setattr(space, "finish_avatar", finish)
    original = prepared_for("high")
    original = replace(original, options=replace(original.options, frames_per_motion=100, generator="wan-vace"))
    assert space.finish_with_fallback(original, str(tmp_path)) == "result"
    assert seen == [("high", 100, "wan-vace"), ("standard", 72, "wan-vace")]  # standard accepts at most 3 x 24


@pytest.mark.parametrize("preset, message", [("preview", "even with the 'preview' preset"), ("standard", "'standard' and the 'preview'")])
def test_out_of_memory_twice_is_one_clear_sentence(space, monkeypatch, tmp_path, preset, message):
    def finish(prepared, folder, progress=None):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(space, "finish_avatar", finish)
    with pytest.raises(gr.Error) as info:
        space.finish_on_gpu(prepared_for(preset), str(tmp_path))
    assert message in info.value.message and "Traceback" not in info.value.message


def test_out_of_memory_on_animate_is_retried_at_half_the_size(space, monkeypatch, tmp_path, package):
    real = space.animate_avatar
    sizes, fits = [], {"largest": 128}  # the GPU "fits" clips up to this size

    def animate(package, motion, output, clip, progress=None, device="cpu"):
        sizes.append(clip.size)
        if clip.size > fits["largest"]:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(package, motion, output, clip, progress, device=device)

    monkeypatch.setattr(space, "animate_avatar", animate)
    motion = str(long_motion(tmp_path, 6))
    clip = space.animate_on_gpu(str(package), motion, str(tmp_path / "clip.mp4"), 256)
    assert sizes == [256, 128] and read_video_frames(clip).shape == (6, 128, 128, 3)
    sizes.clear()
    fits["largest"] = 0
    with pytest.raises(gr.Error, match="ran out of memory rendering this clip at 128 px"):
        space.animate_on_gpu(str(package), motion, str(tmp_path / "again.mp4"), 128)
    assert sizes == [128] and not (tmp_path / "again.mp4").exists()


def test_memory_errors_elsewhere_are_reported_not_dumped(space):
    with pytest.raises(gr.Error, match="ran out of memory while doing it"):
        with space.user_errors("doing it"):
            raise MemoryError()


# --- time limit and cancellation ---------------------------------------------------------------


def test_a_step_past_its_time_limit_stops_with_nothing_half_written(space, tmp_path, package):
    out = tmp_path / "clip.mp4"
    with pytest.raises(PersonaError, match="took longer than the 0 s allowed"):
        space.animate_avatar(str(package), str(long_motion(tmp_path, 30)), out, space.ClipConfig(size=64), space.reporter(None, 0.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long_30.npz"]  # no clip, no temporary file
    report = space.reporter(None, 60.0)
    report(0.5, "well within the limit")  # no error


def test_cancelling_mid_clip_leaves_no_file(space, tmp_path, package):
    """Ctrl-C (or a cancelled job) while frames are being encoded: the final name never
    appears and the temporary file is gone."""
    seen = []

    def cancel_after_five_frames(fraction, message):
        seen.append(message)
        if len(seen) == 5:
            raise KeyboardInterrupt

    out = tmp_path / "clip.mp4"
    with pytest.raises(KeyboardInterrupt):
        space.animate_avatar(str(package), str(long_motion(tmp_path, 30)), out, space.ClipConfig(size=64), cancel_after_five_frames)
    assert len(seen) == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["long_30.npz"]


# --- disk ----------------------------------------------------------------------------------------


def test_a_failed_job_takes_its_folder_with_it(space, sessions):
    request = SimpleNamespace(session_hash="client-1")
    with pytest.raises(gr.Error):
        with space.job_folder(request, "avatar") as folder:
            (folder / "avatar.ply").write_bytes(b"complete, but the job failed later")
            raise gr.Error("the GPU step failed")
    assert not folder.exists()
    with space.job_folder(request, "avatar") as kept:
        (kept / "avatar.ply").write_bytes(b"ok")
    assert kept.is_dir()


def test_old_jobs_and_stale_sessions_are_removed(space, sessions):
    request = SimpleNamespace(session_hash="client-2")
    jobs = []
    for _ in range(space.JOBS_KEPT["avatar"] + 2):
        jobs.append(space.new_job_folder(request, "avatar"))
        time.sleep(0.02)  # distinct modification times
    assert [job.exists() for job in jobs] == [False, False] + [True] * space.JOBS_KEPT["avatar"]
    stale = space.session_folder(SimpleNamespace(session_hash="gone-client"))
    (stale / "avatar" / "job").mkdir(parents=True)
    old = time.time() - space.SESSION_MAX_AGE_S - 60
    os.utime(stale, (old, old))
    space.new_job_folder(request, "clip")
    assert not stale.exists() and space.session_folder(request).is_dir()
    space.end_session(request)
    assert not space.session_folder(request).exists()


# --- limits ------------------------------------------------------------------------------------


def test_motion_and_clip_limits(space, tmp_path):
    too_long = str(long_motion(tmp_path, space.MAX_MOTION_FRAMES + 1))
    with pytest.raises(gr.Error, match=f"at most {space.MAX_MOTION_FRAMES}"):
        space.make_options("preview", "walk", 0, too_long)
    assert space.check_motion(str(long_motion(tmp_path, 200)), 384) == "long_200"
    with pytest.raises(gr.Error, match="at most 337 frames at 1024 px"):
        space.check_motion(str(long_motion(tmp_path, 400)), 1024)
    for seed in ("abc", -1, 2**64):
        with pytest.raises(gr.Error, match="seed"):
            space.make_options("preview", "walk", seed, None)


def test_the_make_queue_allows_its_concurrency_on_every_event(space):
    """Events sharing a concurrency_id run at the lowest limit among them: each must state it,
    or gradio's default of 1 would serialise every make even on ZeroGPU."""
    limits = {fn.concurrency_limit for fn in space.demo.fns.values() if fn.concurrency_id == "make"}
    assert limits == {space.CONCURRENCY}
    assert space.CONCURRENCY == (2 if space.ON_ZEROGPU else 1)
