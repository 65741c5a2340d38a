"""Driving motions and cameras for the generated training videos.

A `DrivingPlan` is a few clips, one per driving motion. Each clip:
- takes a motion from the library, retimed to the wanted number of frames over its whole
  duration (so a short clip still shows a whole walk cycle or a whole dance phrase);
- poses it on the subject: frame 0 is exactly the photo's fitted pose (joint rotations,
  global orientation, translation), and the joints blend into the motion over the first
  `blend_frames` frames (per-joint slerp, smoothstep weights), as a pose-guided video model
  starts from the reference image's own pose; the motion's root turn and translation are
  applied in the photo body's own frame;
- is seen by a camera placed like the photo's: the same intrinsics (rescaled to the wanted
  resolution) and distance, orbiting about the vertical axis through the body (frame 0 is the
  photo's camera itself); successive clips orbit in alternate directions, so that the front,
  both sides and the back are all seen while arms and legs move.

Orbiting the camera is equivalent to turning the body for a video model (the skeleton drawn
is the same); we keep the body's placement and move the camera, so every frame's body pose
stays in the photo's world frame. Conventions: `persona.camera` (Y up, body faces +Z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import roma
import torch

from persona.body.model import BodyModel, BodyPose
from persona.camera import Camera
from persona.generate.motions import Motion, get_motion

FACE_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
FACE_VISIBLE_COS = -0.34  # cos(110 degrees)


@dataclass
class DrivingClip:
    """One driving video of F frames.

    name: unique clip name (the motion's name, with a suffix when a motion repeats).
    poses: BodyPose batch F, for the subject's shape, in the photo's world frame.
    cameras: F cameras of one image size. orbit_deg: (F,) each camera's orbit angle from the
    photo camera about the body's vertical axis, degrees (positive: towards the body's left
    when it faces the photo camera).
    """

    name: str
    motion: str
    poses: BodyPose
    cameras: list[Camera]
    orbit_deg: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.poses.batch


@dataclass
class DrivingPlan:
    """clips: the driving clips in order; centre: (3,) the point the cameras orbit about."""

    clips: list[DrivingClip]
    centre: torch.Tensor

    @property
    def num_frames(self) -> int:
        return sum(c.num_frames for c in self.clips)


# --- motions ----------------------------------------------------------------------------------


def retime(motion: Motion, frames: int) -> Motion:
    """`motion` resampled to `frames` frames spread evenly over its whole duration (linear
    interpolation between neighbouring frames; the last frame is not repeated, so a cyclic
    motion stays cyclic). The fps changes so that the duration is kept."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    F = motion.num_frames
    t = torch.arange(frames, dtype=torch.float32) * (F / frames)  # in source frames
    lo = t.floor().long().clamp(max=F - 1)
    hi = (lo + 1).clamp(max=F - 1)
    w = (t - lo.float()).clamp(0, 1)

    def lerp(x: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 1)
        return x[lo] * (1 - w.view(shape)) + x[hi] * w.view(shape)

    return replace(
        motion, fps=motion.fps * frames / F, joint_names=list(motion.joint_names), rotations=lerp(motion.rotations),
        global_orient=lerp(motion.global_orient), translation=lerp(motion.translation),
    )  # fmt: skip


