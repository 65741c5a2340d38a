"""Retargeting between skeletons: a walk defined on SMPL-X, played on anny, keeps the
directions of the limbs and the feet on the ground; anny's motions play on SMPL-X."""

from __future__ import annotations

import pytest
import roma
import torch
from smplx_synthetic import smplx_walk, write_synthetic_smplx

from persona.body.model import BodyPose
from persona.body.smplx_model import JOINTS, load_smplx
from persona.generate.motions import Motion, get_motion
from persona.generate.retarget import (
    body_skeleton,
    forward_kinematics,
    minimal_rotation,
    motion_for_body,
    retarget,
    smplx_reference_skeleton,
)

# Bones between COCO keypoints, measured on each body's own mesh (independent of skeletons).
KEYPOINT_BONES = [
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_ankle", "left_big_toe"), ("right_ankle", "right_big_toe"), ("right_shoulder", "left_shoulder"), ("right_hip", "left_hip"),
]  # fmt: skip
# Segments between corresponding joints (landmarks) of the two skeletons.
SEGMENTS = [
    ("hip_L", "knee_L"), ("knee_L", "ankle_L"), ("ankle_L", "ball_L"), ("hip_R", "knee_R"), ("knee_R", "ankle_R"), ("ankle_R", "ball_R"),
    ("shoulder_L", "elbow_L"), ("elbow_L", "wrist_L"), ("shoulder_R", "elbow_R"), ("elbow_R", "wrist_R"),
    ("collar_L", "shoulder_L"), ("collar_R", "shoulder_R"), ("spine_low", "spine_mid"), ("spine_mid", "spine_high"),
    ("spine_high", "neck"), ("neck", "head"),
]  # fmt: skip


@pytest.fixture(scope="module")
def smplx_body(tmp_path_factory, body):
    return load_smplx(write_synthetic_smplx(tmp_path_factory.mktemp("smplx"), body))


def posed_joints(body, shape, pose) -> torch.Tensor:
    """(F, J, 3) joint centres of the posed body."""
    with torch.no_grad():
        T = body.forward(shape[None], pose).bone_transforms
        rest = body.rest_joints(shape[None])[0]
    return (T[..., :3, :3] @ rest[..., None])[..., 0] + T[..., :3, 3]


def angles_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.acos(torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1, 1)))


def keypoint_bone_errors(kp_a, names_a, kp_b, names_b) -> torch.Tensor:
    """(F, bones) angles between the same keypoint bones of two posed bodies, degrees."""
    out = []
    for start, end in KEYPOINT_BONES:
        da = kp_a[:, names_a.index(end)] - kp_a[:, names_a.index(start)]
        db = kp_b[:, names_b.index(end)] - kp_b[:, names_b.index(start)]
        out.append(angles_deg(da, db))
    return torch.stack(out, 1)


def planted_walk(smplx_body, shape: torch.Tensor, frames: int = 72) -> Motion:
    """The SMPL-X walk with its root height set so that the lowest vertex of the SMPL-X mesh
    touches the ground in every frame."""
    walk = smplx_walk(frames, fps=24.0)
    motion = Motion(
        "smplx_walk", 24.0, list(JOINTS[1:22]), torch.from_numpy(walk["body_pose"]).float(),
        torch.from_numpy(walk["global_orient"]).float(), torch.from_numpy(walk["transl"]).float(), skeleton="smplx",
    )  # fmt: skip
    motion.translation[:, 1] = 0
    with torch.no_grad():
        ground = smplx_body.forward(shape[None], BodyPose.zeros(1, 55)).vertices[0, :, 1].min()
        lowest = smplx_body.forward(shape[None], motion.to_pose(smplx_body)).vertices[..., 1].amin(1)
    motion.translation[:, 1] = ground - lowest
    return motion


