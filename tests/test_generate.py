"""Driving motions and cameras, and the generator with its weight-free `synth` backend, on the
real anny body with a small avatar (13,718 Gaussians, frames of 96 px)."""

import math

import pytest
import torch

from persona.avatar.model import render_gaussians
from persona.body.model import BodyPose
from persona.errors import PersonaError
from persona.generate.condition import skeleton_video
from persona.generate.driving import (
    blend_weights,
    clip_keypoints,
    orbit_about,
    plan_driving,
    pose_on_subject,
    retime,
    slerp_rotvec,
    view_azimuths,
)
from persona.generate.generator import BACKENDS, GenerateConfig, generate_training_set, get_backend
from persona.generate.motions import get_motion
from persona.perceive.fit import photo_camera
from photo_subject import photo_subject

CONFIG = GenerateConfig(motions=("walk", "dance"), frames_per_motion=8, resolution=96, blend_frames=3)


@pytest.fixture(scope="module")
def subject(body):
    """A photo-like setting: the body 3 m in front of the fit's camera, turned 20 degrees to
    its left, left arm raised a little; the 'photo' is the avatar's own render."""
    return photo_subject(body, 240, 320, 20.0, arm_raise=0.4)


@pytest.fixture(scope="module")
def training_set(subject):
    return generate_training_set(subject, CONFIG, seed=3)


def test_synth_frames_shapes_masks_and_report(training_set):
    ts = training_set
    assert ts.backend == "synth" and ts.motions == ["walk", "dance"] and ts.follows_driving_pose
    assert len(ts.frames) == 1 + 16 and ts.num_generated == 16
    assert ts.frames[0].captured and not any(f.captured for f in ts.frames[1:])
    assert [f.index for f in ts.clip("dance")] == list(range(8))
    for frame in ts.generated:
        assert frame.image.shape == (96, 72, 3) and frame.mask.shape == (96, 72)
        assert frame.image.min() >= 0 and frame.image.max() <= 1
        assert frame.camera.width == 72 and frame.camera.height == 96
        assert 0.05 < frame.mask.mean() < 0.6  # a person, not an empty or a full frame
        assert frame.pose.batch == 1
        person = frame.mask > 0.5
        assert 2.0 < frame.depth[person].min() and frame.depth[person].max() < 4.0  # metres
        assert torch.allclose(frame.normal[person].norm(dim=-1), torch.ones(1), atol=1e-4)


def test_poses_are_known_and_match_the_images(training_set, subject, body):
    # Each frame's pose and camera put the body where its mask is: the projected hips,
    # shoulders and knees of the known pose land inside the rendered person.
    names = ["left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_knee", "right_knee"]
    index = [body.keypoint_names.index(n) for n in names]
    for frame in training_set.generated:
        with torch.no_grad():
            keypoints = body.forward(subject.shape[None], frame.pose).keypoints[0, index]
        pixels, _ = frame.camera.project(keypoints)
        x = pixels[:, 0].long().clamp(0, frame.camera.width - 1)
        y = pixels[:, 1].long().clamp(0, frame.camera.height - 1)
        assert (frame.mask[y, x] > 0.5).all(), (frame.motion, frame.index)
    # After the blend, a frame's joints are the retimed motion's joints exactly.
    walk = retime(get_motion("walk"), 8)
    frame = training_set.clip("walk")[5]
    for j, name in enumerate(walk.joint_names):
        assert torch.allclose(frame.pose.joint_rotations[0, body.joint_index(name)], walk.rotations[5, j], atol=1e-5)


def test_first_frame_is_the_photo(training_set, subject):
    photo = subject.photo
    for clip in ("walk", "dance"):
        first = training_set.clip(clip)[0]
        assert torch.allclose(first.pose.joint_rotations, photo.pose.joint_rotations, atol=1e-5)
        assert torch.allclose(first.pose.global_orient, photo.pose.global_orient, atol=1e-5)
        assert torch.allclose(first.pose.translation, photo.pose.translation, atol=1e-5)
        assert torch.allclose(first.camera.world_to_camera, photo.camera.world_to_camera)
        assert first.camera.fx == pytest.approx(photo.camera.fx * 96 / 320)
        # The avatar exactly as in the photo, seen at the generated size.
        rig = subject.rig
        with torch.no_grad():
            means = rig.pose_points(rig.rest_points + subject.avatar.offsets, photo.pose)[0]
            expected = render_gaussians(subject.avatar, means, photo.camera.scaled(96 / 320), torch.ones(3))
        assert torch.allclose(first.mask, expected.alpha, atol=1e-5)


def test_cameras_orbit_the_body_front_sides_back(training_set, subject):
    frames = training_set.generated
    poses = BodyPose(*(torch.cat([getattr(f.pose, k) for f in frames]) for k in ("joint_rotations", "global_orient", "translation")))
    plan_centre = plan_driving(subject.body, subject.shape, subject.photo.pose, subject.photo.camera, ("walk",), 1, 96).centre
    azimuths = view_azimuths(poses, [f.camera for f in frames], plan_centre)
    assert (azimuths.abs() < 30).any()  # front
    assert ((azimuths > 60) & (azimuths < 120)).any()  # the body's left side
    assert ((azimuths < -60) & (azimuths > -120)).any()  # its right side
    assert (azimuths.abs() > 150).any()  # back
    # Same intrinsics and distance as the photo's camera, at every frame.
    centre = plan_centre
    d0 = (subject.photo.camera.center - centre).norm()
    for f in frames:
        assert f.camera.fx == frames[0].camera.fx
        assert (f.camera.center - centre).norm() == pytest.approx(float(d0), rel=1e-4)


