"""SMPL-X (MPI-IS) behind the `BodyModel` interface, from model files the user supplies.

SMPL-X is under a non-commercial licence and never ships with PERSONA: users download
`SMPLX_NEUTRAL.npz` (models_smplx_v1_1.zip) from https://smpl-x.is.tue.mpg.de and pass the
file, or the folder holding it, with `--body smplx --body-model PATH`.

Loading: the `smplx` package reads `.npz` files with `allow_pickle=True` (and `.pkl` files with
pickle), which can run code from the file. We read the arrays ourselves with
`allow_pickle=False`, check every key, shape and value, and pose with the `smplx` package's
pure functions (`smplx.lbs`). Pickled model files are refused.

Conventions: SMPL-X's own frame is the project's (metres, Y up, the body facing +Z, its left at
+X), and its per-joint axis-angle rotations are relative to the rest T-pose in axes aligned
with the world, like every `BodyModel`: no conversion at this boundary. The global orientation
turns the body about the pelvis joint, then the translation is added.

Shape: the first `NUM_BETAS` betas, each mapped to a parameter s in [0, 1] by
beta = BETA_RANGE * (s - 0.5), so that 0.5 is the mean body (the photo fit optimises shape
parameters in [0, 1] through a sigmoid, with its prior at 0.5). Expression stays neutral.

Pose-corrective blend shapes (`posedirs`) are off by default: the avatar's Gaussians are posed
by linear blend skinning of the rest surface (`bone_transforms`), so the body's posed vertices
are that same skinning and every stage agrees on where the surface is.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from smplx.joint_names import JOINT_NAMES
from smplx.lbs import batch_rigid_transform, batch_rodrigues
from smplx.vertex_ids import vertex_ids as VERTEX_IDS

from persona.body.model import BodyModel, BodyPose, PosedBody
from persona.errors import PersonaError

log = logging.getLogger(__name__)

NUM_VERTICES = 10_475
NUM_JOINTS = 55  # pelvis, 21 body joints, jaw, 2 eyes, 2 x 15 finger joints
JOINTS = list(JOINT_NAMES[:NUM_JOINTS])
NUM_BETAS = 10
BETA_RANGE = 6.0  # s in [0, 1] -> beta in [-3, 3] standard deviations
MODEL_FILE = "SMPLX_NEUTRAL.npz"
MAX_MODEL_BYTES = 2**30  # decompressed arrays (the released v1.1 file holds about 300 MB)
WHERE_TO_GET = (
    f"Expected {MODEL_FILE} (or SMPLX_MALE/FEMALE.npz) from the SMPL-X download, models_smplx_v1_1.zip, at "
    "https://smpl-x.is.tue.mpg.de (free registration, non-commercial licence; never shipped with PERSONA)."
)

# Joints the photo fit may rotate, with their prior strength (higher = stiffer). anny's spine has
# five bones and its neck two; SMPL-X's has three and one, so the priors are scaled to give the
# same stiffness to the same total bend (n joints at strength s resist a bend t like s t^2 / n).
FIT_JOINTS: dict[str, float] = {
    "spine1": 2.4, "spine2": 2.4, "spine3": 2.4, "neck": 1.0, "head": 1.0,
    "left_collar": 4.0, "right_collar": 4.0,
    "left_shoulder": 0.3, "right_shoulder": 0.3, "left_elbow": 0.3, "right_elbow": 0.3,
    "left_wrist": 1.0, "right_wrist": 1.0,
    "left_hip": 0.5, "right_hip": 0.5, "left_knee": 0.5, "right_knee": 0.5,
    "left_ankle": 1.0, "right_ankle": 1.0,
}  # fmt: skip
KNEE_JOINTS = ("left_knee", "right_knee")
# The fit starts from, and is pulled towards, arms lowered from the T-pose into an A-pose like
# anny's zero pose (about 55 degrees below horizontal): the usual pose in a photo.
FIT_PRIOR_MEAN = {"left_shoulder": (0.0, 0.0, -0.95), "right_shoulder": (0.0, 0.0, 0.95)}
HEAD_JOINTS = ("neck", "head", "jaw", "left_eye_smplhf", "right_eye_smplhf")
PART_ROOTS = (
    "pelvis", "neck", "left_shoulder", "left_elbow", "right_shoulder", "right_elbow",
    "left_hip", "left_knee", "right_hip", "right_knee",
)  # fmt: skip
RIGID_ROOTS = ("left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf")

# COCO-23 keypoints (the order of `persona.perceive.keypoints`): from a joint (its row of the
# joint regressor) or from a surface vertex (the smplx package's vertex ids for SMPL-X).
_COCO23 = [
    ("nose", "vertex", "nose"), ("left_eye", "vertex", "leye"), ("right_eye", "vertex", "reye"),
    ("left_ear", "vertex", "lear"), ("right_ear", "vertex", "rear"),
    ("left_shoulder", "joint", "left_shoulder"), ("right_shoulder", "joint", "right_shoulder"),
    ("left_elbow", "joint", "left_elbow"), ("right_elbow", "joint", "right_elbow"),
    ("left_wrist", "joint", "left_wrist"), ("right_wrist", "joint", "right_wrist"),
    ("left_hip", "joint", "left_hip"), ("right_hip", "joint", "right_hip"),
    ("left_knee", "joint", "left_knee"), ("right_knee", "joint", "right_knee"),
    ("left_ankle", "joint", "left_ankle"), ("right_ankle", "joint", "right_ankle"),
    ("left_big_toe", "vertex", "LBigToe"), ("right_big_toe", "vertex", "RBigToe"),
    ("left_small_toe", "vertex", "LSmallToe"), ("right_small_toe", "vertex", "RSmallToe"),
    ("left_heel", "vertex", "LHeel"), ("right_heel", "vertex", "RHeel"),
]  # fmt: skip


def find_model_file(path: str | os.PathLike) -> Path:
    """The SMPL-X `.npz` for `path`: the file itself, or SMPLX_NEUTRAL.npz in the folder (or in
    its `smplx/` or `models/smplx/` subfolder, the download's layout)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path, path / "smplx", path / "models" / "smplx"):
            if (candidate / MODEL_FILE).is_file():
                return candidate / MODEL_FILE
        raise PersonaError(f"No {MODEL_FILE} in the folder '{path}'. {WHERE_TO_GET}")
    if not path.is_file():
        raise PersonaError(f"The SMPL-X model '{path}' does not exist. {WHERE_TO_GET}")
    if path.suffix.lower() == ".pkl":
        raise PersonaError(
            f"'{path.name}' is a pickle file, which PERSONA never loads (it can run code). "
            f"Use the .npz version of the model instead. {WHERE_TO_GET}"
        )
    if path.suffix.lower() != ".npz":
        raise PersonaError(f"'{path.name}' is not an SMPL-X model file. {WHERE_TO_GET}")
    return path


def read_model_arrays(path: Path, posedirs: bool = False) -> dict[str, np.ndarray]:
    """The model's arrays, read without pickle and checked (keys, shapes, finite values);
    the pose blend shapes (120 MB) only when asked for."""
    required = {"v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs"}
    optional = {"posedirs", "vt", "ft"} if posedirs else {"vt", "ft"}
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = required - set(data.files)
            if missing:
                raise PersonaError(f"'{path.name}' is not an SMPL-X model: it lacks {', '.join(sorted(missing))}. {WHERE_TO_GET}")
            keys = sorted((required | optional) & set(data.files))
            size = sum(data.zip.getinfo(f"{k}.npy").file_size for k in keys)
            if size > MAX_MODEL_BYTES:
                raise PersonaError(f"'{path.name}' is too large for an SMPL-X model ({size / 2**20:.0f} MiB of arrays). {WHERE_TO_GET}")
            for key in keys:
                arrays[key] = np.asarray(data[key])
    except PersonaError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise PersonaError(f"Could not read the SMPL-X model '{path.name}' ({err}). {WHERE_TO_GET}") from None
    V, J = NUM_VERTICES, NUM_JOINTS
    expected = {
        "v_template": (V, 3),
        "J_regressor": (J, V),
        "weights": (V, J),
        "kintree_table": (2, J),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise PersonaError(
                f"'{path.name}' has {key} of shape {arrays[key].shape}, expected {shape}: not an SMPL-X model "
                f"(SMPL and SMPL-H files have other sizes). {WHERE_TO_GET}"
            )
    f, shapedirs = arrays["f"], arrays["shapedirs"]
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0 or f.dtype.kind not in "iu" or f.min() < 0 or f.max() >= V:
        raise PersonaError(f"'{path.name}' has invalid triangles (f). {WHERE_TO_GET}")
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (V, 3) or shapedirs.shape[2] < NUM_BETAS:
        raise PersonaError(f"'{path.name}' has shapedirs of shape {shapedirs.shape}, expected ({V}, 3, >= {NUM_BETAS}). {WHERE_TO_GET}")
    if "posedirs" in arrays and arrays["posedirs"].shape not in ((V, 3, (J - 1) * 9), ((J - 1) * 9, V * 3)):
        raise PersonaError(f"'{path.name}' has posedirs of shape {arrays['posedirs'].shape}. {WHERE_TO_GET}")
    for key in ("v_template", "J_regressor", "weights", "shapedirs", "posedirs"):
        if key in arrays and (arrays[key].dtype.kind != "f" or not np.isfinite(arrays[key]).all()):
            raise PersonaError(f"'{path.name}' has non-numeric or non-finite values in {key}. {WHERE_TO_GET}")
    parents = arrays["kintree_table"][0].astype(np.int64)
    if not all(0 <= parents[j] < j for j in range(1, J)):
        raise PersonaError(f"'{path.name}' has an invalid kinematic tree. {WHERE_TO_GET}")
    if (arrays["weights"] < -1e-6).any() or (np.abs(arrays["weights"].sum(1) - 1) > 1e-3).any():
        raise PersonaError(f"'{path.name}' has skinning weights that do not sum to 1. {WHERE_TO_GET}")
    return arrays


def _valid_uvs(arrays: dict[str, np.ndarray]) -> bool:
    """Whether the optional texture coordinates vt (T, 2) and ft (F, 3) are present and sound."""
    vt, ft = arrays.get("vt"), arrays.get("ft")
    return (
        vt is not None and ft is not None and vt.ndim == 2 and vt.shape[1] >= 2 and vt.dtype.kind == "f"
        and bool(np.isfinite(vt).all()) and ft.shape == arrays["f"].shape and ft.dtype.kind in "iu"
        and ft.min() >= 0 and ft.max() < len(vt)
    )  # fmt: skip


def cylindrical_uvs(vertices: torch.Tensor) -> torch.Tensor:
    """vertices: (V, 3) -> (V, 2) texture coordinates from a cylinder about the Y axis (a
    stand-in when the model file has no UVs)."""
    centred = vertices - vertices.mean(0)
    u = torch.atan2(centred[:, 0], centred[:, 2]) / (2 * math.pi) + 0.5
    y = vertices[:, 1]
    v = (y - y.min()) / (y.max() - y.min()).clamp(min=1e-6)
    return torch.stack([u, v], -1)


class SmplxBody(BodyModel):
    """SMPL-X (10,475 vertices, 55 joints) in float32, from a user-supplied `.npz` model."""

    name = "smplx"
    fit_joints = FIT_JOINTS
    knee_joints = KNEE_JOINTS
    head_joints = HEAD_JOINTS
    part_roots = PART_ROOTS
    rigid_roots = RIGID_ROOTS
    face_joint = "head"
    fit_prior_mean = FIT_PRIOR_MEAN

    def __init__(self, model_path: str | os.PathLike, device: torch.device | str = "cpu", pose_correctives: bool = False):
        self.path = find_model_file(model_path)
        arrays = read_model_arrays(self.path, posedirs=pose_correctives)
        self.device = torch.device(device)
        as_tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=self.device)  # noqa: E731
        self.joint_names = list(JOINTS)
        self.parents = [-1] + [int(p) for p in arrays["kintree_table"][0, 1:]]
        self._parents = torch.tensor(self.parents, device=self.device)
        self.v_template = as_tensor(arrays["v_template"])  # (V, 3)
        self.shapedirs = as_tensor(arrays["shapedirs"][:, :, :NUM_BETAS]).reshape(-1, NUM_BETAS)  # (V * 3, NUM_BETAS)
        self.J_regressor = as_tensor(arrays["J_regressor"])  # (J, V)
        self.faces = torch.as_tensor(arrays["f"].astype(np.int64), device=self.device)
        weights = as_tensor(arrays["weights"]).clamp(min=0)
        self.skin_weights = weights / weights.sum(1, keepdim=True)
        self.posedirs = None
        if pose_correctives and "posedirs" in arrays:
            P = arrays["posedirs"]
            self.posedirs = as_tensor(P.reshape(-1, P.shape[-1]).T if P.ndim == 3 else P)  # ((J-1)*9, V*3)
        if _valid_uvs(arrays):
            self.uvs, self.face_uvs = as_tensor(arrays["vt"][:, :2]), torch.as_tensor(arrays["ft"].astype(np.int64), device=self.device)
        else:
            log.info("%s has no usable texture coordinates (vt, ft): using a cylindrical projection", self.path.name)
            self.uvs, self.face_uvs = cylindrical_uvs(self.v_template), self.faces.clone()
        self.keypoint_names = [name for name, _, _ in _COCO23]
        regressor = torch.zeros(len(_COCO23), NUM_VERTICES, device=self.device)
        for k, (_, kind, source) in enumerate(_COCO23):
            if kind == "joint":
                regressor[k] = self.J_regressor[self.joint_index(source)]
            else:
                regressor[k, VERTEX_IDS["smplx"][source]] = 1.0
        self.keypoint_regressor = regressor
        self.shape_names = [f"beta{i}" for i in range(NUM_BETAS)]
        self.default_shape = torch.full((NUM_BETAS,), 0.5, device=self.device)

    def _betas(self, shape: torch.Tensor) -> torch.Tensor:
        return BETA_RANGE * (shape - 0.5)

    def rest_vertices(self, shape: torch.Tensor) -> torch.Tensor:
        # As smplx.lbs.blend_shapes, as one matrix product (its einsum is slow on the CPU).
        offsets = (self._betas(shape) @ self.shapedirs.T).reshape(shape.shape[0], -1, 3)
        return self.v_template + offsets

    def rest_joints(self, shape: torch.Tensor) -> torch.Tensor:
        return self.J_regressor @ self.rest_vertices(shape)  # as smplx.lbs.vertices2joints

    def forward(self, shape: torch.Tensor, pose: BodyPose) -> PosedBody:
        B = pose.batch
        rest = self.rest_vertices(shape).expand(B, -1, -1)  # (B, V, 3)
        joints = self.J_regressor @ rest  # (B, J, 3)
        rotvecs = torch.cat([pose.global_orient[:, None], pose.joint_rotations[:, 1:]], 1)  # root: global orientation
        R = batch_rodrigues(rotvecs.reshape(-1, 3)).reshape(B, -1, 3, 3)  # (B, J, 3, 3)
        if self.posedirs is not None:
            eye = torch.eye(3, dtype=R.dtype, device=R.device)
            offsets = ((R[:, 1:] - eye).reshape(B, -1) @ self.posedirs).reshape(B, -1, 3)
            rest = rest + offsets
        _, A = batch_rigid_transform(R, joints, self._parents, dtype=R.dtype)  # (B, J, 4, 4)
        A = A.clone()
        A[:, :, :3, 3] = A[:, :, :3, 3] + pose.translation[:, None]
        blended = (self.skin_weights @ A[:, :, :3].reshape(B, -1, 12)).reshape(B, -1, 3, 4)  # (B, V, 3, 4)
        vertices = (blended[..., :3] @ rest[..., None])[..., 0] + blended[..., 3]
        return PosedBody(vertices, A, self.keypoints_from_vertices(vertices))


@functools.lru_cache(maxsize=2)
def _load_smplx_cached(path: str, mtime_ns: int, size: int, device: str) -> SmplxBody:
    return SmplxBody(path, device)


def load_smplx(model_path: str | os.PathLike, device: str = "cpu") -> SmplxBody:
    """The SMPL-X body for a model file or folder (read once per process and file version)."""
    path = find_model_file(model_path).resolve()
    stat = path.stat()
    return _load_smplx_cached(str(path), stat.st_mtime_ns, stat.st_size, device)