def test_walk_from_smplx_to_anny_keeps_bone_directions_and_feet(body, smplx_body):
    # The source body is not the average one, so its skeleton differs from the reference
    # SMPL-X skeleton the retargeting assumes (as a real SMPL-X subject would).
    source_shape = torch.full((10,), 0.5)
    source_shape[:6] = torch.tensor([0.65, 0.4, 0.6, 0.6, 0.7, 0.35])
    motion = planted_walk(smplx_body, source_shape)
    source_pose = motion.to_pose(smplx_body)
    with torch.no_grad():
        source = smplx_body.forward(source_shape[None], source_pose)
    target_pose = motion.to_pose(body)  # retargeted onto anny (Motion.to_pose -> motion_for_body)
    with torch.no_grad():
        target = body.forward(body.default_shape[None], target_pose)

    keypoint_errors = keypoint_bone_errors(source.keypoints, smplx_body.keypoint_names, target.keypoints, body.keypoint_names)
    skel_s, skel_t = body_skeleton(smplx_body), body_skeleton(body)
    joints_s = posed_joints(smplx_body, source_shape, source_pose)
    joints_t = posed_joints(body, body.default_shape, target_pose)
    segment_errors = torch.stack(
        [
            angles_deg(
                skel_s.landmark_position(b, joints_s) - skel_s.landmark_position(a, joints_s),
                skel_t.landmark_position(b, joints_t) - skel_t.landmark_position(a, joints_t),
            )
            for a, b in SEGMENTS
        ],
        1,
    )
    print(f"walk SMPL-X -> anny: mean bone-direction error {keypoint_errors.mean():.2f} deg over COCO keypoint bones "
          f"(max {keypoint_errors.max():.1f}), {segment_errors.mean():.2f} deg over skeleton segments (max {segment_errors.max():.1f})")  # fmt: skip
    for (a, b), e in zip(KEYPOINT_BONES, keypoint_errors.mean(0)):
        print(f"  {a} -> {b}: {e:.1f} deg")
    assert keypoint_errors.mean() <= 10.0
    assert segment_errors.mean() <= 5.0

    # Feet: the source's lowest point touches the ground in every frame, so must anny's.
    with torch.no_grad():
        ground = body.forward(body.default_shape[None], BodyPose.zeros(1, body.num_joints)).vertices[0, :, 1].min()
    gap_cm = 100 * (target.vertices[..., 1].amin(1) - ground)
    print(f"anny's lowest point above the ground: mean {gap_cm.mean():.2f} cm, range [{gap_cm.min():.2f}, {gap_cm.max():.2f}] cm")
    assert gap_cm.abs().max() < 2.0
    # The root travels forwards like the source's, scaled by the leg lengths.
    travelled_s = source.vertices[-1].mean(0) - source.vertices[0].mean(0)
    travelled_t = target.vertices[-1].mean(0) - target.vertices[0].mean(0)
    assert travelled_t[2] > 0.5 and abs(travelled_t[0]) < 0.05
    assert 0.75 < travelled_t[2] / travelled_s[2] < 1.25


@pytest.mark.parametrize("name", ["walk", "jump"])
def test_builtin_motions_play_on_smplx(body, smplx_body, name):
    motion = get_motion(name)  # made on anny
    anny_pose = motion.to_pose(body)
    smplx_pose = motion.to_pose(smplx_body)
    with torch.no_grad():
        a = body.forward(body.default_shape[None], anny_pose)
        s = smplx_body.forward(smplx_body.default_shape[None], smplx_pose)
        ground = smplx_body.forward(smplx_body.default_shape[None], BodyPose.zeros(1, 55)).vertices[0, :, 1].min()
    errors = keypoint_bone_errors(a.keypoints, body.keypoint_names, s.keypoints, smplx_body.keypoint_names)
    print(f"{name} anny -> SMPL-X: mean bone-direction error {errors.mean():.2f} deg")
    assert errors.mean() <= 10.0
    # The feet follow the source's: as high above the ground (the bodies have the same legs
    # here), measured from each clip's lowest frames.
    lowest_s = s.vertices[..., 1].amin(1) - ground
    lowest_a = a.vertices[..., 1].amin(1)
    lowest_a = lowest_a - torch.quantile(lowest_a, 0.02)
    print(f"{name}: lowest point of SMPL-X vs anny: max difference {100 * (lowest_s - lowest_a).abs().max():.2f} cm")
    assert lowest_s.min() > -0.01  # no sinking into the ground
    assert (lowest_s - lowest_a).abs().max() < 0.015
    if name == "jump":
        assert lowest_s.max() > 0.2  # the jump leaves the ground


