"""The Space app end to end: the real `app.py` served on localhost (CPU, preview preset) and
called through `gradio_client` as a programmer would, starting with the README's example.

Two real makes run at once (the README example and a second client) and everything else
reuses their outputs, so the module takes about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from persona.avatar.storage import load_avatar
from persona.body.anny_model import load_anny
from persona.io.ply import read_gaussian_ply
from persona.io.video import read_video_frames

from bad_inputs import ACCEPTED_PHOTOS, BAD_MOTIONS, BAD_PACKAGES, BAD_PHOTOS, long_motion, small_package, write_bad_package

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MAX_UPLOAD_MB = 20  # the served app's upload limit here (the examples and packages are far smaller)
STARTUP_TIMEOUT_S = 600  # the first start on a fresh machine builds anny's cache (about 85 s on 2 cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(folder: Path):
    """Serve `app.py` on a free localhost port in a subprocess; yields (url, its
    GRADIO_TEMP_DIR). Stops it at the end; its log is `folder/app.log`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    temp_dir = folder / "gradio"
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(temp_dir),
        "GRADIO_EXAMPLES_CACHE": str(folder / "examples-cache"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_HEARTBEAT_INTERVAL": "1",  # so a closed client ends its session within seconds
        "HF_HUB_OFFLINE": "1",
        "PERSONA_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
    }
    log_path = folder / "app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not answer within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(1)
            yield url, temp_dir
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def readme_client_example() -> str:
    """The Python block of the README section "The app and its API"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The app and its API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def session_folder(temp_dir: Path, client) -> Path:
    """Where app.py keeps this client's files (see `app.session_folder`)."""
    return temp_dir / "persona-sessions" / hashlib.sha256(client.session_hash.encode()).hexdigest()[:24]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app")) as (url, temp_dir):
        yield SimpleNamespace(url=url, temp_dir=temp_dir)


@pytest.fixture(scope="module")
def made(app, tmp_path_factory):
    """Two makes at once: the README example (client A, walk) and client B (wave, seed 1)."""
    from gradio_client import Client, handle_file

    code = readme_client_example()
    downloads_a, downloads_b = tmp_path_factory.mktemp("client_a"), tmp_path_factory.mktemp("client_b")
    for literal in ('Client("USER/persona")', '"photo.jpg"'):
        assert literal in code, f"the README example no longer contains {literal}"
    code = code.replace('Client("USER/persona")', f"Client({app.url!r}, download_files={str(downloads_a)!r}, verbose=False)")
    code = code.replace('"photo.jpg"', repr(str(EXAMPLES / "person_half.png")))
    readme_vars: dict = {}
    errors: list[BaseException] = []

    def run_readme_example():
        try:
            exec(compile(code, "README.md example", "exec"), readme_vars)
        except BaseException as err:  # re-raised below, in the test's thread
            errors.append(err)
        finished["A"] = time.monotonic() - start

    client_b = Client(app.url, download_files=str(downloads_b), verbose=False)
    finished: dict[str, float] = {}
    start = time.monotonic()
    thread = threading.Thread(target=run_readme_example)
    thread.start()
    job_b = client_b.submit(handle_file(str(EXAMPLES / "person_half.png")), "preview", "wave", 1, api_name="/make_avatar")
    outputs_b = job_b.result(timeout=900)
    finished["B"] = time.monotonic() - start
    thread.join(timeout=900)
    print(f"two makes at once: B done after {finished['B']:.0f} s, A (README example, with /animate) after {finished.get('A', -1):.0f} s")
    if errors:
        raise errors[0]
    yield SimpleNamespace(readme=readme_vars, b=outputs_b, client_b=client_b, downloads_a=downloads_a, downloads_b=downloads_b)
    client_b.close()
    readme_vars["client"].close()


def check_clip(path, size: int, min_frames: int = 48) -> np.ndarray:
    frames = read_video_frames(path)
    assert frames.shape[0] >= min_frames and frames.shape[1:] == (size, size, 3), frames.shape
    assert (frames.min(-1) < 200).mean() > 0.02  # something is drawn on the white background
    return frames