def slerp_rotvec(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Element-wise rotation interpolation. a, b: (..., 3) axis-angle; w: broadcastable to
    (...,) in [0, 1] -> (..., 3), equal to a at w = 0 and b at w = 1 (shortest path)."""
    Ra, Rb = roma.rotvec_to_rotmat(a), roma.rotvec_to_rotmat(b)
    relative = roma.rotmat_to_rotvec(Ra.transpose(-1, -2) @ Rb)  # (..., 3)
    return roma.rotmat_to_rotvec(Ra @ roma.rotvec_to_rotmat(relative * w[..., None]))


def blend_weights(frames: int, blend_frames: int) -> torch.Tensor:
    """(frames,) smoothstep from 0 at frame 0 to 1 at frame `blend_frames` (1 everywhere when
    blend_frames is 0)."""
    if blend_frames <= 0:
        return torch.ones(frames)
    u = (torch.arange(frames, dtype=torch.float32) / blend_frames).clamp(0, 1)
    return u * u * (3 - 2 * u)


def pose_on_subject(motion_pose: BodyPose, photo_pose: BodyPose, blend_frames: int) -> BodyPose:
    """Place a motion (batch F, relative to a body at the origin facing +Z) on the photo's
    body (batch 1): joints blend from the photo's into the motion's; the motion's root turn
    and translation apply in the photo body's own frame (R = R_photo R_motion,
    t = t_photo + R_photo t_motion), faded in with the same weights."""
    F, device = motion_pose.batch, photo_pose.translation.device
    motion_pose = motion_pose.to(device)
    w = blend_weights(F, blend_frames).to(device)  # (F,)
    joints = slerp_rotvec(photo_pose.joint_rotations.expand(F, -1, -1), motion_pose.joint_rotations, w[:, None])
    R_photo = roma.rotvec_to_rotmat(photo_pose.global_orient[0])  # (3, 3)
    R_motion = roma.rotvec_to_rotmat(slerp_rotvec(torch.zeros(F, 3, device=device), motion_pose.global_orient, w))  # (F, 3, 3)
    global_orient = roma.rotmat_to_rotvec(R_photo @ R_motion)
    translation = photo_pose.translation + (w[:, None] * motion_pose.translation) @ R_photo.T
    return BodyPose(joints, global_orient, translation)


# --- cameras ----------------------------------------------------------------------------------


def _rotation_y(angle_rad: float) -> torch.Tensor:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def orbit_about(camera: Camera, centre: torch.Tensor, angle_deg: float) -> Camera:
    """`camera` moved on a circle about the vertical axis through `centre` (3,) by
    `angle_deg` (positive: from +Z towards +X, as `orbit_camera`'s azimuth); it keeps its
    intrinsics, distance, height and its view of the centre."""
    device = camera.world_to_camera.device
    T = torch.eye(4, device=device)
    T[:3, :3] = _rotation_y(-math.radians(angle_deg)).to(device)
    c = centre.float().to(device)
    T[:3, 3] = c - T[:3, :3] @ c  # x -> c + R_y(-a) (x - c)
    return replace(camera, world_to_camera=camera.world_to_camera.float() @ T)


def body_centre(body: BodyModel, shape: torch.Tensor, pose: BodyPose) -> torch.Tensor:
    """(3,) the mean of the shoulders and hips of the posed body (batch 1)."""
    names = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
    index = [body.keypoint_names.index(n) for n in names]
    with torch.no_grad():
        keypoints = body.forward(shape[None], pose).keypoints[0]
    return keypoints[index].mean(0)


def view_azimuths(poses: BodyPose, cameras: list[Camera], centre: torch.Tensor) -> torch.Tensor:
    """(F,) where each camera sees the body from, in degrees in (-180, 180]: 0 in front of it,
    +90 at its left side, -90 at its right side, 180 behind (the root's orientation; the
    rest body faces +Z with its left towards +X)."""
    with torch.device("cpu"):  # a handful of numbers, whatever device the poses are on
        R = roma.rotvec_to_rotmat(poses.global_orient.cpu())  # (F, 3, 3)
        forward, left = R[:, :, 2], R[:, :, 0]  # the body's +Z and +X in world coordinates
        to_camera = torch.stack([c.center.float().cpu() for c in cameras]) - centre.float().cpu()
        to_camera[:, 1] = 0.0  # horizontal directions only
        forward = forward * torch.tensor([1.0, 0.0, 1.0])
        left = left * torch.tensor([1.0, 0.0, 1.0])
        return torch.rad2deg(torch.atan2((to_camera * left).sum(-1), (to_camera * forward).sum(-1)))


# --- the plan ---------------------------------------------------------------------------------


def plan_driving(
    body: BodyModel,
    shape: torch.Tensor,
    photo_pose: BodyPose,
    photo_camera: Camera,
    motions: tuple[str, ...] | list[str],
    frames_per_motion: int,
    resolution: int,
    orbit_degrees: float = 360.0,
    blend_frames: int = 4,
) -> DrivingPlan:
    """The driving clips for a subject (shape (S,), photo pose batch 1, photo camera).

    motions: built-in names or motion files, one clip each; resolution: longer side of the
    frames in pixels (the photo camera is rescaled to it); orbit_degrees: how far each clip's
    camera travels, alternating direction from clip to clip."""
    if not motions:
        raise ValueError("at least one driving motion is needed")
    factor = resolution / max(photo_camera.width, photo_camera.height)
    camera0 = photo_camera.scaled(factor)
    centre = body_centre(body, shape, photo_pose)
    clips, seen = [], {}
    for k, name in enumerate(motions):
        motion = retime(get_motion(name), frames_per_motion)
        poses = pose_on_subject(motion.to_pose(body), photo_pose, blend_frames)
        direction = 1.0 if k % 2 == 0 else -1.0
        orbit = direction * orbit_degrees * torch.arange(frames_per_motion, dtype=torch.float32) / frames_per_motion
        cameras = [orbit_about(camera0, centre, float(a)) for a in orbit]
        seen[motion.name] = seen.get(motion.name, 0) + 1
        clip_name = motion.name if seen[motion.name] == 1 else f"{motion.name}-{seen[motion.name]}"
        clips.append(DrivingClip(clip_name, motion.name, poses, cameras, orbit))
    return DrivingPlan(clips, centre)


def clip_keypoints(body: BodyModel, shape: torch.Tensor, clip: DrivingClip) -> np.ndarray:
    """(F, K, 3) the body's keypoints (COCO-23 for anny) in each frame's pixels, with a
    score: 1 where a pose detector would see the point, 0 where it is outside the image or
    is a face point turned away from the camera (nose and eyes seen from behind, the far
    ear in profile), so the skeleton of a back view differs from a front view's as in
    DWPose's detections."""
    with torch.no_grad():
        keypoints = body.forward(shape[None], clip.poses).keypoints.cpu()  # (F, K, 3) world
    names = body.keypoint_names
    face = [names.index(n) for n in FACE_KEYPOINTS if n in names]
    ears = [names.index(n) for n in ("left_ear", "right_ear") if n in names] or face
    out = np.zeros(keypoints.shape[:2] + (3,), dtype=np.float32)
    for f, camera in enumerate(clip.cameras):
        pixels, depth = camera.project(keypoints[f])
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < camera.width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < camera.height)
        score = (inside & (depth > 0)).float()
        if face:
            head = keypoints[f, ears].mean(0)  # the centre of the head
            outward = torch.nn.functional.normalize(keypoints[f, face] - head, dim=-1)
            to_camera = torch.nn.functional.normalize(camera.center.to(keypoints) - keypoints[f, face], dim=-1)
            # Seen when within about 110 degrees of its outward direction (ears stick out, and
            # detectors still place a nose seen in profile).
            score[face] = score[face] * ((outward * to_camera).sum(-1) > FACE_VISIBLE_COS).float()
        out[f, :, :2] = pixels.numpy()
        out[f, :, 2] = score.numpy()
    return out