def test_front_normals_face_the_camera(training_set):
    first = training_set.clip("walk")[0]
    person = first.mask > 0.5
    assert first.normal[person][:, 2].mean() < -0.5  # OpenCV camera: towards the camera is -z


def test_deterministic_for_a_seed(subject):
    small = GenerateConfig(motions=("jump",), frames_per_motion=3, resolution=64)
    first, again = (generate_training_set(subject, small, seed=7) for _ in range(2))
    assert first.num_generated == 3
    for a, b in zip(first.frames, again.frames):
        assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
        assert torch.equal(a.pose.joint_rotations, b.pose.joint_rotations)


def test_backends_registry():
    assert set(BACKENDS) >= {"synth", "wan-vace", "mimicmotion"}
    for name in ("synth", "wan-vace", "mimicmotion"):  # the diffusion ones fall back to synth without weights
        assert get_backend(name).run is not None
        assert get_backend(name).follows_driving_pose == (name == "synth")  # a video model's frames do not
        assert get_backend(name).true_colors == (name == "synth")  # nor keep the avatar's colours
        assert get_backend(name).body_skinning == (name == "synth")  # nor its skinning
    with pytest.raises(PersonaError, match="Unknown training-video generator"):
        get_backend("sora")


def test_retime_slerp_and_blend():
    walk = get_motion("walk")
    short = retime(walk, 12)
    assert short.num_frames == 12 and short.fps == pytest.approx(walk.fps * 12 / walk.num_frames)
    assert short.skeleton == walk.skeleton and short.joint_names == walk.joint_names
    assert torch.equal(short.rotations[0], walk.rotations[0])
    assert torch.allclose(short.rotations[6], walk.rotations[36])  # 72 frames -> every 6th
    a, b = torch.tensor([[0.0, 0.0, 0.3]]), torch.tensor([[0.5, 0.0, 0.0]])
    assert torch.allclose(slerp_rotvec(a, b, torch.tensor([0.0])), a, atol=1e-6)
    assert torch.allclose(slerp_rotvec(a, b, torch.tensor([1.0])), b, atol=1e-6)
    z, y = torch.zeros(1, 3), torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.allclose(slerp_rotvec(z, y, torch.tensor([0.25])), 0.25 * y, atol=1e-6)
    w = blend_weights(6, 3)
    assert w[0] == 0 and w[3] == 1 and w[5] == 1 and (w[1:4] > w[:3]).all()


def test_pose_on_subject_composes_the_root(body):
    photo = BodyPose.zeros(1, body.num_joints)
    photo.global_orient[0, 1] = math.pi / 2  # facing +X
    photo.translation[0] = torch.tensor([1.0, 0.0, -3.0])
    motion = get_motion("dance").to_pose(body)
    placed = pose_on_subject(motion, photo, blend_frames=0)
    # The dance's sideways sway (motion +X) becomes the photo body's own left, world -Z.
    t = motion.translation[5]
    expected = photo.translation[0] + torch.tensor([t[2], t[1], -t[0]])
    assert torch.allclose(placed.translation[5], expected, atol=1e-6)


def test_orbit_about_keeps_distance_and_view():
    camera = photo_camera(60, 80, 50.0)
    centre = torch.tensor([0.2, 0.9, -3.0])
    assert torch.allclose(orbit_about(camera, centre, 0.0).world_to_camera, camera.world_to_camera)
    back = orbit_about(camera, centre, 180.0)
    # Mirrored through the vertical axis of the centre; the centre projects to the same pixel.
    assert torch.allclose(back.center, torch.tensor([0.4, 0.0, -6.0]), atol=1e-5)
    assert torch.allclose(back.project(centre)[0], camera.project(centre)[0], atol=1e-3)
    side = orbit_about(camera, centre, 90.0)  # towards +X, the left of a body facing +Z
    assert side.center[0] > centre[0] + 2.9


def test_clip_keypoints_hide_the_face_from_behind(subject, body):
    plan = plan_driving(body, subject.shape, subject.photo.pose, subject.photo.camera, ("walk",), 8, 96, blend_frames=0)
    clip = plan.clips[0]
    keypoints = clip_keypoints(body, subject.shape, clip)
    assert keypoints.shape == (8, 23, 3)
    azimuths = view_azimuths(clip.poses, clip.cameras, plan.centre)
    nose, ears = body.keypoint_names.index("nose"), [body.keypoint_names.index(n) for n in ("left_ear", "right_ear")]
    front, back = int(azimuths.abs().argmin()), int(azimuths.abs().argmax())
    assert keypoints[front, nose, 2] == 1 and keypoints[back, nose, 2] == 0
    assert keypoints[back, ears, 2].max() == 1  # an ear is seen from behind, the nose is not
    video = skeleton_video(keypoints, 96, 72)
    assert video.shape == (8, 96, 72, 3) and video[front].any()
