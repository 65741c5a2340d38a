"""Motion import: AMASS-style and SMPL-X parameter .npz files, folders of per-frame files and
BVH, written by the tests; malformed files refused with a clear PersonaError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import roma
import torch
from smplx_synthetic import smplx_walk, to_z_up

from persona.avatar.storage import save_avatar
from persona.avatar.train import AvatarConfig, initial_avatar
from persona.body.model import BodyPose
from persona.body.smplx_model import JOINTS
from persona.errors import PersonaError
from persona.generate.motions import get_motion
from persona.generate.retarget import body_skeleton, forward_kinematics, sole_heights, smplx_reference_skeleton
from persona.io.video import read_video_frames
from persona.perceive.fit import photo_camera

FRAMES, SOURCE_FPS = 120, 60.0  # two seconds
WALK = smplx_walk(FRAMES, SOURCE_FPS)


def amass_poses(width: int) -> np.ndarray:
    """The walk's `poses` (F, width) in the AMASS Z-up world, for one layout."""
    go, _ = to_z_up(WALK)
    body = WALK["body_pose"]  # (F, 21, 3)
    joints = {165: 55, 156: 52, 72: 24, 66: 22}[width]
    poses = np.zeros((FRAMES, joints, 3))
    poses[:, 0], poses[:, 1:22] = go, body
    if width == 156:
        poses[:, 22] = [0.0, 0.0, 0.4]  # left_index1 (SMPL-H hands follow the body joints)
    if width == 165:
        poses[:, 25] = [0.0, 0.0, 0.4]  # left_index1 (after jaw and eyes)
    return poses.reshape(FRAMES, -1)


def write_amass(path: Path, width: int = 165, **overrides) -> Path:
    _, trans = to_z_up(WALK)
    arrays = {"poses": amass_poses(width), "trans": trans, "mocap_framerate": np.float64(SOURCE_FPS), "betas": np.zeros(16),
              "gender": np.array("neutral")}  # fmt: skip
    arrays.update(overrides)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def body_rotation(motion, name: str) -> torch.Tensor:
    return motion.rotations[:, motion.joint_names.index(name)]


def check_walk(motion, frames_at_24: int):
    """An imported walk: 24 fps, upright, facing and walking towards +Z from x = z = 0, the
    source's joint angles, the feet on the ground in its lowest frames."""
    assert motion.skeleton == "smplx" and motion.fps == 24.0 and motion.num_frames == frames_at_24
    root = roma.rotvec_to_rotmat(motion.global_orient)
    assert torch.allclose(root[0] @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0]), atol=1e-4)
    assert (root @ torch.tensor([0.0, 1.0, 0.0]))[:, 1].min() > 0.99
    assert motion.translation[0, [0, 2]].abs().max() < 1e-5
    assert motion.translation[-1, 2] > 1.5 and motion.translation[-1, 0].abs() < 0.05  # 1.1 m/s for 2 s
    # Frame k at 24 fps is the source's frame 2.5 k (60 fps): compare on whole source frames.
    knee = body_rotation(motion, "left_knee")
    source = torch.from_numpy(WALK["body_pose"][:, JOINTS.index("left_knee") - 1]).float()
    assert torch.allclose(knee[::2], source[::5][: len(knee[::2])], atol=1e-4)
    # Grounded on the reference skeleton: the soles touch the ground in the lowest frames.
    reference = smplx_reference_skeleton()
    local = torch.eye(3).repeat(motion.num_frames, 55, 1, 1)
    for k, name in enumerate(motion.joint_names):
        local[:, JOINTS.index(name)] = roma.rotvec_to_rotmat(motion.rotations[:, k])
    G, P = forward_kinematics(reference, local, root, reference.joints[0] + motion.translation)
    heights = sole_heights(reference, G, P) - reference.ground
    assert abs(float(torch.quantile(heights, 0.02))) < 1e-3 and heights.min() > -0.01


def test_amass_smplx_file(tmp_path):
    motion = get_motion(write_amass(tmp_path / "walk_poses.npz"))
    check_walk(motion, 48)
    assert motion.name == "walk_poses"
    assert torch.allclose(body_rotation(motion, "left_index1"), torch.tensor([0.0, 0.0, 0.4]), atol=1e-5)


@pytest.mark.parametrize("width", [156, 72, 66])
def test_amass_smplh_smpl_and_body_only_layouts(tmp_path, width):
    motion = get_motion(write_amass(tmp_path / f"walk_{width}.npz", width))
    check_walk(motion, 48)
    if width == 156:
        assert torch.allclose(body_rotation(motion, "left_index1"), torch.tensor([0.0, 0.0, 0.4]), atol=1e-5)
    else:  # no finger joints in the file: the hands stay flat
        assert body_rotation(motion, "left_index1").abs().max() < 1e-6


