"""Retarget motions between skeletons: SMPL-X / SMPL / BVH motions onto anny, anny's built-in
motions onto SMPL-X.

Every skeleton here follows the `BodyModel` convention: per-joint rotations relative to the
skeleton's zero pose, in world-aligned axes, so a joint's world rotation is its parent's times
its own (G_j = G_parent R_j, the root's is the global orientation). Skeletons differ in their
joints and in their zero pose (SMPL-X stands in a T-pose, anny in an A-pose), so rotations
cannot be copied joint by joint. Instead:

1. Correspondence by anatomy: both skeletons name their joints for the same `LANDMARKS`
   (pelvis, three spine points, neck, head, hips, knees, ankles, balls of the feet, collars,
   shoulders, elbows, wrists, finger joints, eyes). A landmark's segment runs to the next
   landmark down its chain (hip -> knee, wrist -> middle finger base, ...). Target joints
   that are not landmarks (anny's twist bones, extra spine and neck bones) keep the zero local
   rotation and move rigidly with their segment.
2. Rest-pose alignment: for each segment, A rotates the target's zero-pose segment direction
   onto the source's (the arms from anny's A-pose to SMPL-X's T-pose); the target segment's
   world rotation is the source's times A, so its posed direction is the source's posed
   direction. Where the source segment spans several bones (anny's five spine bones), a final
   swing makes the direction follow the source's joint positions exactly.
3. Root and feet: the root moves like the source's, scaled by the ratio of leg lengths; its
   height is then set frame by frame so that the lowest point of the target's soles is as
   high above the ground as the source's (scaled), so standing feet stay on the ground and
   jumps keep their height. The source's ground is the level of its soles in the clip's
   lowest frames (2nd percentile of the per-frame lowest sole point), so a clip recorded with
   any height offset (absolute BVH or AMASS positions, camera-frame fits) still lands.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import roma
import torch

from persona.body.model import BodyModel, BodyPose
from persona.generate.motions import Motion

log = logging.getLogger(__name__)

_FINGERS = ("thumb", "index", "middle", "ring", "pinky")


def _landmark_tree() -> list[tuple[str, str | None, str | None]]:
    """(landmark, parent landmark, end landmark of its segment), parents first."""
    tree = [
        ("pelvis", None, None),
        ("spine_low", "pelvis", "spine_mid"),
        ("spine_mid", "spine_low", "spine_high"),
        ("spine_high", "spine_mid", "neck"),
        ("neck", "spine_high", "head"),
        ("head", "neck", None),
        ("jaw", "head", None),
    ]
    for s in ("L", "R"):
        tree += [
            (f"eye_{s}", "head", None),
            (f"hip_{s}", "pelvis", f"knee_{s}"),
            (f"knee_{s}", f"hip_{s}", f"ankle_{s}"),
            (f"ankle_{s}", f"knee_{s}", f"ball_{s}"),
            (f"ball_{s}", f"ankle_{s}", None),
            (f"collar_{s}", "spine_high", f"shoulder_{s}"),
            (f"shoulder_{s}", f"collar_{s}", f"elbow_{s}"),
            (f"elbow_{s}", f"shoulder_{s}", f"wrist_{s}"),
            (f"wrist_{s}", f"elbow_{s}", f"middle1_{s}"),
        ]
        for f in _FINGERS:
            tree += [(f"{f}1_{s}", f"wrist_{s}", f"{f}2_{s}"), (f"{f}2_{s}", f"{f}1_{s}", f"{f}3_{s}"), (f"{f}3_{s}", f"{f}2_{s}", None)]
    return tree


LANDMARK_TREE = _landmark_tree()
FOOT_LANDMARKS = ("ankle_L", "ball_L", "ankle_R", "ball_R")


def _anny_landmarks() -> dict[str, list[str]]:
    out = {"pelvis": ["root"], "spine_low": ["spine04"], "spine_mid": ["spine02"], "spine_high": ["spine01"], "neck": ["neck01"], "head": ["head"]}
    for s in ("L", "R"):
        out |= {
            f"eye_{s}": [f"eye.{s}"], f"hip_{s}": [f"upperleg01.{s}"], f"knee_{s}": [f"lowerleg01.{s}"], f"ankle_{s}": [f"foot.{s}"],
            # The ball of the foot: the five toe roots (the middle one drives when anny is the source).
            f"ball_{s}": [f"toe{i}-1.{s}" for i in (3, 1, 2, 4, 5)],
            f"collar_{s}": [f"clavicle.{s}"], f"shoulder_{s}": [f"upperarm01.{s}"], f"elbow_{s}": [f"lowerarm01.{s}"], f"wrist_{s}": [f"wrist.{s}"],
        }  # fmt: skip
        for i, f in enumerate(_FINGERS, start=1):
            out |= {f"{f}{k}_{s}": [f"finger{i}-{k}.{s}"] for k in (1, 2, 3)}
    return out


def _smplx_landmarks() -> dict[str, list[str]]:
    out = {"pelvis": ["pelvis"], "spine_low": ["spine1"], "spine_mid": ["spine2"], "spine_high": ["spine3"], "neck": ["neck"], "head": ["head"], "jaw": ["jaw"]}
    for s, side in (("L", "left"), ("R", "right")):
        out |= {
            f"eye_{s}": [f"{side}_eye_smplhf"], f"hip_{s}": [f"{side}_hip"], f"knee_{s}": [f"{side}_knee"], f"ankle_{s}": [f"{side}_ankle"],
            f"ball_{s}": [f"{side}_foot"], f"collar_{s}": [f"{side}_collar"], f"shoulder_{s}": [f"{side}_shoulder"],
            f"elbow_{s}": [f"{side}_elbow"], f"wrist_{s}": [f"{side}_wrist"],
        }  # fmt: skip
        for f in _FINGERS:
            out |= {f"{f}{k}_{s}": [f"{side}_{f}{k}"] for k in (1, 2, 3)}
    return out


# Landmark -> joint names, per skeleton (the first joint drives when the skeleton is the source).
LANDMARKS: dict[str, dict[str, list[str]]] = {"anny": _anny_landmarks(), "smplx": _smplx_landmarks()}

# SMPL-X's kinematic tree (the parents of its 55 joints, in `smplx.joint_names` order).
SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15] + [
    wrist if k == 0 else wrist_base + 3 * finger + k - 1
    for wrist, wrist_base in ((20, 25), (21, 40))
    for finger in range(5)
    for k in range(3)
]  # the fingers: three joints each, the first on the wrist


@dataclass
class Skeleton:
    """A skeleton in its zero pose (metres, Y up, facing +Z).

    joints: (J, 3) joint centres; parents: J indices, -1 for the root (index 0), parents first;
    landmarks: landmark name -> joint names (see `LANDMARKS`);
    soles: (P, 3) points under the feet, each moving with joint `sole_joints[p]`;
    sole_vertices: (P,) the body-model vertices the soles are, when the skeleton is a body's.
    """

    name: str
    joint_names: list[str]
    parents: list[int]
    joints: torch.Tensor
    landmarks: dict[str, list[str]]
    soles: torch.Tensor
    sole_joints: torch.Tensor
    sole_vertices: torch.Tensor | None = None

    def __post_init__(self):
        assert self.parents[0] == -1 and all(0 <= p < j for j, p in enumerate(self.parents) if j), "parents must come first"
        self.landmarks = {k: v for k, v in self.landmarks.items() if all(n in self.joint_names for n in v)}

    def index(self, landmark: str) -> list[int]:
        return [self.joint_names.index(n) for n in self.landmarks[landmark]]

    def landmark_position(self, landmark: str, positions: torch.Tensor) -> torch.Tensor:
        """positions: (..., J, 3) -> (..., 3) the landmark (mean of its joints)."""
        return positions[..., self.index(landmark), :].mean(-2)

    @property
    def ground(self) -> float:
        return float(self.soles[:, 1].min())

    @property
    def leg_length(self) -> float:
        """Height of the hip joints above the soles, metres (mean of both sides)."""
        return float(self.landmark_position("hip_L", self.joints)[1] + self.landmark_position("hip_R", self.joints)[1]) / 2 - self.ground


# --- skeletons of body models and the reference SMPL-X skeleton -------------------------------


def _foot_soles(body: BodyModel, vertices: torch.Tensor, feet: list[list[int]], per_foot: int = 48) -> torch.Tensor:
    """Indices of the lowest vertices (within 2.5 cm of the lowest) of each foot, a foot being
    the vertices skinned mostly to its joints; up to `per_foot` evenly picked per foot.
    vertices: (V, 3) in the zero pose."""
    dominant = body.skin_weights.argmax(1)
    ground = float(vertices[:, 1].min())
    picks = []
    for joints in feet:
        on_foot = torch.isin(dominant, torch.tensor(joints, device=dominant.device)) & (vertices[:, 1] < ground + 0.025)
        index = torch.nonzero(on_foot)[:, 0]
        assert len(index) > 0, f"{body.name}: no sole vertices found"
        picks.append(index[torch.linspace(0, len(index) - 1, min(per_foot, len(index))).round().long()])
    return torch.cat(picks)


def _descendants(parents: list[int], roots: list[int]) -> list[int]:
    out = set(roots)
    for j, p in enumerate(parents):
        if p in out:
            out.add(j)
    return sorted(out)


@functools.lru_cache(maxsize=8)
def body_skeleton(body: BodyModel) -> Skeleton:
    """The zero-pose skeleton of a body model (its default shape), with the lowest vertices of
    its feet as soles."""
    shape = body.default_shape[None]
    with torch.no_grad():
        rest = body.rest_joints(shape)[0]  # (J, 3)
        zero = body.forward(shape, BodyPose.zeros(1, body.num_joints))
    T0 = zero.bone_transforms[0]
    joints = (T0[:, :3, :3] @ rest[..., None])[..., 0] + T0[:, :3, 3]
    landmarks = LANDMARKS[body.name]
    feet = [
        _descendants(body.parents, [body.joint_index(n) for lm in (f"ankle_{s}", f"ball_{s}") for n in landmarks[lm]]) for s in ("L", "R")
    ]
    soles = _foot_soles(body, zero.vertices[0], feet)
    dominant = body.skin_weights.argmax(1)[soles]
    return Skeleton(body.name, list(body.joint_names), list(body.parents), joints, landmarks, zero.vertices[0, soles], dominant, soles)


def anny_t_pose(skeleton: Skeleton) -> BodyPose:
    """Joint rotations that raise anny's arms from its A-pose into a T-pose: upper arms,
    forearms and hands along +-X, each by the smallest rotation (the palms keep their roll)."""
    pose = BodyPose.zeros(1, len(skeleton.joint_names))
    for s, sign in (("L", 1.0), ("R", -1.0)):
        axis = torch.tensor([sign, 0.0, 0.0])
        G = torch.eye(3)
        for start, end in ((f"shoulder_{s}", f"elbow_{s}"), (f"elbow_{s}", f"wrist_{s}"), (f"wrist_{s}", f"middle1_{s}")):
            j = skeleton.index(start)[0]
            d = G @ (skeleton.landmark_position(end, skeleton.joints) - skeleton.landmark_position(start, skeleton.joints))
            G_new = minimal_rotation(d[None], axis[None])[0] @ G
            pose.joint_rotations[0, j] = roma.rotmat_to_rotvec(G.T @ G_new)
            G = G_new
    return pose


@functools.lru_cache(maxsize=1)
def smplx_reference_skeleton() -> Skeleton:
    """The SMPL-X skeleton that imported SMPL/SMPL-X motions are read on when no SMPL-X model
    is at hand: anny's average body with its arms raised into SMPL-X's T-pose, its joints at
    anny's corresponding joints (the jaw under the head). Used for rest-pose alignment and foot
    contact only, never shipped as a body."""
    from persona.body.anny_model import load_anny

    return smplx_skeleton_from_anny(load_anny("cpu"))


def smplx_skeleton_from_anny(anny: BodyModel) -> Skeleton:
    """anny's default body re-rigged on SMPL-X's 55 joints, in a T-pose (see
    `smplx_reference_skeleton`; the synthetic test model is built on it too)."""
    from persona.body.smplx_model import JOINTS

    source = body_skeleton(anny)
    with torch.no_grad():
        posed = anny.forward(anny.default_shape[None], anny_t_pose(source))
    rest = anny.rest_joints(anny.default_shape[None])[0]
    T = posed.bone_transforms[0]
    anny_joints = (T[:, :3, :3] @ rest[..., None])[..., 0] + T[:, :3, 3]  # (Ja, 3) in the T-pose
    smplx_landmarks = LANDMARKS["smplx"]
    by_joint = {names[0]: lm for lm, names in smplx_landmarks.items()}
    joints = torch.zeros(len(JOINTS), 3)
    for j, name in enumerate(JOINTS):
        lm = by_joint[name]
        if lm == "jaw":
            joints[j] = source.landmark_position("head", anny_joints) + torch.tensor([0.0, -0.045, 0.035])
        else:
            joints[j] = source.landmark_position(lm, anny_joints)
    # Soles: anny's, attached to the SMPL-X joint whose landmark owns their anny joint.
    owner = anny_to_smplx_joint_map(anny)
    sole_joints = torch.tensor([JOINTS.index(owner[anny.joint_names[j]]) for j in source.sole_joints.tolist()])
    soles = posed.vertices[0, source.sole_vertices]
    return Skeleton("smplx", list(JOINTS), list(SMPLX_PARENTS), joints, smplx_landmarks, soles, sole_joints)


def anny_to_smplx_joint_map(anny: BodyModel) -> dict[str, str]:
    """Each anny bone -> the SMPL-X joint whose body part holds it: its own landmark's, or
    its nearest landmark ancestor's (twist bones, extra spine/neck bones, metacarpals, toes)."""
    anny_lm, smplx_lm = LANDMARKS["anny"], LANDMARKS["smplx"]
    owner: dict[str, str] = {}
    for lm, names in anny_lm.items():
        for n in names:
            owner[n] = smplx_lm[lm][0]
    out = {}
    for j, name in enumerate(anny.joint_names):
        k = j
        while anny.joint_names[k] not in owner:
            k = anny.parents[k]
        out[name] = owner[anny.joint_names[k]]
    return out


