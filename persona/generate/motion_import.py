"""Motions from the formats animators already have, as `Motion`s on the SMPL-X skeleton.

Read (arrays only, never pickles; everything checked before use):
- AMASS-style `.npz`: `poses` (F, 165 SMPL-X | 156 SMPL-H | 72 SMPL | 66 body only) axis-angle,
  `trans` (F, 3), `mocap_framerate` (or `mocap_frame_rate`); or the split AMASS SMPL-X keys
  `root_orient`, `pose_body` (F, 63), optional `pose_hand` (F, 90), `pose_jaw`, `pose_eye`.
- per-frame SMPL-X parameter sets, as the `smplx` package takes them: `global_orient`,
  `body_pose` (F, 63 | F, 21, 3 | F, 21, 3, 3), optional `left_hand_pose`/`right_hand_pose`
  (45 values, not PCA), `jaw_pose`, `leye_pose`, `reye_pose`, `transl`, `fps`; in one `.npz`
  (a batch of F frames) or in a folder of one `.npz` per frame (in file-name order).
- BVH (`.bvh`), parsed with pybvh: joints found by their usual names (Hips, LeftUpLeg,
  LeftLeg, LeftFoot, LeftToeBase, Spine..., Neck, Head, LeftShoulder, LeftArm, LeftForeArm,
  LeftHand, with or without a `prefix:`), then retargeted onto the SMPL-X skeleton.

Then, for every format: resampled to the output frame rate (slerp of rotations, linear
translation); turned so the body stands up along +Y (the up axis is found from the pelvis's
orientation over the clip: AMASS is Z up, camera-frame fits are -Y up) and faces +Z (the
camera) in the first frame, starting at x = z = 0; and the root height set so the feet touch
the ground in the clip's lowest frames. Retargeting onto anny happens when the motion is
played (`Motion.to_pose`). The subject's shape (betas) is not used: the avatar keeps its own.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np
import roma
import torch

from persona.body.smplx_model import JOINTS
from persona.errors import PersonaError
from persona.generate.motions import FPS, Motion, load_motion
from persona.generate.retarget import (
    Skeleton,
    ground_motion,
    minimal_rotation,
    retarget,
    smplx_reference_skeleton,
)

log = logging.getLogger(__name__)

MAX_SOURCE_FRAMES = 200_000
MAX_ARRAY_BYTES = 512 * 2**20  # decompressed arrays read from one .npz
MAX_FRAMES = 10_000  # after resampling (7 min at 24 fps)
DEFAULT_FPS = 30.0  # per-frame parameter sets rarely record their rate
FORMATS = (
    "Expected one of: our motion .npz (joint_names, rotations, ...); an AMASS-style .npz (poses, trans, "
    "mocap_framerate); an SMPL-X parameter .npz (global_orient, body_pose, ..., transl) or a folder of them, "
    "one per frame; a .bvh file."
)

# Joint names of each AMASS `poses` width (None: a joint SMPL-X lacks, dropped).
_POSE_LAYOUTS: dict[int, list[str | None]] = {
    165: list(JOINTS),  # SMPL-X: body, jaw, eyes, hands
    156: list(JOINTS[:22]) + list(JOINTS[25:55]),  # SMPL-H: body and hands
    72: list(JOINTS[:22]) + [None, None],  # SMPL: body and two hand joints
    66: list(JOINTS[:22]),  # body only
}
_PARAMETER_JOINTS = {
    "body_pose": list(JOINTS[1:22]),
    "jaw_pose": ["jaw"],
    "leye_pose": ["left_eye_smplhf"],
    "reye_pose": ["right_eye_smplhf"],
    "left_hand_pose": list(JOINTS[25:40]),
    "right_hand_pose": list(JOINTS[40:55]),
}
_FPS_KEYS = ("mocap_framerate", "mocap_frame_rate", "fps", "frame_rate")


def load_motion_file(path: str | Path, fps: float = FPS) -> Motion:
    """Any supported motion file (or folder of per-frame files), by suffix and content."""
    path = Path(path)
    if path.is_dir():
        return load_smplx_frames(path, fps)
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        raise PersonaError(
            f"'{path.name}' is a pickle file, which PERSONA never loads (it can run code). "
            "Save the same arrays with numpy.savez instead. " + FORMATS
        )
    if suffix == ".bvh":
        return load_bvh(path, fps)
    if suffix != ".npz":
        raise PersonaError(f"'{path.name}' is not a motion file. " + FORMATS)
    keys = set(_npz_keys(path))
    if {"joint_names", "rotations"} <= keys:
        return load_motion(path)
    if keys & {"poses", "pose_body", "body_pose", "global_orient"}:
        return load_smpl_npz(path, fps)
    raise PersonaError(f"'{path.name}' holds none of the motion layouts PERSONA reads (keys: {', '.join(sorted(keys))}). " + FORMATS)


# --- reading .npz files safely ----------------------------------------------------------------


def _npz_keys(path: Path) -> list[str]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return list(data.files)
    except MemoryError:
        raise
    except Exception as err:  # untrusted bytes: BadZipFile, a bare .npy (TypeError), a garbled header, ...
        raise PersonaError(f"Could not read the motion file '{path.name}' ({err}). " + FORMATS) from None


def _read_arrays(path: Path, keys: set[str]) -> dict[str, np.ndarray]:
    """The numeric arrays `keys` that the file has (no pickles; other keys are not touched;
    at most MAX_ARRAY_BYTES once decompressed)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            present = [k for k in keys if k in data.files]
            size = sum(data.zip.getinfo(f"{k}.npy").file_size for k in present)
            if size > MAX_ARRAY_BYTES:
                raise PersonaError(f"'{path.name}' is too large ({size / 2**20:.0f} MiB of arrays; at most {MAX_ARRAY_BYTES / 2**20:.0f} MiB).")
            out = {k: np.asarray(data[k]) for k in present}
    except (PersonaError, MemoryError):
        raise
    except Exception as err:  # untrusted bytes: BadZipFile, a garbled .npy header (SyntaxError), ...
        raise PersonaError(f"Could not read the motion file '{path.name}' ({err}). " + FORMATS) from None
    for k, a in out.items():
        if a.dtype.kind not in "fiu":
            raise PersonaError(f"'{path.name}': '{k}' is not numeric (dtype {a.dtype}).")
        if not np.isfinite(a).all():
            raise PersonaError(f"'{path.name}': '{k}' contains non-finite values.")
    return out