def test_amass_split_keys(tmp_path):
    poses = amass_poses(165).reshape(FRAMES, 55, 3)
    _, trans = to_z_up(WALK)
    np.savez(
        tmp_path / "split.npz", root_orient=poses[:, 0], pose_body=poses[:, 1:22].reshape(FRAMES, -1),
        pose_hand=poses[:, 25:].reshape(FRAMES, -1), trans=trans, mocap_frame_rate=np.array(SOURCE_FPS),
    )  # fmt: skip
    check_walk(get_motion(tmp_path / "split.npz"), 48)


def camera_frame_parameters() -> dict[str, np.ndarray]:
    """The walk as per-frame SMPL-X parameters in a camera frame (Y down, Z away from the
    camera), body_pose as rotation matrices, no frame rate (30 fps is assumed)."""
    flip = roma.rotvec_to_rotmat(torch.tensor([np.pi, 0.0, 0.0], dtype=torch.float64))
    go = flip @ roma.rotvec_to_rotmat(torch.from_numpy(WALK["global_orient"]))
    transl = torch.from_numpy(WALK["transl"]) @ flip.T + torch.tensor([0.0, 0.3, 4.0], dtype=torch.float64)
    body = roma.rotvec_to_rotmat(torch.from_numpy(WALK["body_pose"]))
    return {
        "global_orient": roma.rotmat_to_rotvec(go).numpy()[:, None],  # (F, 1, 3)
        "body_pose": body.numpy(),  # (F, 21, 3, 3)
        "left_hand_pose": np.zeros((FRAMES, 45)),
        "jaw_pose": np.zeros((FRAMES, 3)),
        "transl": transl.numpy(),
        "betas": np.zeros((FRAMES, 10)),
        "expression": np.zeros((FRAMES, 10)),
    }


def test_smplx_parameter_sets_in_one_file_and_in_a_folder(tmp_path):
    params = camera_frame_parameters()
    np.savez(tmp_path / "fit.npz", **params)
    batched = get_motion(tmp_path / "fit.npz")
    # 120 frames at an assumed 30 fps: 4 s, 96 frames at 24 fps; twice the time per frame.
    assert batched.num_frames == 96 and batched.fps == 24.0
    assert 2.0 < batched.translation[-1, 2] < 2.3  # the same 2.2 m walked, over more time
    knee = body_rotation(batched, "left_knee")
    source = torch.from_numpy(WALK["body_pose"][:, JOINTS.index("left_knee") - 1]).float()
    assert torch.allclose(knee[::4], source[::5][: len(knee[::4])], atol=1e-4)

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(FRAMES):  # frame_1 ... frame_120: sorted by number, not as text
        np.savez(folder / f"frame_{i + 1}.npz", **{k: v[i : i + 1] for k, v in params.items()})
    framed = get_motion(folder)
    assert framed.joint_names == batched.joint_names
    assert torch.allclose(framed.rotations, batched.rotations, atol=1e-5)
    assert torch.allclose(framed.translation, batched.translation, atol=1e-5)


# --- BVH --------------------------------------------------------------------------------------

BVH_JOINTS = {  # BVH name -> (SMPL-X joint, parent BVH name, end-site offset in cm or None)
    "Hips": ("pelvis", None, None),
    "LeftUpLeg": ("left_hip", "Hips", None), "LeftLeg": ("left_knee", "LeftUpLeg", None),
    "LeftFoot": ("left_ankle", "LeftLeg", None), "LeftToeBase": ("left_foot", "LeftFoot", (0.0, 0.0, 6.0)),
    "RightUpLeg": ("right_hip", "Hips", None), "RightLeg": ("right_knee", "RightUpLeg", None),
    "RightFoot": ("right_ankle", "RightLeg", None), "RightToeBase": ("right_foot", "RightFoot", (0.0, 0.0, 6.0)),
    "Spine": ("spine1", "Hips", None), "Spine1": ("spine2", "Spine", None), "Spine2": ("spine3", "Spine1", None),
    "Neck": ("neck", "Spine2", None), "Head": ("head", "Neck", (0.0, 12.0, 0.0)),
    "LeftShoulder": ("left_collar", "Spine2", None), "LeftArm": ("left_shoulder", "LeftShoulder", None),
    "LeftForeArm": ("left_elbow", "LeftArm", None), "LeftHand": ("left_wrist", "LeftForeArm", (8.0, 0.0, 0.0)),
    "RightShoulder": ("right_collar", "Spine2", None), "RightArm": ("right_shoulder", "RightShoulder", None),
    "RightForeArm": ("right_elbow", "RightArm", None), "RightHand": ("right_wrist", "RightForeArm", (-8.0, 0.0, 0.0)),
}  # fmt: skip


