"""Gaussians on the surface, and the texture's fill of the unseen side."""

import torch

from persona.avatar.surface import bind_surface
from persona.avatar.texture import FILLED, SEEN, harmonic_fill, mesh_adjacency, project_texture
from persona.body.model import BodyPose
from persona.perceive.fit import photo_camera


def test_surface_levels_give_unique_points_on_the_mesh(body):
    rest = body.rest_vertices(body.default_shape[None])[0]
    counts = []
    for level in range(3):
        binding = bind_surface(body.faces, len(rest), level)
        points = binding.interpolate(body.faces, rest)
        assert torch.allclose(binding.barycentric.sum(1), torch.ones(len(binding)))
        assert (binding.barycentric >= 0).all()
        assert torch.unique((points * 1e5).round().long(), dim=0).shape[0] == len(binding)
        counts.append(len(binding))
    V, F = len(rest), body.faces.shape[0]
    E = F * 3 // 2  # closed-ish triangle mesh
    assert counts[0] == V
    assert abs(counts[1] - (V + E)) < 0.02 * counts[1]
    assert 200_000 < counts[2] < 240_000


def test_harmonic_fill_interpolates_between_known_vertices():
    # A path graph 0-1-2-3-4 with known ends: the fill is linear in between.
    faces = torch.tensor([[0, 1, 1], [1, 2, 2], [2, 3, 3], [3, 4, 4]])
    adjacency = mesh_adjacency(faces, 5)
    values = torch.tensor([[0.0], [9.0], [9.0], [9.0], [1.0]])
    known = torch.tensor([True, False, False, False, True])
    filled = harmonic_fill(values, known, adjacency, 500)
    assert torch.allclose(filled[:, 0], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]), atol=1e-3)


def test_front_colours_come_from_the_photo_and_the_back_is_filled(body):
    W, H = 256, 384
    camera = photo_camera(W, H, 50.0)
    pose = BodyPose.zeros(1, body.num_joints)
    pose.translation[0] = torch.tensor([0.0, 0.0, -3.5])
    with torch.no_grad():
        vertices = body.forward(body.default_shape[None], pose).vertices[0]
    image = torch.zeros(H, W, 3)
    image[: H // 2, :, 0] = 1.0  # top half red, bottom half green
    image[H // 2 :, :, 1] = 1.0
    mask = torch.ones(H, W)
    head = torch.zeros(len(vertices), dtype=torch.bool)
    texture = project_texture(vertices, body.faces, head, camera, image, mask)
    seen = texture.source == SEEN
    assert 0.25 < seen.float().mean() < 0.65  # about the front half
    pixels, _ = camera.project(vertices)
    top = pixels[:, 1] < H // 2 - 5
    assert (texture.colors[seen & top, 0] > 0.9).all()
    assert (texture.colors[seen & ~top & (pixels[:, 1] > H // 2 + 5), 1] > 0.9).all()
    assert (texture.source != FILLED).all()  # everything projects inside the mask here
