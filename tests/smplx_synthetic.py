"""A synthetic `SMPLX_NEUTRAL.npz` for the tests, built from the anny body (Apache-2.0).

The real SMPL-X files are under a non-commercial licence and never enter the repository. This
builder writes a file with the keys, shapes and dtypes the `smplx` package reads (10,475
vertices, 55 joints, shape/expression and pose blend shapes, joint regressor, skinning
weights, kinematic tree, hand PCA, face landmarks), and with anatomy that makes fitting and
posing meaningful:
- the template is anny's average body raised into SMPL-X's T-pose, decimated by edge collapses
  (shortest edges first, topology-preserving) to exactly 10,475 vertices;
- the joints are anny's corresponding joints (`persona.generate.retarget`), and each row of
  the joint regressor is a convex combination of nearby vertices that reproduces its joint;
- skinning weights are anny's, summed onto the SMPL-X joint that owns each anny bone;
- the first six shape directions are anny's phenotype directions (gender, age, muscle,
  weight, height, proportions; one beta = 1/6 of the phenotype range), the others zero;
- the vertices the `smplx` package uses as keypoints (nose, eyes, ears, toes, heels,
  fingertips) are put at the matching places of anny's body.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy.optimize import lsq_linear
from smplx.vertex_ids import vertex_ids as VERTEX_IDS

from persona.body.smplx_model import JOINTS, NUM_VERTICES
from persona.generate.retarget import SMPLX_PARENTS, anny_t_pose, anny_to_smplx_joint_map, body_skeleton, smplx_skeleton_from_anny

# anny keypoint (or bone tail) -> the smplx package's vertex-id names it stands for.
_KEYPOINT_VERTICES = {
    "nose": "nose", "leye": "left_eye", "reye": "right_eye", "lear": "left_ear", "rear": "right_ear",
    "LBigToe": "left_big_toe", "LSmallToe": "left_small_toe", "LHeel": "left_heel",
    "RBigToe": "right_big_toe", "RSmallToe": "right_small_toe", "RHeel": "right_heel",
}  # fmt: skip
_FINGERTIPS = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}


def decimate(vertices: np.ndarray, faces: np.ndarray, target: int, protected: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """Collapse the shortest edges (keeping one end) until `target` vertices remain.

    Skips collapses that would break the manifold (link condition), flip a triangle, or remove
    a protected vertex. Returns (kept vertex indices (target,), faces over them (F', 3))."""
    faces = faces.copy()
    alive_face = np.ones(len(faces), bool)
    alive = np.ones(len(vertices), bool)
    to_remove = len(vertices) - target
    while to_remove > 0:
        vertex_faces: list[list[int]] = [[] for _ in range(len(vertices))]
        for f in np.nonzero(alive_face)[0]:
            for v in faces[f]:
                vertex_faces[v].append(f)
        live = faces[alive_face]
        edges = np.unique(np.sort(np.concatenate([live[:, [0, 1]], live[:, [1, 2]], live[:, [2, 0]]]), 1), axis=0)
        lengths = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
        locked = np.zeros(len(vertices), bool)
        removed_this_round = 0
        for a, b in edges[np.argsort(lengths)]:
            if to_remove == 0:
                break
            if locked[a] or locked[b]:
                continue
            if b in protected:
                a, b = b, a
            if b in protected:
                continue
            faces_a, faces_b = vertex_faces[a], vertex_faces[b]
            shared = [f for f in faces_b if a in faces[f]]
            ring = lambda v, fs: {int(u) for f in fs for u in faces[f]} - {v}  # noqa: E731
            common = ring(a, faces_a) & ring(b, faces_b)
            if len(shared) not in (1, 2) or len(common) != len(shared):
                continue
            # No triangle around b may flip when b moves onto a.
            moving = [f for f in faces_b if f not in shared]
            tri = faces[moving]
            before = np.cross(vertices[tri[:, 1]] - vertices[tri[:, 0]], vertices[tri[:, 2]] - vertices[tri[:, 0]])
            tri_after = np.where(tri == b, a, tri)
            after = np.cross(vertices[tri_after[:, 1]] - vertices[tri_after[:, 0]], vertices[tri_after[:, 2]] - vertices[tri_after[:, 0]])
            cos = (before * after).sum(1) / (np.linalg.norm(before, axis=1) * np.linalg.norm(after, axis=1) + 1e-20)
            if len(moving) and cos.min() < 0.2:
                continue
            faces[moving] = tri_after
            alive_face[shared] = False
            alive[b] = False
            for v in ring(a, faces_a) | ring(b, faces_b) | {a, b}:
                locked[v] = True
            to_remove -= 1
            removed_this_round += 1
        assert removed_this_round > 0, "decimation is stuck"
    kept = np.nonzero(alive)[0]
    remap = -np.ones(len(vertices), np.int64)
    remap[kept] = np.arange(len(kept))
    return kept, remap[faces[alive_face]]


def _regressor_row(vertices: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Convex weights (V,) over vertices near `joint` whose weighted mean is the joint (within
    0.5 mm), spread as evenly as possible."""
    distance = np.linalg.norm(vertices - joint, axis=1)
    for k in (64, 128, 256, 512, 1024, 2048, 4096):
        near = np.argsort(distance)[:k]
        M = np.concatenate([100.0 * np.vstack([vertices[near].T, np.ones((1, k))]), np.eye(k)])
        y = np.concatenate([100.0 * np.append(joint, 1.0), np.full(k, 1.0 / k)])
        w = lsq_linear(M, y, bounds=(0.0, np.inf), method="bvls").x
        w = w / w.sum()
        if np.linalg.norm(vertices[near].T @ w - joint) < 5e-4:
            row = np.zeros(len(vertices))
            row[near] = w
            return row
    raise AssertionError(f"no convex regressor for a joint at {joint}")


def build_smplx_arrays(anny) -> dict[str, np.ndarray]:
    """Every array of the synthetic SMPL-X model, from the anny body model."""
    reference = smplx_skeleton_from_anny(anny)
    skeleton = body_skeleton(anny)
    t_pose = anny_t_pose(skeleton)
    shape0 = anny.default_shape[None]
    with torch.no_grad():
        posed = anny.forward(shape0, t_pose)
        T_vertices = posed.vertices[0].double().numpy()
        keypoints = posed.keypoints[0].double().numpy()
        # Shape directions: central differences of anny's phenotypes, one beta = 1/6.
        dirs = []
        for p in range(len(anny.shape_names)):
            step = torch.zeros(len(anny.shape_names))
            step[p] = 1.0 / 6.0
            up = anny.forward((anny.default_shape + step)[None], t_pose).vertices[0]
            down = anny.forward((anny.default_shape - step)[None], t_pose).vertices[0]
            dirs.append(((up - down) / 2).double().numpy())
        rest_joints = anny.rest_joints(shape0)[0]
        T = posed.bone_transforms[0]
        anny_joints = ((T[:, :3, :3] @ rest_joints[..., None])[..., 0] + T[:, :3, 3]).double().numpy()

    # Vertices standing for the smplx package's keypoint and fingertip vertex ids.
    names = anny.keypoint_names
    special: dict[int, int] = {}  # smplx vertex id -> anny vertex
    for vid_name, kp_name in _KEYPOINT_VERTICES.items():
        point = keypoints[names.index(kp_name)]
        special[VERTEX_IDS["smplx"][vid_name]] = int(np.argmin(np.linalg.norm(T_vertices - point, axis=1)))
    for finger, i in _FINGERTIPS.items():
        for s, side in (("l", "L"), ("r", "R")):
            last = anny.joint_index(f"finger{i}-3.{side}")
            parent = anny.parents[last]
            tip = anny_joints[last] + 0.8 * (anny_joints[last] - anny_joints[parent])
            special[VERTEX_IDS["smplx"][f"{s}{finger}"]] = int(np.argmin(np.linalg.norm(T_vertices - tip, axis=1)))

    kept, faces = decimate(T_vertices, anny.faces.numpy(), NUM_VERTICES, set(special.values()))
    # Order: the special vertices at their smplx ids, the others in anny's order.
    position_of = {int(v): i for i, v in enumerate(kept)}
    order = np.full(NUM_VERTICES, -1, np.int64)
    for vid, v in special.items():
        order[vid] = position_of[v]
    rest = np.setdiff1d(np.arange(NUM_VERTICES), np.array(sorted(position_of[v] for v in special.values())))
    order[order < 0] = rest
    inverse = np.empty_like(order)
    inverse[order] = np.arange(NUM_VERTICES)
    chosen = kept[order]  # smplx vertex i = anny vertex chosen[i]
    faces = inverse[faces]
    v_template = T_vertices[chosen]

    # Skinning weights: anny's bones summed onto their SMPL-X joints.
    owner = anny_to_smplx_joint_map(anny)
    to_smplx = np.zeros((anny.num_joints, len(JOINTS)))
    for j, name in enumerate(anny.joint_names):
        to_smplx[j, JOINTS.index(owner[name])] = 1.0
    weights = anny.skin_weights.double().numpy()[chosen] @ to_smplx
    weights /= weights.sum(1, keepdims=True)

    joints = reference.joints.double().numpy()
    J_regressor = np.stack([_regressor_row(v_template, joints[j]) for j in range(len(JOINTS))])

    V = NUM_VERTICES
    shapedirs = np.zeros((V, 3, 20))  # 10 shape + 10 expression directions (SMPL-X v1.0 layout)
    for p, d in enumerate(dirs):
        shapedirs[:, :, p] = d[chosen]
    # Expression: the lower face opens a little (the jaw region moves down) for the first one.
    head = weights[:, JOINTS.index("head")] > 0.5
    jaw_region = head & (v_template[:, 1] < joints[JOINTS.index("jaw"), 1]) & (v_template[:, 2] > joints[JOINTS.index("head"), 2])
    shapedirs[jaw_region, 1, 10] = -0.004
    # Pose blend shapes: a small bulge along each vertex's normal for the bend of its joint.
    normals = np.zeros_like(v_template)
    tri = v_template[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    posedirs = np.zeros((V, 3, (len(JOINTS) - 1) * 9))
    for j in range(1, len(JOINTS)):
        for k in (0, 4, 8):  # diagonal of R - I: negative when the joint bends
            posedirs[:, :, 9 * (j - 1) + k] = -0.003 * weights[:, j : j + 1] * normals
    # Face landmarks: triangles on the front of the head.
    rng = np.random.default_rng(0)
    centroid = tri.mean(1)
    head_faces = np.nonzero(head[faces].all(1) & (centroid[:, 2] > joints[JOINTS.index("head"), 2] + 0.03))[0]
    kintree = np.stack([np.array(SMPLX_PARENTS, np.int64), np.arange(len(JOINTS))])
    kintree[0, 0] = 4294967295  # as in the released files (uint32 -1)
    joint_names = np.array({name: i for i, name in enumerate(JOINTS)}, dtype=object)  # pickled, as in the real file
    return {  # float32 for the large arrays (the released files use float64) keeps the file small
        "v_template": v_template,
        "f": faces.astype(np.uint32),
        "J_regressor": J_regressor,
        "weights": weights,
        "kintree_table": kintree,
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": posedirs.astype(np.float32),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "lmk_faces_idx": rng.choice(head_faces, 51).astype(np.int64),
        "lmk_bary_coords": np.full((51, 3), 1.0 / 3.0),
        "dynamic_lmk_faces_idx": rng.choice(head_faces, (79, 17)).astype(np.int64),
        "dynamic_lmk_bary_coords": np.full((79, 17, 3), 1.0 / 3.0),
        "joint2num": joint_names,
    }


def write_synthetic_smplx(folder: str | Path, anny) -> Path:
    """Write `SMPLX_NEUTRAL.npz` into `folder`; returns its path."""
    path = Path(folder) / "SMPLX_NEUTRAL.npz"
    np.savez(path, **build_smplx_arrays(anny))
    return path



def smplx_walk(frames: int = 60, fps: float = 30.0, speed: float = 1.1) -> dict[str, np.ndarray]:
    """A walk defined on the SMPL-X skeleton (T-pose zero), in the project frame (Y up, facing
    and walking towards +Z): `global_orient` (F, 3), `body_pose` (F, 21, 3) for SMPL-X joints
    1..21, `transl` (F, 3) (the root's displacement; the height is left to grounding)."""
    import roma

    from persona.body.smplx_model import JOINTS

    t = torch.arange(frames, dtype=torch.float64) / fps
    phase = 2 * np.pi * t / 1.1  # one stride cycle every 1.1 s
    s, c = torch.sin(phase), torch.cos(phase)
    body = torch.zeros(frames, 21, 3, dtype=torch.float64)

    def joint(name: str) -> int:
        return JOINTS.index(name) - 1

    for side, sign in (("left", 1.0), ("right", -1.0)):
        swing = sign * s  # > 0: this leg forward
        body[:, joint(f"{side}_hip"), 0] = -0.45 * swing
        body[:, joint(f"{side}_knee"), 0] = 0.1 + 0.6 * (sign * c).clamp(min=0)
        body[:, joint(f"{side}_ankle"), 0] = -0.15 * swing
        # Arms: lowered from the T-pose (about Z), then swung opposite to the legs (about X).
        down = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, -sign * 1.25], dtype=torch.float64))
        swing_arm = roma.rotvec_to_rotmat(torch.stack([-0.35 * swing, 0 * swing, 0 * swing], -1))
        body[:, joint(f"{side}_shoulder")] = roma.rotmat_to_rotvec(swing_arm @ down)
        body[:, joint(f"{side}_elbow"), 1] = -sign * (0.3 + 0.15 * (-swing).clamp(min=0))
    body[:, joint("spine3"), 1] = 0.08 * s
    body[:, joint("spine1"), 0] = 0.05  # a slight forward lean
    transl = torch.zeros(frames, 3, dtype=torch.float64)
    transl[:, 2] = speed * t
    transl[:, 1] = 0.02 * torch.cos(2 * phase)
    return {"global_orient": np.zeros((frames, 3)), "body_pose": body.numpy(), "transl": transl.numpy()}


# Y up (project frame) -> Z up (AMASS): (x, y, z) -> (x, -z, y), then a turn about the new up.
def to_z_up(walk: dict[str, np.ndarray], yaw: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(global_orient, trans) of `smplx_walk` in an AMASS-like Z-up world, turned by `yaw`."""
    import roma

    to_z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    turn = roma.rotvec_to_rotmat(torch.tensor([0.0, 0.0, yaw], dtype=torch.float64))
    W = turn @ to_z
    G = W @ roma.rotvec_to_rotmat(torch.from_numpy(walk["global_orient"]))
    trans = torch.from_numpy(walk["transl"]) @ W.T + torch.tensor([0.3, -1.2, 0.9], dtype=torch.float64)
    return roma.rotmat_to_rotvec(G).numpy(), trans.numpy()