def test_anny_to_smplx_and_back_keeps_the_motion(body):
    motion = get_motion("dance")
    assert motion_for_body(motion, body) is motion  # made on anny: played as it is
    reference = smplx_reference_skeleton()
    back = retarget(retarget(motion, body_skeleton(body), reference), reference, body_skeleton(body), body)
    with torch.no_grad():
        a = body.forward(body.default_shape[None], motion.to_pose(body)).vertices
        b = body.forward(body.default_shape[None], back.to_pose(body)).vertices
    offset = (b - a).mean(1, keepdim=True)  # grounding may lift the whole body a little
    error_mm = 1000 * (b - a - offset).norm(dim=-1)
    print(f"anny -> SMPL-X -> anny: mean vertex error {error_mm.mean():.2f} mm (after a per-frame offset of at most {100 * offset.norm(dim=-1).max():.1f} cm)")
    assert error_mm.mean() < 5.0
    assert offset.norm(dim=-1).max() < 0.05


def test_reference_skeleton_stands_in_a_t_pose():
    reference = smplx_reference_skeleton()
    joint = lambda name: reference.joints[JOINTS.index(name)]  # noqa: E731
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm = joint(f"{side}_wrist") - joint(f"{side}_shoulder")
        assert angles_deg(arm, torch.tensor([sign, 0.0, 0.0])) < 3.0  # arms straight out sideways
        leg = joint(f"{side}_ankle") - joint(f"{side}_hip")
        assert angles_deg(leg, torch.tensor([0.0, -1.0, 0.0])) < 10.0  # legs down
    assert joint("head")[1] > joint("neck")[1] > joint("spine3")[1] > joint("spine1")[1] > joint("pelvis")[1]
    assert 0.7 < reference.leg_length < 1.0


def test_rotation_helpers_and_kinematics(smplx_body):
    torch.manual_seed(0)
    a, b = torch.randn(100, 3), torch.randn(100, 3)
    a[0], b[0] = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, -1.0, 0.0])  # opposite directions
    R = minimal_rotation(a, b)
    assert torch.allclose((R @ a[..., None])[..., 0], torch.nn.functional.normalize(b, dim=-1) * a.norm(dim=-1, keepdim=True), atol=1e-5)
    assert torch.allclose(torch.det(R), torch.ones(100), atol=1e-5)
    # Forward kinematics on the reference skeleton poses the joints as the synthetic SMPL-X
    # body (built on that skeleton) does.
    reference = smplx_reference_skeleton()
    pose = BodyPose.zeros(2, 55)
    pose.joint_rotations[:, 1:] = 0.3 * torch.randn(2, 54, 3)
    pose.global_orient[:] = torch.randn(2, 3)
    pose.translation[:] = torch.randn(2, 3)
    G, P = forward_kinematics(
        reference, roma.rotvec_to_rotmat(pose.joint_rotations), roma.rotvec_to_rotmat(pose.global_orient), reference.joints[0] + pose.translation
    )
    assert torch.allclose(G[:, 1:], G[:, reference.parents[1:]] @ roma.rotvec_to_rotmat(pose.joint_rotations[:, 1:]), atol=1e-5)
    assert (P - posed_joints(smplx_body, smplx_body.default_shape, pose)).norm(dim=-1).max() < 2e-3
