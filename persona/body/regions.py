"""Regions of the body that the avatar treats apart: parts, rigid regions, kinematic hops.

- Parts (torso, head, upper and lower arms and legs): every joint belongs to the part of its
  nearest ancestor among the body's `part_roots`; a point takes the part of its dominant
  joint. Part maps rendered from the body give the optimisation a segmentation target.
- Rigid points get no learned offset (PERSONA: hands, face and eyes): the subtrees of the
  body's `rigid_roots` and the front half of the `face_joint`'s region.
- Kinematic hops: the number of bones between two joints in the skeleton tree; the pose input
  of a point's deformation is restricted to joints within a few hops of its dominant joint.
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


def pose_input_mask(body: BodyModel, weights: torch.Tensor, pose_joints: list[int], max_hops: int) -> torch.Tensor:
    """(N, P) float: 1 where pose joint p is within `max_hops` bones of point n's dominant joint.

    weights: (N, J); pose_joints: P joint indices that make the deformation's pose input."""
    hops = joint_hops(body.parents)[:, pose_joints].to(weights.device)  # (J, P)
    return (hops[dominant_joints(weights)] <= max_hops).float()
