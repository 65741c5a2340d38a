"""The built-in motion library and the motion file format."""

import numpy as np
import pytest
import torch

from persona.errors import PersonaError
from persona.generate.motions import MOTIONS, get_motion, load_motion


@pytest.mark.parametrize("name", list(MOTIONS))
def test_builtin_motions_keep_a_plausible_human(body, name):
    motion = get_motion(name)
    assert motion.num_frames >= 48
    assert all(n in body.joint_names for n in motion.joint_names)
    poses = motion.to_pose(body)
    posed = body.forward(body.default_shape[None], poses)
    heights = posed.vertices[..., 1].amax(1) - posed.vertices[..., 1].amin(1)
    assert torch.isfinite(posed.vertices).all()
    assert (heights > 1.0).all() and (heights < 2.4).all()  # metres: no collapse, no explosion
    # Frames follow each other: no vertex moves faster than 6 m/s (25 cm per frame at 24 fps).
    step = (posed.vertices[1:] - posed.vertices[:-1]).norm(dim=-1).amax()
    assert step < 0.25


def test_motion_file_round_trip(tmp_path):
    motion = get_motion("wave")
    motion.save(tmp_path / "wave.npz")
    again = get_motion(tmp_path / "wave.npz")
    assert again.joint_names == motion.joint_names
    assert torch.equal(again.rotations, motion.rotations)
    assert again.fps == motion.fps


def test_bad_motion_files_are_refused(tmp_path):
    with pytest.raises(PersonaError, match="Unknown motion"):
        get_motion("moonwalk")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(PersonaError):
        load_motion(tmp_path / "text.npz")
    np.savez(tmp_path / "pickled.npz", joint_names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PersonaError):
        load_motion(tmp_path / "pickled.npz")
    np.savez(
        tmp_path / "shapes.npz",
        joint_names=np.array(["head"]),
        rotations=np.zeros((5, 2, 3), np.float32),
        global_orient=np.zeros((5, 3), np.float32),
        translation=np.zeros((5, 3), np.float32),
        fps=np.float32(24),
    )
    with pytest.raises(PersonaError, match="inconsistent"):
        load_motion(tmp_path / "shapes.npz")
    np.savez(
        tmp_path / "nan.npz",
        joint_names=np.array(["head"]),
        rotations=np.full((5, 1, 3), np.nan, np.float32),
        global_orient=np.zeros((5, 3), np.float32),
        translation=np.zeros((5, 3), np.float32),
        fps=np.float32(24),
    )
    with pytest.raises(PersonaError, match="non-finite"):
        load_motion(tmp_path / "nan.npz")