def _fps(arrays: dict[str, np.ndarray], path: Path, required: bool) -> float:
    for key in _FPS_KEYS:
        if key in arrays:
            if arrays[key].size != 1 or not 1 <= float(arrays[key].reshape(-1)[0]) <= 1000:
                raise PersonaError(f"'{path.name}': {key} must be one frame rate between 1 and 1000, got {arrays[key].reshape(-1)[:3]}.")
            return float(arrays[key].reshape(-1)[0])
    if required:
        raise PersonaError(f"'{path.name}' has no frame rate: an AMASS-style file needs mocap_framerate (frames per second).")
    log.warning("%s gives no frame rate (fps): assuming %g frames per second", path.name, DEFAULT_FPS)
    return DEFAULT_FPS


def _rotvecs(a: np.ndarray, frames: int, joints: int, what: str, path: Path) -> np.ndarray:
    """(F, joints*3) | (F, joints, 3) axis-angle or (F, joints, 3, 3) matrices -> (F, joints, 3)."""
    if a.shape == (frames, joints, 3, 3):
        R = torch.from_numpy(a.astype(np.float64))
        if (R @ R.transpose(-1, -2) - torch.eye(3, dtype=R.dtype)).abs().max() > 1e-3 or (torch.det(R) < 0).any():
            raise PersonaError(f"'{path.name}': {what} holds matrices that are not rotations.")
        return roma.rotmat_to_rotvec(R).numpy()
    if a.shape in ((frames, joints * 3), (frames, joints, 3)):
        return a.reshape(frames, joints, 3).astype(np.float64)
    if what.endswith("hand_pose") and a.ndim == 2 and a.shape[0] == frames and a.shape[1] < 45:
        raise PersonaError(
            f"'{path.name}': {what} has {a.shape[1]} values per frame, which look like PCA coefficients; "
            "export the hand pose as 45 axis-angle values (use_pca=False)."
        )
    raise PersonaError(f"'{path.name}': {what} has shape {a.shape}, expected ({frames}, {joints * 3}) axis-angle.")


def load_smpl_npz(path: str | Path, fps: float = FPS) -> Motion:
    """An AMASS-style or SMPL-X parameter `.npz` as a motion on the SMPL-X skeleton."""
    path = Path(path)
    keys = set(_npz_keys(path))
    if "poses" in keys or "pose_body" in keys:
        return _amass(path, keys, fps)
    arrays = _read_arrays(path, set(_PARAMETER_JOINTS) | {"global_orient", "transl", *_FPS_KEYS})
    return _parameters_to_motion(path.stem, [arrays], [path], _fps(arrays, path, required=False), fps)


