"""The training set the avatar is optimised on: the captured photo plus generated frames.

Every frame carries its body pose and camera, known by construction for generated frames
(the driving pose with the subject's own shape), so the optimisation never has to estimate
them. Images are float in [0, 1], (H, W, 3), row 0 at the top; cameras follow
`persona.camera` (OpenCV).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from persona.body.model import BodyPose
from persona.camera import Camera

CAPTURED = "photo"  # the `motion` name of the captured frame


@dataclass
class TrainingFrame:
    """One image with the body pose and camera it shows.

    image: (H, W, 3) float [0, 1]: the photo, or the generated frame as the backend made it
        (the `synth` backend composites the person on white; use `mask` to separate).
    mask: (H, W) float [0, 1] person mask (render alpha for `synth`).
    pose: BodyPose with batch 1, for the subject's shape (`TrainingSet.shape`).
    camera: the frame's camera (its width/height equal the image's).
    captured: True for the input photo, False for generated frames.
    motion: the driving motion's name (`CAPTURED` for the photo); index: frame in its clip.
    depth: (H, W) metres along the optical axis where the person is (mask > 0.5), else 0.
    normal: (H, W, 3) unit normals in camera axes (OpenCV: x right, y down, z forward) where
        the person is, else 0. depth and normal are None where the backend cannot give them.
    depth_relative: depth is known only up to a scale and a shift (a monocular estimate); the
        loss aligns it to the render first (`persona.avatar.losses.affine_aligned`).
    """

    image: torch.Tensor
    mask: torch.Tensor
    pose: BodyPose
    camera: Camera
    captured: bool
    motion: str
    index: int = 0
    depth: torch.Tensor | None = None
    normal: torch.Tensor | None = None
    depth_relative: bool = False

    def __post_init__(self):
        H, W = self.mask.shape
        assert self.image.shape == (H, W, 3), (self.image.shape, self.mask.shape)
        assert (self.camera.width, self.camera.height) == (W, H), (self.camera.width, self.camera.height, W, H)
        assert self.pose.batch == 1

    def to(self, device: torch.device | str) -> "TrainingFrame":
        """The frame's tensors on `device` (the camera stays on the CPU)."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(
            self, image=self.image.to(device), mask=self.mask.to(device), pose=self.pose.to(device),
            depth=move(self.depth), normal=move(self.normal),
        )  # fmt: skip

    @property
    def size(self) -> tuple[int, int]:  # (width, height)
        return self.camera.width, self.camera.height


@dataclass
class TrainingSet:
    """The captured frame first, then the generated clips in order.

    shape: (S,) the subject's body shape every pose is for. backend: the generator backend
    that made the generated frames. motions: the driving motions, one clip each.
    follows_driving_pose: whether each generated frame shows the person exactly in the pose it
    records (a render of the avatar does; a video model follows its pose conditioning only
    roughly), which sets how freely the PERSONA optimisation refines the frames' poses.
    true_colors: whether the generated frames show the avatar's colours as they are (a render
    of the first avatar does; a video model's drift), which decides whether the PERSONA
    optimisation matches each frame's colours before comparing (`correct_colors`).
    body_skinning: whether the generated frames show the avatar skinned with the body's own
    weights (a render of the first avatar does), from which no other skinning can be learnt:
    the PERSONA optimisation then keeps the body's weights (no diffused skinning).
    """

    frames: list[TrainingFrame]
    shape: torch.Tensor
    backend: str
    motions: list[str]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    follows_driving_pose: bool = True
    true_colors: bool = False
    body_skinning: bool = False

    def to(self, device: torch.device | str) -> "TrainingSet":
        return replace(self, frames=[f.to(device) for f in self.frames], shape=self.shape.to(device))

    @property
    def captured(self) -> list[TrainingFrame]:
        return [f for f in self.frames if f.captured]

    @property
    def generated(self) -> list[TrainingFrame]:
        return [f for f in self.frames if not f.captured]

    @property
    def num_generated(self) -> int:
        return sum(not f.captured for f in self.frames)

    def clip(self, motion: str) -> list[TrainingFrame]:
        """The generated frames of one driving motion, in order."""
        return [f for f in self.frames if not f.captured and f.motion == motion]
