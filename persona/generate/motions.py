"""The built-in motion library and the motion file format.

A `Motion` holds per-frame rotations for named joints (axis-angle, radians, in world-aligned
axes as `persona.body.model` defines), a global orientation and a root translation. Joints
are named as in the body model the motion was made on, its `skeleton` (anny's bone names for
the built-in motions); `Motion.to_pose` retargets a motion made on another skeleton (e.g.
imported SMPL-X motion capture, see `persona.generate.motion_import`) onto the body's.

Axis reminders (Y up, the body facing +Z, its left at +X), from the rest A-pose:
- about +X: a limb hanging down swings backwards (so hip flexion and arm raise-forward are
  negative, knee flexion positive);
- about +Z: the left arm rises sideways for positive angles, the right arm for negative;
- about +Y: the body turns to its left.
Motion files are `.npz` with arrays only (never pickles): `joint_names` (unicode array),
`rotations` (F, J, 3), `global_orient` (F, 3), `translation` (F, 3), `fps` (scalar), and
optionally `skeleton` (unicode scalar, default "anny"). `get_motion` also reads SMPL-X/SMPL
files (AMASS-style or per-frame parameter sets) and BVH.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from persona.body.model import BodyModel, BodyPose
from persona.errors import PersonaError

FPS = 24


@dataclass
class Motion:
    """rotations: (F, J, 3) axis-angle for `joint_names`; global_orient, translation: (F, 3);
    skeleton: the body model the joints belong to ("anny", "smplx")."""

    name: str
    fps: float
    joint_names: list[str]
    rotations: torch.Tensor
    global_orient: torch.Tensor
    translation: torch.Tensor
    skeleton: str = "anny"

    @property
    def num_frames(self) -> int:
        return self.rotations.shape[0]

    def to_pose(self, body: BodyModel) -> BodyPose:
        """The motion as a batch of F body poses of `body` (retargeted first when made on another
        skeleton; unknown joint names ignored)."""
        if self.skeleton != body.name:
            from persona.generate.retarget import motion_for_body

            return motion_for_body(self, body).to_pose(body)
        pose = BodyPose.zeros(self.num_frames, body.num_joints)
        for j, name in enumerate(self.joint_names):
            if name in body.joint_names:
                pose.joint_rotations[:, body.joint_index(name)] = self.rotations[:, j]
        pose.global_orient[:] = self.global_orient
        pose.translation[:] = self.translation
        return pose

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the motion `.npz` format."""
        return {
            "joint_names": np.array(self.joint_names),
            "rotations": self.rotations.numpy().astype(np.float32),
            "global_orient": self.global_orient.numpy().astype(np.float32),
            "translation": self.translation.numpy().astype(np.float32),
            "fps": np.float32(self.fps),
            "skeleton": np.array(self.skeleton),
        }

    def save(self, path: str | Path) -> None:
        np.savez(path, **self.arrays())