def _amass(path: Path, keys: set[str], fps: float) -> Motion:
    arrays = _read_arrays(path, {"poses", "trans", "root_orient", "pose_body", "pose_hand", "pose_jaw", "pose_eye", *_FPS_KEYS})
    if "trans" not in arrays:
        raise PersonaError(f"'{path.name}' has no 'trans' (F, 3): an AMASS-style file needs the root translation.")
    trans = arrays["trans"]
    F = trans.shape[0] if trans.ndim == 2 else -1
    if trans.shape != (F, 3) or not 1 <= F <= MAX_SOURCE_FRAMES:
        raise PersonaError(f"'{path.name}': trans has shape {trans.shape}, expected (F, 3) with 1 <= F <= {MAX_SOURCE_FRAMES}.")
    source_fps = _fps(arrays, path, required=True)
    rotations: dict[str, np.ndarray] = {}
    if "poses" in arrays:
        poses = arrays["poses"]
        if poses.ndim != 2 or poses.shape[0] != F or poses.shape[1] not in _POSE_LAYOUTS:
            raise PersonaError(
                f"'{path.name}': poses has shape {poses.shape}, expected ({F}, D) with D = 165 (SMPL-X), 156 (SMPL-H), "
                "72 (SMPL) or 66 (body only)."
            )
        layout = _POSE_LAYOUTS[poses.shape[1]]
        values = poses.reshape(F, -1, 3).astype(np.float64)
        rotations = {name: values[:, k] for k, name in enumerate(layout) if name is not None}
    else:
        parts = {"root_orient": ["pelvis"], "pose_body": list(JOINTS[1:22]), "pose_jaw": ["jaw"],
                 "pose_eye": ["left_eye_smplhf", "right_eye_smplhf"], "pose_hand": list(JOINTS[25:55])}  # fmt: skip
        if "root_orient" not in arrays:
            raise PersonaError(f"'{path.name}' has pose_body but no root_orient (F, 3).")
        for key, names in parts.items():
            if key in arrays:
                values = _rotvecs(arrays[key], F, len(names), key, path)
                rotations |= {name: values[:, k] for k, name in enumerate(names)}
    global_orient = rotations.pop("pelvis")
    return _to_motion(path.stem, source_fps, fps, global_orient, rotations, trans.astype(np.float64))


def _parameters_to_motion(name: str, frames: list[dict[str, np.ndarray]], paths: list[Path], source_fps: float, fps: float) -> Motion:
    """Per-frame SMPL-X parameter sets (each a batch of frames) -> one motion."""
    orients, translations = [], []
    rotations: dict[str, list[np.ndarray]] = {}
    for arrays, path in zip(frames, paths):
        if "global_orient" not in arrays or "body_pose" not in arrays:
            raise PersonaError(f"'{path.name}' lacks global_orient or body_pose: not a set of SMPL-X parameters. " + FORMATS)
        go = arrays["global_orient"]
        F = go.shape[0] if go.ndim >= 2 else -1
        if not 1 <= F <= MAX_SOURCE_FRAMES:
            raise PersonaError(f"'{path.name}': global_orient has shape {go.shape}, expected (F, 3).")
        orients.append(_rotvecs(go, F, 1, "global_orient", path)[:, 0])
        transl = arrays.get("transl", np.zeros((F, 3)))
        if transl.reshape(F, -1).shape != (F, 3):
            raise PersonaError(f"'{path.name}': transl has shape {transl.shape}, expected ({F}, 3).")
        translations.append(transl.reshape(F, 3).astype(np.float64))
        for key, names in _PARAMETER_JOINTS.items():
            values = _rotvecs(arrays[key], F, len(names), key, path) if key in arrays else np.zeros((F, len(names), 3))
            for k, joint in enumerate(names):
                rotations.setdefault(joint, []).append(values[:, k])
    if sum(len(o) for o in orients) > MAX_SOURCE_FRAMES:
        raise PersonaError(f"The motion has more than {MAX_SOURCE_FRAMES} frames.")
    joined = {joint: np.concatenate(parts) for joint, parts in rotations.items()}
    return _to_motion(name, source_fps, fps, np.concatenate(orients), joined, np.concatenate(translations))


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def load_smplx_frames(folder: str | Path, fps: float = FPS) -> Motion:
    """A folder of per-frame SMPL-X parameter `.npz` files (file-name order) as one motion."""
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".npz"), key=_natural_key)
    if not files:
        raise PersonaError(f"The folder '{folder}' holds no .npz files. " + FORMATS)
    if len(files) > MAX_SOURCE_FRAMES:
        raise PersonaError(f"The folder '{folder}' holds more than {MAX_SOURCE_FRAMES} frames.")
    wanted = set(_PARAMETER_JOINTS) | {"global_orient", "transl", *_FPS_KEYS}
    frames = [_read_arrays(p, wanted) for p in files]
    return _parameters_to_motion(folder.name, frames, files, _fps(frames[0], files[0], required=False), fps)


