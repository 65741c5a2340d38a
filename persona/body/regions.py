"""Regions of the body that the avatar treats apart: parts, rigid regions, kinematic hops.

- Parts (torso, head, upper and lower arms and legs): every joint belongs to the part of its
  nearest ancestor among the body's `part_roots`; a point takes the part of its dominant
  joint. Part maps rendered from the body give the optimisation a segmentation target.
- Rigid points get no learned offset (PERSONA: hands, face and eyes): the subtrees of the
  body's `rigid_roots` and the front half of the `face_joint`'s region.
- Kinematic hops: the number of bones between two joints in the skeleton tree; the pose input
  of a point's deformation is restricted to joints within a few hops of its dominant joint.
  They are counted on the tree of the driving joints alone (each one's parent its nearest
  driving ancestor, the root included): anny's skeleton has helper joints between them
  (pelvis.L, upperleg02.L, shoulder01.L), and counted on it a skirt's left side is five bones
  from the right thigh, so it cannot see the legs spread; on the driving tree, as on SMPL-X's
  (PERSONA's), it is two.
"""

from __future__ import annotations

import torch

from persona.body.model import BodyModel


def joint_hops(parents: list[int]) -> torch.Tensor:
    """(J, J) int64 number of bones on the tree path between each pair of joints."""
    J = len(parents)
    ancestors = []  # ancestors[j]: [j, parent, grandparent, ..., root]
    for j in range(J):
        chain, k = [], j
        while k >= 0:
            chain.append(k)
            k = parents[k]
        ancestors.append(chain)
    hops = torch.zeros(J, J, dtype=torch.long)
    for a in range(J):
        depth_a = {k: d for d, k in enumerate(ancestors[a])}
        for b in range(J):
            # The lowest common ancestor is the first of b's ancestors that is also a's.
            for d_b, k in enumerate(ancestors[b]):
                if k in depth_a:
                    hops[a, b] = depth_a[k] + d_b
                    break
    return hops


def joint_parts(body: BodyModel) -> torch.Tensor:
    """(J,) int64 part index of each joint (an index into `body.part_roots`)."""
    roots = {body.joint_index(name): p for p, name in enumerate(body.part_roots)}
    parts = torch.zeros(body.num_joints, dtype=torch.long)
    for j in range(body.num_joints):
        k = j
        while k >= 0 and k not in roots:
            k = body.parents[k]
        parts[j] = roots.get(k, 0)
    return parts


def dominant_joints(weights: torch.Tensor) -> torch.Tensor:
    """weights: (N, J) skinning weights -> (N,) the joint with the largest weight."""
    return weights.argmax(-1)


def rigid_points(body: BodyModel, weights: torch.Tensor, rest_points: torch.Tensor) -> torch.Tensor:
    """(N,) bool: points that get no learned offset (hands, eyes, jaw, the face).

    weights: (N, J) skinning weights of the points; rest_points: (N, 3) in the rest pose
    (facing +Z)."""
    in_subtree = torch.zeros(body.num_joints, dtype=torch.bool)
    rigid = {body.joint_index(name) for name in body.rigid_roots}
    for j in range(body.num_joints):
        k = j
        while k >= 0 and k not in rigid:
            k = body.parents[k]
        in_subtree[j] = k >= 0
    dominant = dominant_joints(weights)
    out = in_subtree.to(weights.device)[dominant]
    head = dominant == body.joint_index(body.face_joint)
    if head.any():
        front = rest_points[:, 2] > rest_points[head, 2].mean()
        out |= head & front
    return out


def driving_hops(parents: list[int], joints: list[int]) -> torch.Tensor:
    """(J, K) int64 bones from each joint of the skeleton to each of `joints` (K indices),
    counted on the tree of `joints` and the skeleton's roots alone: a joint's parent there is
    its nearest ancestor among them, and a joint outside them stands at its nearest ancestor
    (or itself) among them."""
    kept = sorted({j for j, p in enumerate(parents) if p < 0} | set(joints))
    index = {j: k for k, j in enumerate(kept)}

    def anchor(j: int) -> int:  # the nearest kept ancestor-or-self (a root is always kept)
        while j not in index:
            j = parents[j]
        return index[j]

    tree = [anchor(parents[j]) if parents[j] >= 0 else -1 for j in kept]
    hops = joint_hops(tree)  # (K', K')
    anchors = torch.tensor([anchor(j) for j in range(len(parents))])
    return hops[anchors][:, [index[j] for j in joints]]


HOP_TREES = ("driving", "skeleton")


def pose_input_mask(body: BodyModel, weights: torch.Tensor, pose_joints: list[int], max_hops: int, tree: str = "driving") -> torch.Tensor:
    """(N, P) float: 1 where pose joint p is within `max_hops` bones of point n's dominant joint,
    counted on the tree of the pose joints (`driving_hops`) or on the whole skeleton
    (`joint_hops`, tree "skeleton").

    weights: (N, J); pose_joints: P joint indices that make the deformation's pose input."""
    if tree not in HOP_TREES:
        raise ValueError(f"unknown hop tree {tree!r}; choose one of {HOP_TREES}")
    hops = driving_hops(body.parents, pose_joints) if tree == "driving" else joint_hops(body.parents)[:, pose_joints]
    hops = hops.to(weights.device)  # (J, P)
    return (hops[dominant_joints(weights)] <= max_hops).float()