def load_motion(path: str | Path, max_frames: int = 10_000) -> Motion:
    """Read a motion `.npz` (arrays only; pickled objects are refused)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            # Refuse a zip bomb before inflating: 4 kB per frame (300 float32 joints) is plenty.
            if sum(info.file_size for info in data.zip.infolist()) > max_frames * 4096 + 2**20:
                raise PersonaError(f"The motion file '{path.name}' is too large for {max_frames} frames.")
            arrays = {k: data[k] for k in ("joint_names", "rotations", "global_orient", "translation", "fps")}
            skeleton = data["skeleton"] if "skeleton" in data.files else np.array("anny")
    except (PersonaError, MemoryError):
        raise
    except Exception as err:  # untrusted bytes: BadZipFile, a bare .npy (TypeError), a garbled header (SyntaxError), ...
        raise PersonaError(
            f"Could not read the motion file '{path.name}' ({err}). Expected a .npz with joint_names, "
            "rotations, global_orient, translation and fps, or a built-in motion name (`persona motions`)."
        ) from None
    names, rotations = arrays["joint_names"], arrays["rotations"]
    F = rotations.shape[0] if rotations.ndim == 3 else -1
    if (
        names.ndim != 1
        or names.dtype.kind != "U"
        or rotations.shape != (F, len(names), 3)
        or arrays["global_orient"].shape != (F, 3)
        or arrays["translation"].shape != (F, 3)
        or not 0 < F <= max_frames
        or arrays["fps"].shape != ()
        or not 1 <= float(arrays["fps"]) <= 240
        or skeleton.shape != ()
        or skeleton.dtype.kind != "U"
        or str(skeleton) not in ("anny", "smplx")
    ):
        raise PersonaError(f"The motion file '{path.name}' has inconsistent arrays or too many frames (max {max_frames}).")
    tensors = [torch.from_numpy(np.asarray(arrays[k], dtype=np.float32)) for k in ("rotations", "global_orient", "translation")]
    if not all(torch.isfinite(t).all() for t in tensors):
        raise PersonaError(f"The motion file '{path.name}' contains non-finite values.")
    return Motion(path.stem, float(arrays["fps"]), [str(n) for n in names], *tensors, skeleton=str(skeleton))


# --- the built-in library: procedural motions on anny's skeleton -----------------------------

# Arms from the A-pose down along the body (about 25 degrees from vertical).
_ARMS_DOWN = {"upperarm01.L": (0.0, 0.0, -0.45), "upperarm01.R": (0.0, 0.0, 0.45)}


class _Builder:
    """Accumulates per-frame joint rotations for a procedural motion."""

    def __init__(self, name: str, frames: int):
        self.name, self.frames = name, frames
        self.t = torch.arange(frames, dtype=torch.float32) / FPS  # seconds
        self.rot: dict[str, torch.Tensor] = {}
        self.global_orient = torch.zeros(frames, 3)
        self.translation = torch.zeros(frames, 3)

    def add(self, joint: str, axis: int, angle: torch.Tensor | float) -> None:
        r = self.rot.setdefault(joint, torch.zeros(self.frames, 3))
        r[:, axis] += angle

    def add_static(self, rotations: dict[str, tuple[float, float, float]]) -> None:
        for joint, angles in rotations.items():
            for axis, a in enumerate(angles):
                self.add(joint, axis, a)

    def build(self) -> Motion:
        names = list(self.rot)
        rotations = torch.stack([self.rot[n] for n in names], 1) if names else torch.zeros(self.frames, 0, 3)
        return Motion(self.name, FPS, names, rotations, self.global_orient, self.translation)


def _walk(frames: int = 72) -> Motion:
    m = _Builder("walk", frames)
    phase = 2 * math.pi * m.t / 1.1  # one stride cycle every 1.1 s
    s, c = torch.sin(phase), torch.cos(phase)
    m.add_static(_ARMS_DOWN)
    for side, sign in (("L", 1.0), ("R", -1.0)):
        swing = sign * s  # > 0: this leg forward
        m.add(f"upperleg01.{side}", 0, -0.45 * swing)
        m.add(f"lowerleg01.{side}", 0, 0.1 + 0.55 * (sign * c).clamp(min=0))  # knee bends in swing
        m.add(f"foot.{side}", 0, -0.15 * swing)
        m.add(f"upperarm01.{side}", 0, 0.35 * swing)  # arms opposite to the legs
        m.add(f"lowerarm01.{side}", 0, -0.25 - 0.15 * (-swing).clamp(min=0))
    m.add("spine03", 1, 0.08 * s)  # counter-rotation of the torso
    m.translation[:, 1] = 0.02 * torch.cos(2 * phase)  # bob twice per stride
    return m.build()


def _wave(frames: int = 72) -> Motion:
    m = _Builder("wave", frames)
    rise = (m.t / 0.5).clamp(max=1.0)  # the arm goes up in half a second
    m.add("upperarm01.L", 2, -0.45)
    m.add("upperarm01.R", 2, -1.9 * rise)  # right arm up beside the head
    m.add("lowerarm01.R", 2, -0.5 * rise + 0.45 * rise * torch.sin(2 * math.pi * 1.6 * m.t))
    m.add("lowerarm01.R", 0, -0.3 * rise)
    m.add("head", 2, 0.08 * rise)
    m.add("spine02", 2, 0.05 * rise)
    return m.build()


def _turn_around(frames: int = 96) -> Motion:
    m = _Builder("turn_around", frames)
    m.add_static(_ARMS_DOWN)
    m.global_orient[:, 1] = 2 * math.pi * m.t / (frames / FPS)  # one full turn
    step = torch.sin(2 * math.pi * m.t / 0.5).clamp(min=0)  # small steps while turning
    m.add("upperleg01.L", 0, -0.25 * step)
    m.add("lowerleg01.L", 0, 0.45 * step)
    return m.build()


def _jump(frames: int = 60) -> Motion:
    m = _Builder("jump", frames)
    T = frames / FPS
    u = m.t / T  # 0..1
    crouch = torch.exp(-(((u - 0.25) / 0.1) ** 2)) + torch.exp(-(((u - 0.8) / 0.08) ** 2))  # before and after
    airborne = ((u > 0.35) & (u < 0.72)).float()
    flight = airborne * torch.sin(math.pi * ((u - 0.35) / 0.37).clamp(0, 1))
    for side, sign in (("L", 1.0), ("R", -1.0)):
        m.add(f"upperleg01.{side}", 0, -0.9 * crouch - 0.2 * flight)
        m.add(f"lowerleg01.{side}", 0, 1.5 * crouch + 0.4 * flight)
        m.add(f"foot.{side}", 0, -0.6 * crouch + 0.3 * flight)
        m.add(f"upperarm01.{side}", 2, sign * (-0.45 + 1.6 * flight))
        m.add(f"upperarm01.{side}", 0, 0.6 * crouch)
    m.add("spine03", 0, -0.3 * crouch)
    # The pelvis drops in the crouch and rises in flight (ballistic, 0.35 m at the top).
    m.translation[:, 1] = -0.28 * crouch + 0.35 * flight
    return m.build()


def _dance(frames: int = 96) -> Motion:
    m = _Builder("dance", frames)
    beat = 2 * math.pi * m.t / 0.8  # 75 beats per minute, one sway per beat pair
    s, s2 = torch.sin(beat), torch.sin(2 * beat)
    m.translation[:, 0] = 0.06 * s  # hips sway side to side
    m.translation[:, 1] = -0.03 * (1 - torch.cos(2 * beat)) / 2
    m.add("spine04", 2, -0.12 * s)
    m.add("spine02", 2, 0.18 * s)
    m.add("head", 2, -0.1 * s)
    for side, sign in (("L", 1.0), ("R", -1.0)):
        up = (sign * s).clamp(min=0)  # each arm rises on its beat
        m.add(f"upperarm01.{side}", 2, sign * (-0.3 + 1.5 * up))
        m.add(f"lowerarm01.{side}", 0, -0.9 + 0.4 * up)
        m.add(f"lowerarm01.{side}", 2, sign * 0.6 * up)
        m.add(f"upperleg01.{side}", 0, -0.15 * (sign * s2).clamp(min=0))
        m.add(f"lowerleg01.{side}", 0, 0.3 * (sign * s2).clamp(min=0) + 0.05)
    return m.build()


def _stretch(frames: int = 96) -> Motion:
    """A range-of-motion clip, as capture sessions record: the arms rise sideways over the head
    twice (the right a quarter cycle behind the left, so one-up-one-down poses occur too) while
    the body squats once. It reaches the poses that wave and jump reach (the arms overhead,
    the hips deeply bent) without being either."""
    m = _Builder("stretch", frames)
    u = m.t / (frames / FPS)  # 0..1
    for side, sign, lag in (("L", 1.0, 0.0), ("R", -1.0, math.pi / 2)):
        up = (1 - torch.cos(2 * math.pi * 2 * u - lag)) / 2  # 0: arm down, 1: overhead
        m.add(f"upperarm01.{side}", 2, sign * (-0.45 + 2.25 * up))
        m.add(f"lowerarm01.{side}", 0, -0.2 * up)
    squat = torch.sin(math.pi * u) ** 2
    for side in ("L", "R"):
        m.add(f"upperleg01.{side}", 0, -1.0 * squat)
        m.add(f"lowerleg01.{side}", 0, 1.7 * squat)
        m.add(f"foot.{side}", 0, -0.7 * squat)
    m.add("spine03", 0, -0.25 * squat)  # the torso leans forward over the bent hips
    m.translation[:, 1] = -0.3 * squat
    return m.build()


MOTIONS: dict[str, Callable[[], Motion]] = {
    "walk": _walk,
    "wave": _wave,
    "turn_around": _turn_around,
    "jump": _jump,
    "dance": _dance,
    "stretch": _stretch,
}

DESCRIPTIONS = {
    "walk": "walking in place, arms swinging (3 s)",
    "wave": "raises the right arm and waves (3 s)",
    "turn_around": "turns a full circle on the spot (4 s)",
    "jump": "crouches, jumps and lands (2.5 s)",
    "dance": "sways the hips with alternating arms (4 s)",
    "stretch": "raises the arms over the head and squats (4 s)",
}


# Motion files stored here (any format `get_motion` reads) join the library under their name.
LIBRARY_DIR = Path(__file__).with_name("library")


def stored_motions() -> dict[str, Path]:
    """Name -> file of the motions stored in `LIBRARY_DIR` (none ship yet)."""
    if not LIBRARY_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(LIBRARY_DIR.iterdir()) if p.suffix.lower() in (".npz", ".bvh") and p.stem not in MOTIONS}


def get_motion(name_or_path: str | Path) -> Motion:
    """A built-in motion by name (procedural or stored), or a motion file: our .npz, an
    SMPL-X/SMPL .npz (AMASS-style or per-frame parameters), a folder of per-frame SMPL-X .npz
    files, or a .bvh."""
    if str(name_or_path) in MOTIONS:
        return MOTIONS[str(name_or_path)]()
    stored = stored_motions()
    path = stored.get(str(name_or_path), Path(name_or_path))
    if path.suffix.lower() in (".npz", ".bvh", ".pkl") or path.is_dir():
        if not path.exists():
            raise PersonaError(f"The motion file '{path}' does not exist.")
        from persona.generate.motion_import import load_motion_file

        return load_motion_file(path)
    raise PersonaError(
        f"Unknown motion '{name_or_path}'. Built-in motions: {', '.join([*MOTIONS, *stored])}; or give a motion file "
        "(.npz: ours, AMASS-style or SMPL-X parameters; a folder of per-frame SMPL-X .npz; .bvh)."
    )