# --- common steps: resample, stand up, face the camera, ground --------------------------------


def _slerp(q0: torch.Tensor, q1: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4), weights (...,) broadcastable -> (..., 4)."""
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin = torch.sin(theta)
    w = w[..., None]
    small = sin < 1e-6
    a = torch.where(small, 1 - w, torch.sin((1 - w) * theta) / sin.clamp(min=1e-6))
    b = torch.where(small, w, torch.sin(w * theta) / sin.clamp(min=1e-6))
    return torch.nn.functional.normalize(a * q0 + b * q1, dim=-1)


def resample(rotvecs: torch.Tensor, translation: torch.Tensor, source_fps: float, fps: float):
    """rotvecs: (F, K, 3), translation: (F, 3) at source_fps -> the same at fps (slerp/lerp)."""
    F = rotvecs.shape[0]
    n = int(math.floor((F - 1) * fps / source_fps + 1e-6)) + 1
    if n > MAX_FRAMES:
        raise PersonaError(
            f"The motion lasts {(F - 1) / source_fps:.0f} s, {n} frames at {fps:g} fps: more than {MAX_FRAMES}. Trim it first."
        )
    t = torch.arange(n, dtype=torch.float64) * (source_fps / fps)
    i0 = t.floor().long().clamp(max=F - 1)
    i1 = (i0 + 1).clamp(max=F - 1)
    w = (t - i0).clamp(0, 1)
    q = roma.rotvec_to_unitquat(rotvecs)  # (F, K, 4)
    q = _slerp(q[i0], q[i1], w[:, None].expand(-1, rotvecs.shape[1]))
    lerp = translation[i0] + (translation[i1] - translation[i0]) * w[:, None]
    return roma.unitquat_to_rotvec(q), lerp


def _up_rotation(root: torch.Tensor, name: str) -> torch.Tensor:
    """root: (F, 3, 3) pelvis rotations -> (3, 3) turning the data's up axis onto +Y."""
    up = (root @ torch.tensor([0.0, 1.0, 0.0], dtype=root.dtype)).mean(0)
    axis = int(up.abs().argmax())
    if float(up.abs()[axis]) < 0.5:
        log.warning("%s: the body is rarely upright, so its up axis is unclear; taking +Y", name)
        return torch.eye(3, dtype=root.dtype)
    unit = torch.zeros(3, dtype=root.dtype)
    unit[axis] = float(torch.sign(up[axis]))
    return minimal_rotation(unit[None].float(), torch.tensor([[0.0, 1.0, 0.0]]))[0].to(root.dtype)


def _to_motion(name: str, source_fps: float, fps: float, global_orient, rotations: dict[str, np.ndarray], trans) -> Motion:
    """SMPL-X joint rotations at source_fps -> a grounded, upright, camera-facing Motion."""
    names = [n for n in JOINTS[1:] if n in rotations]
    if global_orient.shape[0] < 1:
        raise PersonaError(f"The motion '{name}' has no frames.")
    stacked = np.stack([global_orient] + [rotations[n] for n in names], 1)  # (F, 1 + K, 3)
    if np.abs(stacked).max() > 4 * math.pi or np.abs(trans).max() > 1e4:
        raise PersonaError(f"The motion '{name}' has rotations or translations out of range (radians, metres expected).")
    rotvecs, translation = resample(torch.from_numpy(stacked), torch.from_numpy(trans), source_fps, fps)
    root = roma.rotvec_to_rotmat(rotvecs[:, 0])
    W = _up_rotation(root, name)
    facing = W @ root[0] @ torch.tensor([0.0, 0.0, 1.0], dtype=root.dtype)
    yaw = torch.atan2(facing[0], facing[2])
    W = roma.rotvec_to_rotmat(torch.tensor([0.0, -float(yaw), 0.0], dtype=root.dtype)) @ W
    root = W @ root
    translation = translation @ W.T
    translation[:, [0, 2]] -= translation[0, [0, 2]].clone()
    motion = Motion(
        name, float(fps), names, rotvecs[:, 1:].float(), roma.rotmat_to_rotvec(root).float(), translation.float(), skeleton="smplx"
    )
    return ground_motion(motion, smplx_reference_skeleton())