def write_bvh(path: Path, prefix: str = "") -> Path:
    """The walk on a CMU-style skeleton in centimetres (Y up), ZXY Euler angles, 60 fps."""
    reference = smplx_reference_skeleton()
    joints = {name: 100 * reference.joints[JOINTS.index(smplx)] for name, (smplx, _, _) in BVH_JOINTS.items()}
    children = {name: [c for c, (_, p, _) in BVH_JOINTS.items() if p == name] for name in BVH_JOINTS}
    lines = ["HIERARCHY"]

    def node(name: str, depth: int) -> None:
        smplx, parent, end = BVH_JOINTS[name]
        pad = "  " * depth
        offset = joints[name] - (joints[parent] if parent else joints[name])
        lines.append(f"{pad}{'ROOT' if parent is None else 'JOINT'} {prefix}{name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.4f} {offset[1]:.4f} {offset[2]:.4f}")
        channels = "6 Xposition Yposition Zposition" if parent is None else "3"
        lines.append(f"{pad}  CHANNELS {channels} Zrotation Xrotation Yrotation")
        for child in children[name]:
            node(child, depth + 1)
        if end is not None:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {end[0]} {end[1]} {end[2]}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    node("Hips", 0)
    local = {"pelvis": torch.from_numpy(WALK["global_orient"])}
    for k, name in enumerate(JOINTS[1:22]):
        local[name] = torch.from_numpy(WALK["body_pose"][:, k])
    lines += ["MOTION", f"Frames: {FRAMES}", f"Frame Time: {1 / SOURCE_FPS:.8f}"]
    ground = reference.ground
    root = 100 * (reference.joints[0] - torch.tensor([0.0, ground, 0.0])).double() + 100 * torch.from_numpy(WALK["transl"])
    for f in range(FRAMES):
        values = [*root[f].tolist()]
        for name in _depth_first("Hips", children):
            euler = roma.rotmat_to_euler("ZXY", roma.rotvec_to_rotmat(local[BVH_JOINTS[name][0]][f]), degrees=True)
            values += euler.tolist()
        lines.append(" ".join(f"{v:.5f}" for v in values))
    path.write_text("\n".join(lines) + "\n")
    return path


def _depth_first(name: str, children: dict[str, list[str]]) -> list[str]:
    return [name] + [n for c in children[name] for n in _depth_first(c, children)]


@pytest.mark.parametrize("prefix", ["", "mixamorig:"])
def test_bvh_walk(tmp_path, prefix):
    motion = get_motion(write_bvh(tmp_path / "walk.bvh", prefix))
    assert motion.skeleton == "smplx" and motion.fps == 24.0 and motion.num_frames == 48
    root = roma.rotvec_to_rotmat(motion.global_orient)
    assert torch.allclose(root[0] @ torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0]), atol=1e-3)
    assert motion.translation[-1, 2] > 1.5
    # The BVH skeleton is the reference skeleton in centimetres: the joint angles come back.
    for name in ("left_knee", "right_hip", "left_shoulder", "right_elbow", "spine3"):
        got = roma.rotvec_to_rotmat(body_rotation(motion, name))
        want = roma.rotvec_to_rotmat(torch.from_numpy(WALK["body_pose"][::5, JOINTS.index(name) - 1]).float())
        error = torch.rad2deg(roma.rotmat_geodesic_distance(got[::2], want[: len(got[::2])]))
        assert error.max() < 2.0, (name, error.max())


# --- malformed files ----------------------------------------------------------------------------


def _object_array(path: Path):
    np.savez(path, poses=np.array([{"evil": 1}], dtype=object), trans=np.zeros((1, 3)), mocap_framerate=np.float64(30))