def test_make_avatar_returns_the_clips_and_the_files(made):
    ns = made.readme
    animation, turntable, ply, package, report = ns["animation"], ns["turntable"], ns["ply"], ns["package"], ns["report"]
    for path, name in ((animation, "animation.mp4"), (turntable, "turntable.mp4"), (ply, "avatar.ply"), (package, "avatar.persona")):
        assert Path(path).is_file() and Path(path).name == name, path
        assert Path(path).is_relative_to(made.downloads_a)
    check_clip(animation, 384)
    check_clip(turntable, 384)
    gaussians = read_gaussian_ply(ply)
    avatar = load_avatar(package, load_anny())
    assert len(gaussians) == avatar.num_gaussians == report["num_gaussians"]
    assert report["preset"] == "preview" and report["motion"] == "walk" and report["seed"] == 0
    assert {"perceive", "fit", "avatar", "animation", "turntable", "total"} <= set(report["seconds"])
    assert report["licences"] and isinstance(report["warnings"], list)
    assert report["metrics"]["silhouette_iou"] > 0.8


def test_animate_makes_a_new_clip_from_the_package(made):
    clip = made.readme["clip"]
    assert Path(clip).is_file() and Path(clip).suffix == ".mp4" and clip != made.readme["animation"]
    frames = check_clip(clip, 384, min_frames=1)
    assert frames.shape[0] == 60  # the built-in jump: 2.5 s at 24 fps


def test_two_clients_at_once_get_their_own_files(app, made):
    animation, turntable, ply, package, report = made.b
    assert report["motion"] == "wave" and report["seed"] == 1
    assert made.readme["report"]["motion"] == "walk"
    for path in (animation, turntable, ply, package):
        assert Path(path).is_file() and Path(path).is_relative_to(made.downloads_b)
    check_clip(animation, 384)
    assert Path(animation).read_bytes() != Path(made.readme["animation"]).read_bytes()  # wave, not walk
    # On the server each client's make wrote into its own session's folder.
    folders = [session_folder(app.temp_dir, client) for client in (made.readme["client"], made.client_b)]
    assert folders[0] != folders[1]
    for folder in folders:
        assert len(list(folder.glob("avatar/*/avatar.persona"))) == 1, folder


def test_animate_without_a_file_reuses_the_sessions_last_avatar(made):
    clip = made.client_b.predict(None, "turn_around", None, 256, api_name="/animate")
    frames = check_clip(clip, 256, min_frames=1)
    assert frames.shape[0] == 96  # turn_around: 4 s at 24 fps


def test_check_photo_shows_the_person_and_the_fit(app, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app.url, download_files=str(tmp_path), verbose=False)
    preview, summary = client.predict(handle_file(str(EXAMPLES / "person_half.png")), "preview", api_name="/check_photo")
    client.close()
    from PIL import Image

    assert Image.open(preview).size == tuple(summary["working_size"]) == (512, 512)
    assert summary["people_found"] == 1 and summary["cut_off"] is True and summary["keypoint_error_px"] < 20


def assert_projects_message(info, expected: str) -> str:
    message = str(info.value)
    assert expected.lower() in message.lower(), message
    assert "Traceback" not in message and 'File "' not in message and "Something went wrong" not in message, message
    return message


@pytest.mark.parametrize("case", BAD_PHOTOS, ids=[c[0] for c in BAD_PHOTOS])
def test_a_bad_photo_gets_the_projects_message(app, tmp_path, case):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    name, write, expected = case
    client = Client(app.url, download_files=str(tmp_path / "downloads"), verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(write(tmp_path))), "preview", "walk", 0, api_name="/make_avatar")
    assert_projects_message(info, expected)
    folder = session_folder(app.temp_dir, client)
    assert not folder.exists() or not list(folder.glob("avatar/*")), "a failed make left its job folder"
    client.close()


@pytest.fixture(scope="module")
def small_avatar(tmp_path_factory) -> Path:
    return small_package(tmp_path_factory.mktemp("small_avatar") / "avatar.persona", load_anny())


@pytest.mark.parametrize("case", BAD_PACKAGES, ids=[c[0] for c in BAD_PACKAGES])
def test_a_bad_package_gets_the_projects_message(app, tmp_path, small_avatar, case):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    package, marker = write_bad_package(tmp_path, case, small_avatar.read_bytes())
    client = Client(app.url, download_files=str(tmp_path / "downloads"), verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(package)), "jump", None, 128, api_name="/animate")
    assert_projects_message(info, case[2])
    assert not marker.exists(), "the package was unpickled"
    folder = session_folder(app.temp_dir, client)
    assert not folder.exists() or not list(folder.glob("clip/*")), "a failed clip left its job folder"
    client.close()