def reference_skeleton(name: str) -> Skeleton:
    """The skeleton motions named `name` are defined on, when no body of that kind is given."""
    if name == "anny":
        from persona.body.anny_model import load_anny

        return body_skeleton(load_anny("cpu"))
    if name == "smplx":
        return smplx_reference_skeleton()
    raise ValueError(f"no reference skeleton for motions on '{name}'")


# --- rotation helpers and forward kinematics --------------------------------------------------


def minimal_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3), (..., 3) -> (..., 3, 3) the smallest rotation taking direction a onto b."""
    a = torch.nn.functional.normalize(a, dim=-1)
    b = torch.nn.functional.normalize(b, dim=-1)
    axis = torch.linalg.cross(a, b)
    sin = axis.norm(dim=-1)
    cos = (a * b).sum(-1)
    # Opposite directions: turn half a turn about any axis perpendicular to a.
    helper = torch.where((a[..., :1].abs() < 0.9), torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]))
    fallback = torch.nn.functional.normalize(torch.linalg.cross(a, helper), dim=-1)
    unit = torch.where((sin > 1e-6)[..., None], axis / sin.clamp(min=1e-12)[..., None], fallback)
    return roma.rotvec_to_rotmat(unit * torch.atan2(sin, cos)[..., None])


def forward_kinematics(skeleton: Skeleton, local: torch.Tensor, root_rotation: torch.Tensor, root_position: torch.Tensor):
    """local: (F, J, 3, 3) joint rotations (the root's ignored); root_rotation: (F, 3, 3);
    root_position: (F, 3) -> world rotations G (F, J, 3, 3) relative to the zero pose, and
    joint positions (F, J, 3)."""
    G = [root_rotation]
    P = [root_position]
    z = skeleton.joints
    for j in range(1, len(skeleton.parents)):
        p = skeleton.parents[j]
        G.append(G[p] @ local[:, j])
        P.append(P[p] + (G[p] @ (z[j] - z[p])[:, None])[..., 0])
    return torch.stack(G, 1), torch.stack(P, 1)


def sole_heights(skeleton: Skeleton, G: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """(F,) height of the lowest sole point in each frame."""
    j = skeleton.sole_joints
    offsets = skeleton.soles - skeleton.joints[j]  # (S, 3)
    points = P[:, j] + (G[:, j] @ offsets[None, :, :, None])[..., 0]
    return points[..., 1].amin(1)


def _local_rotations(motion: Motion, skeleton: Skeleton) -> torch.Tensor:
    """(F, J, 3, 3) the motion's rotations on the skeleton (identity for joints it lacks)."""
    F, J = motion.num_frames, len(skeleton.joint_names)
    local = torch.eye(3).repeat(F, J, 1, 1)
    for k, name in enumerate(motion.joint_names):
        if name in skeleton.joint_names:
            local[:, skeleton.joint_names.index(name)] = roma.rotvec_to_rotmat(motion.rotations[:, k])
    return local


# --- retargeting -------------------------------------------------------------------------------


def retarget(motion: Motion, source: Skeleton, target: Skeleton, body: BodyModel | None = None) -> Motion:
    """`motion` (on `source`'s joints) as a motion on `target`'s joints (see the module doc).

    With `body` (the target's body model) the root height is solved on the body's own posed
    soles; otherwise on the target skeleton's. When source and target are the same skeleton the
    rotations are copied and only the root is placed."""
    local_s = _local_rotations(motion, source)
    root_rot = roma.rotvec_to_rotmat(motion.global_orient)  # (F, 3, 3)
    G_s, P_s = forward_kinematics(source, local_s, root_rot, source.joints[0] + motion.translation)

    if source is target:
        local_t = local_s
    else:
        local_t = _transfer_rotations(source, target, G_s, P_s)
    G_root = root_rot if source is target else local_t[:, 0]
    local_t = local_t.clone()
    local_t[:, 0] = torch.eye(3)

    # Root: the source's displacement scaled by leg length; then the height from the soles.
    scale = target.leg_length / source.leg_length
    heights_s = sole_heights(source, G_s, P_s)
    ground_s = float(torch.quantile(heights_s, 0.02))
    displacement = scale * (P_s[:, 0] - source.joints[0])  # (F, 3)
    translation = displacement.clone()
    rotations = roma.rotmat_to_rotvec(local_t[:, 1:])  # (F, J-1, 3)
    global_orient = roma.rotmat_to_rotvec(G_root)
    if body is not None:
        root_now, lowest = _posed_root_and_soles(body, target, rotations, global_orient, translation)
    else:
        G_t, P_t = forward_kinematics(target, local_t, G_root, target.joints[0] + translation)
        root_now, lowest = P_t[:, 0], sole_heights(target, G_t, P_t)
    wanted_root = target.joints[0] + displacement
    translation[:, [0, 2]] += (wanted_root - root_now)[:, [0, 2]]
    translation[:, 1] += scale * (heights_s - ground_s) - (lowest - target.ground)
    return Motion(motion.name, motion.fps, target.joint_names[1:], rotations, global_orient, translation, skeleton=target.name)


def _transfer_rotations(source: Skeleton, target: Skeleton, G_s: torch.Tensor, P_s: torch.Tensor) -> torch.Tensor:
    """Target local rotations (F, Jt, 3, 3) from the source's world rotations and positions."""
    Jt = len(target.joint_names)
    shared = [lm for lm, _, _ in LANDMARK_TREE if lm in source.landmarks and lm in target.landmarks]
    assert "pelvis" in shared and target.landmarks["pelvis"] == [target.joint_names[0]], "the target's root must be its pelvis"
    align: dict[str, torch.Tensor] = {}
    G_t: list[torch.Tensor | None] = [None] * Jt
    parent_of = {lm: parent for lm, parent, _ in LANDMARK_TREE}
    end_of = {lm: end for lm, _, end in LANDMARK_TREE}
    for lm in shared:
        end = end_of[lm]
        s_joint = source.index(lm)[0]
        if end in source.landmarks and end in target.landmarks:
            d_s = source.landmark_position(end, source.joints) - source.landmark_position(lm, source.joints)
            d_t = target.landmark_position(end, target.joints) - target.landmark_position(lm, target.joints)
            A = minimal_rotation(d_t, d_s)  # A d_t = d_s (directions)
            # The bone that ends the source segment (its own bone when the segment is one bone).
            last = source.parents[source.index(end)[0]]
            G = G_s[:, last] @ A
            wanted = source.landmark_position(end, P_s) - source.landmark_position(lm, P_s)  # (F, 3)
            G = minimal_rotation((G @ d_t[:, None])[..., 0], wanted) @ G
        else:
            A = align.get(parent_of[lm], torch.eye(3)) if parent_of[lm] else torch.eye(3)
            G = G_s[:, s_joint] @ A
        align[lm] = A
        for j in target.index(lm):
            G_t[j] = G
    for j in range(Jt):
        if G_t[j] is None:
            G_t[j] = G_t[target.parents[j]]  # not a landmark: moves with its parent
    G_all = torch.stack(G_t, 1)  # (F, Jt, 3, 3)
    local = G_all.clone()
    parents = torch.tensor(target.parents[1:])
    local[:, 1:] = G_all[:, parents].transpose(-1, -2) @ G_all[:, 1:]
    local[:, 0] = G_all[:, 0]  # the root's world rotation (the global orientation)
    return local


def _posed_root_and_soles(body: BodyModel, target: Skeleton, rotations, global_orient, translation, chunk: int = 64):
    """Root positions (F, 3) and lowest sole heights (F,) of the body posed by the motion."""
    roots, lowest = [], []
    rest_root = body.rest_joints(body.default_shape[None])[0, 0]
    with torch.no_grad():
        for i in range(0, rotations.shape[0], chunk):
            n = min(chunk, rotations.shape[0] - i)
            pose = BodyPose(torch.cat([torch.zeros(n, 1, 3), rotations[i : i + n]], 1), global_orient[i : i + n], translation[i : i + n])
            posed = body.forward(body.default_shape[None], pose)
            T = posed.bone_transforms[:, 0]
            roots.append(T[:, :3, :3] @ rest_root + T[:, :3, 3])
            lowest.append(posed.vertices[:, target.sole_vertices, 1].amin(1))
    return torch.cat(roots), torch.cat(lowest)


def motion_for_body(motion: Motion, body: BodyModel) -> Motion:
    """`motion` on `body`'s joints: as it is when made for this body model, else retargeted
    from the skeleton it was made on (its `skeleton`)."""
    if motion.skeleton == body.name:
        return motion
    if motion.skeleton not in LANDMARKS or body.name not in LANDMARKS:
        raise ValueError(f"cannot retarget a motion made on '{motion.skeleton}' to '{body.name}'")
    log.info("retargeting '%s' from %s to %s", motion.name, motion.skeleton, body.name)
    return retarget(motion, reference_skeleton(motion.skeleton), body_skeleton(body), body)


def ground_motion(motion: Motion, skeleton: Skeleton) -> Motion:
    """The motion with its root height set so the soles touch the skeleton's zero-pose ground
    in the clip's lowest frames (rotations unchanged)."""
    return retarget(motion, skeleton, skeleton)
