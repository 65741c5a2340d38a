"""Every bad upload of issue 10 (items 1-2) through the command line: exit code 2, exactly one
line `persona: error: ...` on stderr naming the problem, no traceback, nothing written, nothing
unpickled. The cases are the catalogue in `bad_inputs.py`, shared with the app tests.

`persona.cli.main` runs in this process (capturing file descriptors 1 and 2, as a terminal
would see them) so that the ~30 cases take seconds; tests/test_cli.py runs the same entry
point as `python -m persona` subprocesses.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import BAD_MOTIONS, BAD_PACKAGES, BAD_PHOTOS, EXAMPLES, long_motion, small_package, write_bad_package

from persona.cli import main


def run_main(capfd, *argv: str) -> tuple[int, list[str]]:
    capfd.readouterr()
    code = main(list(argv))
    err = capfd.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def assert_one_line_error(code: int, lines: list[str], expected: str) -> None:
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("persona: error: "), lines
    assert expected.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in lines[0]


@pytest.fixture(scope="module")
def valid_package(tmp_path_factory, body) -> Path:
    return small_package(tmp_path_factory.mktemp("package") / "avatar.persona", body)


@pytest.mark.parametrize("case", BAD_PHOTOS, ids=[c[0] for c in BAD_PHOTOS])
def test_make_refuses_a_bad_photo(tmp_path, capfd, case):
    name, write, expected = case
    out = tmp_path / "out"
    code, lines = run_main(capfd, "make", str(write(tmp_path)), "-o", str(out), "--preset", "preview")
    assert_one_line_error(code, lines, expected)
    assert not out.exists() or not any(out.iterdir())  # nothing written


@pytest.mark.parametrize("case", BAD_PACKAGES, ids=[c[0] for c in BAD_PACKAGES])
def test_animate_refuses_a_bad_package(tmp_path, capfd, valid_package, case):
    package, marker = write_bad_package(tmp_path, case, valid_package.read_bytes())
    clip = tmp_path / "clip.mp4"
    code, lines = run_main(capfd, "animate", str(package), "--motion", "jump", "-o", str(clip), "--size", "64")
    assert_one_line_error(code, lines, case[2])
    assert not clip.exists() and not list(tmp_path.glob(".*.tmp*"))
    assert not marker.exists(), "the package was unpickled"


@pytest.mark.parametrize("case", BAD_MOTIONS, ids=[c[0] for c in BAD_MOTIONS])
@pytest.mark.parametrize("command", ["make", "animate"])
def test_make_and_animate_refuse_a_bad_motion_file(tmp_path, capfd, valid_package, case, command):
    name, write, expected = case
    marker = tmp_path / "UNPICKLED"
    motion = write(tmp_path, marker)
    if command == "make":
        argv = ["make", str(EXAMPLES / "person_half.png"), "-o", str(tmp_path / "out"), "--motion", str(motion)]
    else:
        argv = ["animate", str(valid_package), "--motion", str(motion), "-o", str(tmp_path / "clip.mp4"), "--size", "64"]
    code, lines = run_main(capfd, *argv)
    assert_one_line_error(code, lines, expected)
    assert not (tmp_path / "out").exists() and not (tmp_path / "clip.mp4").exists()
    assert not marker.exists(), "the motion file was unpickled"


def test_a_motion_over_the_frame_limit_is_refused(tmp_path, capfd, valid_package):
    code, lines = run_main(
        capfd, "animate", str(valid_package), "--motion", str(long_motion(tmp_path, 10_001)), "-o", str(tmp_path / "c.mp4")
    )
    assert_one_line_error(code, lines, "too many frames")


def test_the_small_package_is_valid_and_animates(tmp_path, capfd, valid_package):
    """The bad packages above are edits of this one: it must itself be accepted."""
    clip = tmp_path / "clip.mp4"
    code, lines = run_main(capfd, "animate", str(valid_package), "--motion", str(long_motion(tmp_path, 6)), "-o", str(clip), "--size", "64")
    assert code == 0 and lines == [], lines
    assert clip.is_file() and clip.stat().st_size > 0


# --- bad make options: the training-video generator and its frame count ------------------------


@pytest.mark.parametrize(
    "options, expected",
    [
        (["--generator", "sora"], "Unknown training-video generator 'sora'. Choose one of: synth, wan-vace, mimicmotion"),
        (["--frames", "3"], "from 4 to 36 with the 'preview' preset (its default is 12), not 3"),
        (["--frames", "37"], "from 4 to 36 with the 'preview' preset"),
        (["--preset", "standard", "--frames", "0"], "from 4 to 72 with the 'standard' preset (its default is 24), not 0"),
    ],
    ids=["unknown_generator", "too_few_frames", "too_many_frames", "zero_frames"],
)
def test_make_refuses_a_bad_generator_or_frame_count(tmp_path, capfd, options, expected):
    out = tmp_path / "out"
    code, lines = run_main(capfd, "make", str(EXAMPLES / "person_half.png"), "-o", str(out), *options)
    assert_one_line_error(code, lines, expected)
    assert not out.exists() or not any(out.iterdir())  # refused before reading the photo


def test_make_preset_applies_and_checks_the_generation_options():
    from persona.config import get_preset
    from persona.errors import PersonaError
    from persona.pipeline import MakeOptions, frames_per_motion_range, make_preset

    preset = make_preset(MakeOptions(preset="standard"))
    assert (preset.generate.backend, preset.generate.frames_per_motion) == ("synth", 24)  # the preset's own
    preset = make_preset(MakeOptions(preset="high", frames_per_motion=6, generator="wan-vace"))
    assert (preset.generate.backend, preset.generate.frames_per_motion, preset.name) == ("wan-vace", 6, "high")
    assert preset.generate.motions == ("walk", "dance", "jump", "wave")  # the rest of the preset is kept
    assert frames_per_motion_range(get_preset("high")) == (4, 108)
    for bad in (MakeOptions(generator="Synth"), MakeOptions(frames_per_motion=2.5), MakeOptions(frames_per_motion=True)):
        with pytest.raises(PersonaError):
            make_preset(bad)