@pytest.mark.parametrize("case", BAD_MOTIONS, ids=[c[0] for c in BAD_MOTIONS])
def test_a_bad_motion_file_gets_the_projects_message(app, tmp_path, small_avatar, case):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    name, write, expected = case
    marker = tmp_path / "UNPICKLED"
    path = write(tmp_path, marker)
    motion = handle_file(str(path))
    if path.suffix not in (".npz", ".bvh"):  # gradio refuses it first, by the component's file_types
        expected = "Invalid file type"
    client = Client(app.url, download_files=str(tmp_path / "downloads"), verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(small_avatar)), "jump", motion, 128, api_name="/animate")
    assert_projects_message(info, expected)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(EXAMPLES / "person_half.png")), "preview", "walk", 0, motion, api_name="/make_avatar")
    assert_projects_message(info, expected)
    assert not marker.exists(), "the motion file was unpickled"
    client.close()


@pytest.mark.parametrize(
    "motion_frames, size, expected",
    [(721, 384, "at most 720"), (400, 1024, "at most 337 frames at 1024 px"), (6, 2048, "maximum value 1024")],  # the last one refused by gradio's slider
)
def test_request_limits_on_frames_and_size(app, tmp_path, small_avatar, motion_frames, size, expected):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app.url, download_files=str(tmp_path / "downloads"), verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(small_avatar)), "jump", handle_file(str(long_motion(tmp_path, motion_frames))), size, api_name="/animate")
    assert_projects_message(info, expected)
    client.close()


