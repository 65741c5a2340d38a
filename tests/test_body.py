"""The anny adapter: frame conventions, skinning consistency, keypoints."""

import torch

from persona.body.model import BodyPose


def test_rest_body_is_upright_and_faces_plus_z(body):
    posed = body.forward(body.default_shape[None], BodyPose.zeros(1, body.num_joints))
    kp = dict(zip(body.keypoint_names, posed.keypoints[0]))
    height = posed.vertices[0, :, 1].max() - posed.vertices[0, :, 1].min()
    assert 1.5 < height < 1.9  # metres, an average adult
    assert kp["nose"][1] > kp["left_hip"][1] > kp["left_ankle"][1]  # Y up
    assert kp["nose"][2] > kp["left_ear"][2]  # the face looks towards +Z
    assert kp["left_shoulder"][0] > 0 > kp["right_shoulder"][0]  # the left side at +X


def test_bone_transforms_reproduce_the_vertices_by_lbs(body):
    pose = BodyPose.zeros(2, body.num_joints)
    torch.manual_seed(0)
    pose.joint_rotations[:] = 0.3 * torch.randn(2, body.num_joints, 3)
    pose.global_orient[1] = torch.tensor([0.2, 1.0, -0.1])
    pose.translation[1] = torch.tensor([0.5, -0.2, 3.0])
    shape = torch.tensor([[0.2, 0.6, 0.7, 0.3, 0.8, 0.4]])
    posed = body.forward(shape, pose)
    rest = body.rest_vertices(shape)[0]
    homogeneous = torch.cat([rest, torch.ones(len(rest), 1)], 1)
    lbs = torch.einsum("vj,bjxy,vy->bvx", body.skin_weights, posed.bone_transforms, homogeneous)[..., :3]
    assert torch.allclose(lbs, posed.vertices, atol=1e-4)


def test_rotation_about_x_bends_the_knee_backwards(body):
    pose = BodyPose.zeros(1, body.num_joints)
    pose.joint_rotations[0, body.joint_index("lowerleg01.L")] = torch.tensor([1.0, 0.0, 0.0])
    bent = body.forward(body.default_shape[None], pose).keypoints[0]
    straight = body.forward(body.default_shape[None], BodyPose.zeros(1, body.num_joints)).keypoints[0]
    ankle = body.keypoint_names.index("left_ankle")
    assert bent[ankle, 2] < straight[ankle, 2] - 0.2  # the foot goes back (-Z)
    assert body.skin_weights.shape == (13718, body.num_joints)
    assert torch.allclose(body.skin_weights.sum(1), torch.ones(13718), atol=1e-5)