MALFORMED = [
    ("pickle.pkl", lambda p: p.write_bytes(b"\x80\x04K\x01."), "pickle"),
    ("not_a_zip.npz", lambda p: p.write_text("hello"), "Could not read"),
    ("objects.npz", _object_array, "Could not read"),
    ("width.npz", lambda p: write_amass(p, poses=np.zeros((FRAMES, 100))), "165 .SMPL-X."),
    ("no_trans.npz", lambda p: write_amass(p, trans=None), "trans"),
    ("bad_trans.npz", lambda p: write_amass(p, trans=np.zeros((FRAMES, 2))), "trans has shape"),
    ("no_rate.npz", lambda p: write_amass(p, mocap_framerate=None), "frame rate"),
    ("nan.npz", lambda p: write_amass(p, poses=np.full((FRAMES, 165), np.nan)), "non-finite"),
    ("text.npz", lambda p: write_amass(p, poses=np.full((FRAMES, 165), "a")), "not numeric"),
    ("huge_angles.npz", lambda p: write_amass(p, poses=np.full((FRAMES, 165), 1e3)), "out of range"),
    ("too_long.npz", lambda p: write_amass(p, poses=np.zeros((10_002, 66)), trans=np.zeros((10_002, 3)), mocap_framerate=np.float64(24)), "Trim"),
    ("unknown.npz", lambda p: np.savez(p, weights=np.zeros(3)), "none of the motion layouts"),
    ("pca_hands.npz", lambda p: np.savez(p, global_orient=np.zeros((4, 3)), body_pose=np.zeros((4, 63)), left_hand_pose=np.zeros((4, 12))), "PCA"),
    ("not_rotations.npz", lambda p: np.savez(p, global_orient=np.zeros((4, 3)), body_pose=np.ones((4, 21, 3, 3))), "not rotations"),
    ("no_body_pose.npz", lambda p: np.savez(p, global_orient=np.zeros((4, 3))), "lacks global_orient or body_pose"),
    ("garbage.bvh", lambda p: p.write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n"), "Could not read the BVH"),
    ("robot.bvh", lambda p: p.write_text(write_bvh(p).read_text().replace("Left", "Port").replace("Right", "Starboard")), "could not be matched"),
    ("empty_folder", lambda p: p.mkdir(), "no .npz"),
]


@pytest.mark.parametrize("name, write, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_motion_files_are_refused(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(PersonaError, match=message):
        get_motion(path)


def test_animate_an_anny_avatar_with_an_amass_file(tmp_path, body):
    """`python -m persona animate AVATAR --motion FILE` with an AMASS-style file: the motion is
    retargeted onto anny and rendered."""
    photo_pose = BodyPose.zeros(1, body.num_joints)
    photo_pose.translation[0, 2] = -3.0
    grey = torch.full((len(body.skin_weights), 3), 0.5)
    avatar = initial_avatar(body, body.default_shape, photo_pose, photo_camera(256, 256, 50.0), grey, AvatarConfig(subdivision=0))
    save_avatar(tmp_path / "avatar.persona", avatar, {"preset": "test"})
    _, trans = to_z_up(WALK)
    motion = write_amass(tmp_path / "walk.npz", poses=amass_poses(165)[:60], trans=trans[:60])  # one second
    clip = tmp_path / "walk.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "persona", "animate", str(tmp_path / "avatar.persona"), "--motion", str(motion), "-o", str(clip), "--size", "64"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    frames = read_video_frames(clip)
    assert frames.shape[0] == 24
    coverage = (frames.min(-1) < 200).mean(axis=(1, 2))
    assert (coverage > 0.02).all()
    # The skeleton's feet stayed on anny's ground (checked at the pose level, quickly).
    pose = get_motion(motion).to_pose(body)
    lowest = body.forward(body.default_shape[None], pose).vertices[..., 1].amin(1)
    assert (lowest - body_skeleton(body).ground).min() > -0.01



def test_imported_motions_save_and_join_the_library(tmp_path, monkeypatch):
    import persona.generate.motions as motions

    imported = get_motion(write_amass(tmp_path / "walk.npz"))
    library = tmp_path / "library"
    library.mkdir()
    imported.save(library / "mocap_walk.npz")  # our format keeps the skeleton it was made on
    write_bvh(library / "bvh_walk.bvh")
    monkeypatch.setattr(motions, "LIBRARY_DIR", library)
    assert set(motions.stored_motions()) == {"mocap_walk", "bvh_walk"}
    again = get_motion("mocap_walk")
    assert again.skeleton == "smplx" and again.joint_names == imported.joint_names
    assert torch.allclose(again.rotations, imported.rotations)
    assert get_motion("bvh_walk").num_frames == 48
    with pytest.raises(PersonaError, match="mocap_walk"):
        get_motion("moonwalk")  # the error lists the stored motions too


def test_oversized_arrays_are_refused_before_reading(tmp_path, monkeypatch):
    import persona.generate.motion_import as motion_import

    path = write_amass(tmp_path / "walk.npz")
    monkeypatch.setattr(motion_import, "MAX_ARRAY_BYTES", 10_000)  # a decompression bomb, in small
    with pytest.raises(PersonaError, match="too large"):
        get_motion(path)