def test_a_driving_video_without_a_person_gets_the_projects_message(app, tmp_path, small_avatar):
    """/animate with a video as the motion: the upload reaches the motion capture, whose
    refusal comes back as the one-line message (the capture itself is tested on a rendered
    person in test_motion_capture.py)."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from persona.io.video import write_video

    frames = (np.random.default_rng(0).random((6, 128, 128, 3)) * 60 + 100).astype(np.uint8)
    video = write_video(tmp_path / "nobody.mp4", frames, 24)
    client = Client(app.url, download_files=str(tmp_path / "downloads"), verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(
            handle_file(str(small_avatar)), "jump", None, 128, handle_file(str(video)), True, api_name="/animate"
        )
    assert_projects_message(info, "No person was found in the video")
    folder = session_folder(app.temp_dir, client)
    assert not folder.exists() or not list(folder.glob("clip/*")), "a failed clip left its job folder"
    client.close()


def test_an_upload_over_the_size_limit_is_refused(app, tmp_path):
    """gradio_client refuses it before sending (it reads the limit from the app's config), and
    the server refuses a raw upload over the limit (HTTP 413) without keeping it."""
    import httpx
    from gradio_client import Client, handle_file

    big = tmp_path / "big.jpg"
    big.write_bytes((EXAMPLES / "person_bust.jpg").read_bytes() + bytes((MAX_UPLOAD_MB + 1) << 20))
    client = Client(app.url, download_files=str(tmp_path / "downloads"), verbose=False)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        client.predict(handle_file(str(big)), "preview", "walk", 0, api_name="/make_avatar")
    client.close()
    with open(big, "rb") as f:
        response = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.jpg", f, "image/jpeg")}, timeout=60)
    assert response.status_code == 413, (response.status_code, response.text[:200])
    assert not list(app.temp_dir.rglob("big.jpg"))


def test_a_corrupt_package_gets_the_projects_message(app, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "avatar.persona"
    bad.write_bytes(b"PK\x03\x04 not a zip at all")
    client = Client(app.url, download_files=str(tmp_path), verbose=False)
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(bad)), "jump", api_name="/animate")
    client.close()
    assert "avatar.persona" in str(info.value) and "Traceback" not in str(info.value), str(info.value)


def test_a_motion_file_drives_animate_and_the_session_folder_goes_with_the_client(app, made, tmp_path):
    from dataclasses import replace

    from gradio_client import Client, handle_file

    from persona.generate.motions import MOTIONS

    wave = MOTIONS["wave"]()
    short = replace(wave, rotations=wave.rotations[:12], global_orient=wave.global_orient[:12], translation=wave.translation[:12])
    short.save(tmp_path / "short_wave.npz")
    client = Client(app.url, download_files=str(tmp_path / "downloads"), verbose=False)
    clip = client.predict(handle_file(made.b[3]), "jump", handle_file(str(tmp_path / "short_wave.npz")), 128, api_name="/animate")
    assert read_video_frames(clip).shape == (12, 128, 128, 3)  # the file's 12 frames, not the built-in jump
    folder = session_folder(app.temp_dir, client)
    assert folder.is_dir() and any(folder.rglob("*.mp4"))
    client.close()
    deadline = time.monotonic() + 30
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not folder.exists(), "the session folder outlived its session"
    assert session_folder(app.temp_dir, made.client_b).is_dir()  # other sessions keep theirs


def test_frames_and_generator_reach_the_pipeline_and_the_report(app, tmp_path):
    """/make_avatar's later arguments (appended with defaults; here by name): 6 generated frames
    per motion, and the wan-vace generator, which on this CPU machine falls back to synth: the
    avatar is made, and the report says which generator made the frames and why. A frame count
    outside the preset's range is refused with the project's message before any work."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app.url, download_files=str(tmp_path), verbose=False)
    photo = handle_file(str(EXAMPLES / "person_half.png"))
    with pytest.raises(AppError) as info:
        client.predict(photo, "preview", "jump", 0, frames=500, api_name="/make_avatar")
    assert_projects_message(info, "from 4 to 36 with the 'preview' preset")
    *_, report = client.predict(photo, "preview", "jump", 0, frames=6, generator="wan-vace", api_name="/make_avatar")
    client.close()
    assert (report["generator_requested"], report["generator"], report["frames_per_motion"]) == ("wan-vace", "synth", 6)
    assert report["generated_frames"] == 6 * len(report["generator_motions"]) == 12
    fallback = [w for w in report["warnings"] if "'wan-vace' generator was not available" in w]
    assert len(fallback) == 1 and "CUDA" in fallback[0] and "'synth'" in fallback[0], report["warnings"]
    assert not any("training-video generator" in name for name in report["licences"])  # synth made them


def test_declared_gpu_time_fits_an_unauthenticated_visitor():
    """ZeroGPU multiplies the declared duration by 1.5 and refuses calls above the visitor's
    quota (120 s unauthenticated): a standard avatar must declare at most 80 s."""
    import importlib.util

    from persona.generate.motions import MOTIONS
    from persona.pipeline import MakeOptions

    spec = importlib.util.spec_from_file_location("space_app", ROOT / "app.py")
    space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(space)  # builds the UI (no server) and loads anny, a few seconds

    def seconds(preset: str, motion: str, **generation) -> int:
        options = MakeOptions(preset=preset, motion=motion, **generation)
        return space.make_gpu_seconds(SimpleNamespace(options=options), "unused")

    longest = max(MOTIONS, key=lambda name: MOTIONS[name]().num_frames)
    assert seconds("standard", longest) * 1.5 <= 120
    assert seconds("preview", longest) < seconds("standard", longest) < seconds("high", longest)
    assert seconds("preview", "jump") < seconds("preview", longest)
    # More generated frames, or a diffusion generator (model loading + generation), declare more.
    standard = seconds("standard", longest)
    assert seconds("standard", longest, frames_per_motion=4) < standard < seconds("standard", longest, frames_per_motion=72)
    assert standard < seconds("standard", longest, generator="wan-vace") <= space.MAX_GPU_SECONDS
    assert seconds("high", longest, frames_per_motion=108, generator="mimicmotion") == space.MAX_GPU_SECONDS
    line = space.generator_line(
        {"generated_frames": 12, "generator": "synth", "generator_requested": "wan-vace", "frames_per_motion": 6,
         "generator_motions": ["walk", "dance"]}
    )  # fmt: skip
    assert "12 generated by `synth`" in line and "`wan-vace` was asked for but was not available" in line
    assert space.animate_gpu_seconds("unused", longest, "unused", 384) * 1.5 <= 30


def test_the_viewer_copy_stands_upright_in_gsplat_js_axes(tmp_path):
    """Model3D's splat viewer (gsplat.js) is Y-down: the display copy is turned about X,
    centred and scaled; the same Gaussians otherwise."""
    from persona.io.ply import write_gaussian_ply
    from persona.pipeline import viewer_ply

    rng = np.random.default_rng(0)
    means = rng.uniform([-0.3, 0.0, -0.2], [0.3, 1.8, 0.2], (200, 3)).astype(np.float32)  # Y up, feet at 0
    quats = rng.normal(size=(200, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    scales = np.full((200, 3), 0.01, np.float32)
    write_gaussian_ply(tmp_path / "avatar.ply", means, scales, quats, np.full(200, 0.9, np.float32), rng.uniform(0, 1, (200, 3)))
    view = read_gaussian_ply(viewer_ply(tmp_path / "avatar.ply", tmp_path / "view.ply", height=1.1))
    factor = 1.1 / np.ptp(means[:, 1])
    head = means[:, 1].argmax()
    assert view.means[head, 1] == pytest.approx(-0.55, abs=1e-5)  # the head on top: -Y
    assert np.allclose(np.ptp(view.means, 0), np.ptp(means, 0) * factor, atol=1e-5)
    assert np.allclose(view.scales, scales * factor, atol=1e-6)
    # Each rotation turned by 180 degrees about X: R' = Rx R, Rx = diag(1, -1, -1).
    def matrix(q):
        w, x, y, z = q
        return np.array([
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ])  # fmt: skip
    for i in range(5):
        assert np.allclose(matrix(view.quats[i]), np.diag([1, -1, -1]) @ matrix(quats[i]), atol=1e-5)


def test_eight_requests_in_flight_each_get_their_own_answer(app, tmp_path, small_avatar):
    """Issue 10's load check, kept cheap for CI (the full run with real preview makes is
    bench/load_app.py): 8 clients submit at once: three photo checks of accepted but unusual
    photos (EXIF-rotated CMYK, palette with transparency, two people), two clips of different
    lengths and sizes, and three bad inputs. Each gets its own result or the project's
    message; no result belongs to another request; the app answers afterwards."""
    from gradio_client import Client, handle_file

    photos = {name: write(tmp_path) for name, write in ACCEPTED_PHOTOS if name != "grey_16bit_png"}
    bad_package, _ = write_bad_package(tmp_path, next(c for c in BAD_PACKAGES if c[0] == "wrong_shape"), small_avatar.read_bytes())
    requests = [  # (id, endpoint, arguments, expected error or None)
        *((name, "/check_photo", (handle_file(str(path)), "preview"), None) for name, path in photos.items()),
        ("clip_7_128", "/animate", (handle_file(str(small_avatar)), "jump", handle_file(str(long_motion(tmp_path, 7))), 128), None),
        ("clip_9_192", "/animate", (handle_file(str(small_avatar)), "jump", handle_file(str(long_motion(tmp_path, 9))), 192), None),
        ("bomb", "/make_avatar", (handle_file(str(BAD_PHOTOS[2][1](tmp_path))), "preview", "walk", 0), "too large"),
        ("bad_package", "/animate", (handle_file(str(bad_package)), "jump", None, 128), "shape"),
        ("bad_motion", "/make_avatar", (handle_file(str(EXAMPLES / "person_half.png")), "preview", "walk", 0,
                                        handle_file(str(BAD_MOTIONS[2][1](tmp_path, tmp_path / "UNPICKLED")))), "could not read"),
    ]  # fmt: skip
    assert len(requests) == 8
    clients = [Client(app.url, download_files=str(tmp_path / f"downloads_{r[0]}"), verbose=False) for r in requests]
    start = time.monotonic()
    jobs = [client.submit(*args, api_name=endpoint) for client, (_, endpoint, args, _) in zip(clients, requests)]
    outcomes, seconds = {}, {}
    for job, (name, endpoint, args, expected) in zip(jobs, requests):
        try:
            outcomes[name] = ("result", job.result(timeout=600))
        except Exception as err:  # AppError: checked below
            outcomes[name] = ("error", str(err))
        seconds[name] = round(time.monotonic() - start, 1)
    print("8 requests in flight, seconds since submission:", seconds)
    for name, endpoint, args, expected in requests:
        kind, value = outcomes[name]
        if expected is not None:
            assert kind == "error" and expected in value.lower() and "Traceback" not in value, (name, value)
        elif endpoint == "/check_photo":
            assert kind == "result", (name, value)
            preview, summary = value
            assert summary["source"] == photos[name].name, (name, summary)  # this request's own photo
            assert Image.open(preview).size == tuple(summary["working_size"])
            assert summary["people_found"] == (2 if name == "two_people" else 1), (name, summary)
        else:
            assert kind == "result", (name, value)
            frames, size = (int(x) for x in name.split("_")[1:])
            assert read_video_frames(value).shape == (frames, size, size, 3), name  # this request's own clip
    assert "2 people found" in " ".join(outcomes["two_people"][1][1]["warnings"])
    for client, (name, endpoint, args, expected) in zip(clients, requests):
        folder = session_folder(app.temp_dir, client)
        if expected is not None:
            assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()], f"{name} left files"
        client.close()
    # The app still answers.
    client = Client(app.url, download_files=str(tmp_path / "after"), verbose=False)
    clip = client.predict(handle_file(str(small_avatar)), "jump", handle_file(str(long_motion(tmp_path, 5))), 128, api_name="/animate")
    assert read_video_frames(clip).shape == (5, 128, 128, 3)
    client.close()