# --- BVH ----------------------------------------------------------------------------------------

def _bvh_names() -> dict[str, tuple[str, ...]]:
    """Landmark -> usual BVH joint names (lower case, without a namespace prefix such as
    'mixamorig:'): CMU, Mixamo, LaFAN1, Biovision/Poser conventions."""
    names = {"pelvis": ("hips", "hip", "pelvis", "root"), "neck": ("neck", "neck1"), "head": ("head",)}
    for s, side in (("L", "left"), ("R", "right")):
        p = side[0]
        names |= {
            f"hip_{s}": (f"{side}upleg", f"{side}thigh", f"{side}hip", f"{side}upperleg", f"{p}thigh", f"{p}_hip"),
            f"knee_{s}": (f"{side}leg", f"{side}shin", f"{side}knee", f"{side}lowerleg", f"{p}shin", f"{p}_knee"),
            f"ankle_{s}": (f"{side}foot", f"{side}ankle", f"{p}foot", f"{p}_ankle", f"{p}_foot"),
            f"ball_{s}": (f"{side}toebase", f"{side}toe", f"{side}toes", f"{side}ball", f"{p}toe", f"{p}_toe", f"{p}_toes"),
            f"collar_{s}": (f"{side}shoulder", f"{side}collar", f"{side}clavicle", f"{p}collar", f"{p}_collar"),
            f"shoulder_{s}": (f"{side}arm", f"{side}uparm", f"{side}upperarm", f"{p}shldr", f"{p}_shoulder"),
            f"elbow_{s}": (f"{side}forearm", f"{side}lowerarm", f"{side}elbow", f"{p}forearm", f"{p}_elbow"),
            f"wrist_{s}": (f"{side}hand", f"{side}wrist", f"{p}hand", f"{p}_wrist"),
        }
    return names


_BVH_NAMES = _bvh_names()


def _bvh_key(name: str) -> str:
    return name.split(":")[-1].lower().replace(" ", "")


def bvh_landmarks(names: list[str], parents: list[int]) -> dict[str, list[str]]:
    """Landmark -> joint name of a BVH skeleton, by the usual names; the three spine landmarks
    are spread along the joints between the pelvis and the neck."""
    keys = {_bvh_key(n): n for n in names}
    out: dict[str, list[str]] = {}
    for landmark, candidates in _BVH_NAMES.items():
        found = next((keys[c] for c in candidates if c in keys), None)
        if found is None and landmark == "pelvis":
            found = names[0]
        if found is not None:
            out[landmark] = [found]
    missing = [lm for lm in ("pelvis", "neck", "hip_L", "hip_R", "knee_L", "knee_R", "ankle_L", "ankle_R", "shoulder_L", "shoulder_R", "elbow_L", "elbow_R") if lm not in out]
    if missing:
        raise PersonaError(
            f"The BVH skeleton's joints could not be matched to a human body (no {', '.join(missing)}; joints: "
            f"{', '.join(names[:12])}...). Expected the usual names (Hips, LeftUpLeg, LeftLeg, LeftFoot, Spine, Neck, Head, "
            "LeftShoulder, LeftArm, LeftForeArm, LeftHand, ...)."
        )
    chain = []
    j = names.index(out["neck"][0])
    while parents[j] >= 0:
        j = parents[j]
        chain.append(j)
    chain = [k for k in reversed(chain) if names[k] != out["pelvis"][0] and parents[k] >= 0]
    if chain:
        for landmark, fraction in (("spine_low", 0.0), ("spine_mid", 0.5), ("spine_high", 1.0)):
            out[landmark] = [names[chain[round(fraction * (len(chain) - 1))]]]
        if len({tuple(out[lm]) for lm in ("spine_low", "spine_mid", "spine_high")}) < 3:
            for landmark in ("spine_low", "spine_mid"):  # too few spine joints for three points
                out.pop(landmark)
    return out


