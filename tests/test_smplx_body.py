"""SMPL-X as a second body model, on a synthetic SMPLX_NEUTRAL.npz written by the tests
(`smplx_synthetic`): conventions, parity with the smplx package, safe loading, the photo fit,
and the whole `make` pipeline and `animate` on it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import roma
import smplx
import torch
from smplx_synthetic import build_smplx_arrays, write_synthetic_smplx
from test_fit import centred_vertex_error_cm, synthetic_view

from persona.avatar.animate import ClipConfig
from persona.avatar.storage import load_avatar
from persona.body.model import BodyPose
from persona.body.registry import load_body
from persona.body.smplx_model import BETA_RANGE, SmplxBody, load_smplx
from persona.config import PRESETS
from persona.errors import PersonaError
from persona.io.ply import read_gaussian_ply
from persona.io.video import read_video_frames
from persona.perceive.fit import FitConfig, fit_body, photo_camera
from persona.pipeline import MakeOptions, make_avatar

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "person_half.png"


@pytest.fixture(scope="module")
def smplx_file(tmp_path_factory, body):
    return write_synthetic_smplx(tmp_path_factory.mktemp("smplx"), body)


@pytest.fixture(scope="module")
def smplx_body(smplx_file):
    return load_smplx(smplx_file)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "persona", *args], capture_output=True, text=True, timeout=900)


def test_rest_body_is_upright_faces_plus_z_in_a_t_pose(smplx_body):
    posed = smplx_body.forward(smplx_body.default_shape[None], BodyPose.zeros(1, 55))
    kp = dict(zip(smplx_body.keypoint_names, posed.keypoints[0]))
    height = posed.vertices[0, :, 1].max() - posed.vertices[0, :, 1].min()
    assert smplx_body.skin_weights.shape == (10_475, 55) and smplx_body.num_joints == 55
    assert 1.5 < height < 1.9
    assert kp["nose"][1] > kp["left_hip"][1] > kp["left_ankle"][1]  # Y up
    assert kp["nose"][2] > kp["left_ear"][2]  # the face looks towards +Z
    assert kp["left_shoulder"][0] > 0 > kp["right_shoulder"][0]  # the left side at +X
    assert abs(kp["left_wrist"][1] - kp["left_shoulder"][1]) < 0.05  # arms out: a T-pose
    assert kp["left_heel"][2] < kp["left_ankle"][2] < kp["left_big_toe"][2]  # feet forwards
    assert smplx_body.uvs.shape == (10_475, 2) and smplx_body.face_uvs.shape == smplx_body.faces.shape


def test_matches_the_smplx_package_and_skins_by_its_bone_transforms(smplx_file, smplx_body):
    torch.manual_seed(0)
    B = 3
    pose = BodyPose.zeros(B, 55)
    pose.joint_rotations[:, 1:] = 0.3 * torch.randn(B, 54, 3)
    pose.global_orient[:] = 0.5 * torch.randn(B, 3)
    pose.translation[:] = torch.randn(B, 3)
    shape = torch.rand(1, 10)
    r = pose.joint_rotations
    # Our own file, written by this test, so the package's pickle-enabled loader is harmless.
    reference = smplx.SMPLX(str(smplx_file), use_pca=False, num_betas=10, flat_hand_mean=True)
    expected = reference(
        betas=(BETA_RANGE * (shape - 0.5)).expand(B, -1), global_orient=pose.global_orient, transl=pose.translation,
        body_pose=r[:, 1:22].reshape(B, -1), jaw_pose=r[:, 22], leye_pose=r[:, 23], reye_pose=r[:, 24],
        left_hand_pose=r[:, 25:40].reshape(B, -1), right_hand_pose=r[:, 40:55].reshape(B, -1), expression=torch.zeros(B, 10),
    )  # fmt: skip
    with_correctives = SmplxBody(smplx_file, pose_correctives=True).forward(shape, pose)
    assert (with_correctives.vertices - expected.vertices).abs().max() < 1e-4
    # By default the posed surface is exactly the linear blend skinning of the rest surface.
    posed = smplx_body.forward(shape, pose)
    rest = smplx_body.rest_vertices(shape)[0]
    homogeneous = torch.cat([rest, torch.ones(len(rest), 1)], 1)
    lbs = torch.einsum("vj,bjxy,vy->bvx", smplx_body.skin_weights, posed.bone_transforms, homogeneous)[..., :3]
    assert torch.allclose(lbs, posed.vertices, atol=1e-4)
    assert (posed.vertices - expected.vertices).norm(dim=-1).max() < 0.05  # pose correctives are small
    joints = (posed.bone_transforms[..., :3, :3] @ smplx_body.rest_joints(shape)[0][..., None])[..., 0] + posed.bone_transforms[..., :3, 3]
    assert (joints - expected.joints[:, :55]).abs().max() < 1e-4


def test_rotation_about_x_bends_the_knee_backwards(smplx_body):
    pose = BodyPose.zeros(1, 55)
    pose.joint_rotations[0, smplx_body.joint_index("left_knee")] = torch.tensor([1.0, 0.0, 0.0])
    bent = smplx_body.forward(smplx_body.default_shape[None], pose).keypoints[0]
    straight = smplx_body.forward(smplx_body.default_shape[None], BodyPose.zeros(1, 55)).keypoints[0]
    ankle = smplx_body.keypoint_names.index("left_ankle")
    assert bent[ankle, 2] < straight[ankle, 2] - 0.2


def _write_variant(folder: Path, arrays: dict, **changes) -> Path:
    folder.mkdir()
    data = {**arrays, "posedirs": None, **changes}  # (optional; 60 MB)
    np.savez(folder / "SMPLX_NEUTRAL.npz", **{k: v for k, v in data.items() if v is not None})
    return folder


def test_missing_or_wrong_model_files_are_refused_clearly(tmp_path, body):
    arrays = build_smplx_arrays(body)
    cases = [
        (tmp_path / "nowhere.npz", "does not exist"),
        (tmp_path, "No SMPLX_NEUTRAL.npz in the folder"),
        (tmp_path / "SMPLX_NEUTRAL.pkl", "pickle"),
        (_write_variant(tmp_path / "smpl", arrays, v_template=np.zeros((6890, 3))), r"v_template of shape \(6890, 3\)"),
        (_write_variant(tmp_path / "no_weights", arrays, weights=None), "lacks weights"),
        (_write_variant(tmp_path / "nan", arrays, shapedirs=np.full((10_475, 3, 20), np.nan)), "non-finite"),
        (_write_variant(tmp_path / "objects", arrays, J_regressor=np.array([{"x": 1}], dtype=object)), "Could not read"),
        (_write_variant(tmp_path / "faces", arrays, f=np.full((10, 3), 20_000)), "invalid triangles"),
    ]
    (tmp_path / "SMPLX_NEUTRAL.pkl").write_bytes(b"\x80\x04K\x01.")
    for path, message in cases:
        with pytest.raises(PersonaError, match=message) as error:
            load_smplx(path)
        assert "smpl-x.is.tue.mpg.de" in str(error.value)  # says where to get the real file
    with pytest.raises(PersonaError, match="--body-model"):
        load_body("smplx")
    with pytest.raises(PersonaError, match="only used with the SMPL-X body"):
        load_body("anny", tmp_path)
    with pytest.raises(PersonaError, match="Unknown body model"):
        load_body("smpl")


def test_fit_recovers_a_synthetic_smplx_body(smplx_body):
    W, H = 384, 576
    camera = photo_camera(W, H, 50.0)
    shape = torch.full((10,), 0.5)
    shape[:3] = torch.tensor([0.6, 0.45, 0.55])
    pose = BodyPose.zeros(1, 55)
    # Arms lowered from the T-pose, as in a photo, and a few joints bent.
    for name, rotvec in {"left_shoulder": [0.0, 0.0, -1.1], "right_shoulder": [0.0, 0.0, 1.2], "right_elbow": [0.0, 0.6, 0.0],
                         "right_hip": [-0.4, 0.0, 0.0], "right_knee": [0.6, 0.0, 0.0], "spine2": [0.1, 0.1, 0.0]}.items():  # fmt: skip
        pose.joint_rotations[0, smplx_body.joint_index(name)] = torch.tensor(rotvec)
    pose.global_orient[0] = torch.tensor([0.05, 0.3, 0.0])
    pose.translation[0] = torch.tensor([0.1, 0.1, -3.2])
    truth, keypoints, mask = synthetic_view(smplx_body, shape, pose, camera)

    fit = fit_body(smplx_body, keypoints, mask, FitConfig(global_steps=30, steps=80))

    with torch.no_grad():
        estimate = smplx_body.forward(fit.shape[None], fit.pose)
    vertex_error_cm = centred_vertex_error_cm(truth.vertices[0], estimate.vertices[0])
    print(f"SMPL-X fit: keypoint error {fit.keypoint_error_px:.2f} px, vertex error {vertex_error_cm:.1f} cm, {fit.seconds:.1f} s")
    assert fit.keypoint_error_px < 4.0
    assert vertex_error_cm < 7.0
    shoulder = smplx_body.joint_index("left_shoulder")
    angle = roma.rotmat_geodesic_distance(
        roma.rotvec_to_rotmat(pose.joint_rotations[0, shoulder]), roma.rotvec_to_rotmat(fit.pose.joint_rotations[0, shoulder])
    )
    assert torch.rad2deg(angle) < 25


# The preview preset's fit, with a shorter avatar optimisation at a smaller size and short,
# small clips, so that the whole pipeline runs in about 20 s on 2 idle cores.
def quick_preset():
    preview = PRESETS["preview"]
    return replace(
        preview,
        name="quick",
        input=replace(preview.input, train_size=256, input_view_max_size=512),
        avatar=replace(preview.avatar, iterations=60),
        clip=ClipConfig(size=128, turntable_frames=6),
        generate=replace(preview.generate, frames_per_motion=3, resolution=96),
    )


@pytest.fixture(scope="module")
def made_on_smplx(tmp_path_factory, smplx_file):
    """`make` on the synthetic SMPL-X body, driven by an AMASS-style file."""
    from test_motion_import import amass_poses, to_z_up, WALK

    folder = tmp_path_factory.mktemp("made_smplx")
    _, trans = to_z_up(WALK)
    motion = folder / "walk_amass.npz"
    np.savez(motion, poses=amass_poses(165)[:30], trans=trans[:30], mocap_framerate=np.float64(60.0))  # half a second
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PRESETS, "quick", quick_preset())
        options = MakeOptions(preset="quick", motion=str(motion), body="smplx", body_model=str(smplx_file), device="cpu")
        result = make_avatar(EXAMPLE, folder / "out", options)
    return result


def test_make_runs_on_smplx(made_on_smplx, smplx_body):
    result = made_on_smplx
    files = result.files
    for path in (files.ply, files.package, files.animation, files.turntable, files.input_view, files.report):
        assert path.is_file(), path
    report = json.loads(files.report.read_text())
    print("SMPL-X make:", report["seconds"], report["metrics"])
    assert any("SMPL-X" in name for name in report["licences"]) and "anny body model" not in report["licences"]
    # The fit and the avatar are as good on SMPL-X as on anny (same thresholds as test_cli).
    assert report["metrics"]["silhouette_iou"] >= 0.85
    assert report["metrics"]["psnr_in_mask_db"] >= 20.0
    avatar = load_avatar(files.package, smplx_body)
    assert avatar.body_name == "smplx" and avatar.num_gaussians == 10_475
    ply = read_gaussian_ply(files.ply)
    assert len(ply) == avatar.num_gaussians and np.isfinite(ply.means).all()
    assert 1.2 < ply.means[:, 1].max() - ply.means[:, 1].min() < 2.2
    frames = read_video_frames(files.animation)
    assert frames.shape[0] == 12  # the half-second AMASS-style walk at 24 fps
    # The generated training frames drove the SMPL-X body with anny's built-in motions
    # (retargeted): they cover the person too.
    assert report["generated_frames"] > 0
    assert ((frames.min(-1) < 200).mean(axis=(1, 2)) > 0.02).all()


def test_animate_a_smplx_avatar_from_the_command_line(made_on_smplx, smplx_file, tmp_path):
    package = made_on_smplx.files.package
    motion = made_on_smplx.files.folder.parent / "walk_amass.npz"
    clip = tmp_path / "walk.mp4"
    result = run_cli("animate", str(package), "--motion", str(motion), "-o", str(clip), "--size", "64", "--body-model", str(smplx_file))
    assert result.returncode == 0, result.stderr
    assert read_video_frames(clip).shape[0] == 12
    missing = run_cli("animate", str(package), "--motion", "wave", "-o", str(tmp_path / "x.mp4"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("persona: error: ") and "SMPLX_NEUTRAL.npz" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_make_without_a_model_file_is_a_clear_error(tmp_path):
    result = run_cli("make", str(EXAMPLE), "-o", str(tmp_path / "out"), "--body", "smplx")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("persona: error: ") and "--body-model" in lines[0]
    assert "smpl-x.is.tue.mpg.de" in lines[0]