def load_bvh(path: str | Path, fps: float = FPS) -> Motion:
    """A BVH file as a motion on the SMPL-X skeleton (retargeted from the file's skeleton)."""
    import pybvh

    path = Path(path)
    if path.stat().st_size > MAX_ARRAY_BYTES:
        raise PersonaError(f"The BVH file '{path.name}' is too large (at most {MAX_ARRAY_BYTES / 2**20:.0f} MiB).")
    try:
        bvh = pybvh.read_bvh_file(path, warn_on_world_up_disagreement=False)
        root_pos, local = bvh.to_rotmat()  # (F, 3), (F, J, 3, 3)
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as err:
        raise PersonaError(f"Could not read the BVH file '{path.name}' ({err}).") from None
    nodes = [n for n in bvh.nodes if not n.is_end_site()]
    names = [n.name for n in nodes]
    parents = [-1 if n.parent is None else names.index(n.parent.name) for n in nodes]
    F = local.shape[0]
    if not 1 <= F <= MAX_SOURCE_FRAMES or not np.isfinite(local).all() or not np.isfinite(root_pos).all():
        raise PersonaError(f"The BVH file '{path.name}' has no frames, too many, or invalid values.")
    if parents[0] != -1 or any(not 0 <= p < j for j, p in enumerate(parents) if j):
        raise PersonaError(f"The BVH file '{path.name}' has an unexpected joint order.")
    offsets = np.array([np.asarray(n.offset, dtype=np.float64) for n in nodes])
    rest = np.zeros_like(offsets)
    for j, p in enumerate(parents):
        rest[j] = offsets[j] if p < 0 else rest[p] + offsets[j]
    landmarks = bvh_landmarks(names, parents)
    # End sites under the feet (toe tips) are the soles, with the foot joints themselves.
    soles, sole_joints = [], []
    foot_names = {n for lm in ("ankle_L", "ankle_R", "ball_L", "ball_R") for n in landmarks.get(lm, [])}
    for node in bvh.nodes:
        if node.name in foot_names:
            soles.append(rest[names.index(node.name)])
            sole_joints.append(names.index(node.name))
        elif node.is_end_site() and node.parent is not None and node.parent.name in foot_names:
            k = names.index(node.parent.name)
            soles.append(rest[k] + np.asarray(node.offset, dtype=np.float64))
            sole_joints.append(k)
    # Canonical frame of the rest skeleton: up = pelvis -> neck, left = right hip -> left hip.
    position = lambda lm: rest[names.index(landmarks[lm][0])]  # noqa: E731
    up = position("neck") - position("pelvis")
    left = position("hip_L") - position("hip_R")
    up /= np.linalg.norm(up)
    left -= up * (left @ up)
    left /= max(np.linalg.norm(left), 1e-9)
    M = torch.from_numpy(np.stack([left, up, np.cross(left, up)]))  # rows: world X, Y, Z
    local_t = torch.from_numpy(local)
    local_t = M @ local_t @ M.T
    skeleton = Skeleton(
        "bvh",
        names,
        parents,
        (torch.from_numpy(rest) @ M.T).float(),
        landmarks,
        (torch.from_numpy(np.array(soles)) @ M.T).float(),
        torch.tensor(sole_joints),
    )
    root_world = torch.from_numpy(root_pos) @ M.T  # (F, 3)
    rotvecs = roma.rotmat_to_rotvec(local_t)  # (F, J, 3)
    source_fps = float(bvh.fps)
    if not 1 <= source_fps <= 1000:
        log.warning("%s has a frame time of %g s: assuming %g frames per second", path.name, bvh.frame_time, DEFAULT_FPS)
        source_fps = DEFAULT_FPS
    rotvecs, root_world = resample(rotvecs, root_world, source_fps, fps)
    root = roma.rotvec_to_rotmat(rotvecs[:, 0])
    W = _up_rotation(root, path.stem)
    facing = W @ root[0] @ torch.tensor([0.0, 0.0, 1.0], dtype=root.dtype)
    W = roma.rotvec_to_rotmat(torch.tensor([0.0, -float(torch.atan2(facing[0], facing[2])), 0.0], dtype=root.dtype)) @ W
    translation = root_world @ W.T - skeleton.joints[0].double()  # the root's displacement
    translation[:, [0, 2]] -= translation[0, [0, 2]].clone()
    motion = Motion(
        path.stem, float(fps), names[1:], rotvecs[:, 1:].float(), roma.rotmat_to_rotvec(W @ root).float(), translation.float(), skeleton="bvh"
    )
    return retarget(motion, skeleton, smplx_reference_skeleton())
