"""Relative depth of the photo and the generated frames: a geometry target where they have no other.

DESIGN.md §1.3 weighs depth as a geometry term on every generated frame, and on the photo at
0.1 (geometry weighting). A video model gives only pixels, so a monocular estimator (Depth
Anything V2 Small, Apache-2.0; the registry entry `depth-anything-v2-small`) estimates each
frame's depth and the photo's, and the PERSONA optimisation aligns its render to it by a scale
and a shift before comparing (`TrainingFrame.depth_relative`,
`persona.avatar.losses.affine_aligned`). On the ground-truth benchmark the frames' estimates
gain about 0.5 dB held-out. The photo's weighs 0.1: balanced sampling shows the photo in half
the steps, and at full weight its error bends the shape (0.8 dB held-out; README).

The estimator predicts affine-invariant inverse depth (disparity). Over a person a few metres
away depth varies by a few per cent, so the negated disparity is affine in depth to first
order, which the alignment absorbs: `DepthEstimator` returns it shifted into [1, 2] over the
person (0 elsewhere, "unknown").

Weights come through `persona.hub.fetch` (safetensors only, never a pickle); without them
`add_depth_estimates` returns the frames unchanged with a note saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from persona.errors import PersonaError
from persona.generate.training_set import TrainingFrame

log = logging.getLogger(__name__)

WEIGHTS = "depth-anything-v2-small"
_MEAN = (0.485, 0.456, 0.406)  # ImageNet normalisation, as the model was trained
_STD = (0.229, 0.224, 0.225)


@dataclass
class DepthEstimator:
    """A loaded monocular depth network. input_size: the shorter side the frames are resized
    to (a multiple of the patch size, 14; the model was trained at 518)."""

    model: torch.nn.Module
    device: torch.device
    input_size: int = 518
    patch: int = 14

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image (H, W, 3) in [0, 1], mask (H, W) -> (H, W) relative depth, larger farther, in
        [1, 2] where mask > 0.5 and 0 elsewhere (all 0 on an empty mask)."""
        H, W = mask.shape
        scale = self.input_size / min(H, W)
        h, w = (max(self.patch, round(s * scale / self.patch) * self.patch) for s in (H, W))
        x = image.to(self.device, torch.float32).permute(2, 0, 1)[None]
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=scale < 1).clamp(0, 1)
        x = (x - torch.tensor(_MEAN, device=self.device)[:, None, None]) / torch.tensor(_STD, device=self.device)[:, None, None]
        disparity = self.model(pixel_values=x).predicted_depth  # (1, h, w)
        disparity = F.interpolate(disparity[None].float(), size=(H, W), mode="bilinear", align_corners=False)[0, 0].cpu()
        person = mask > 0.5
        if not bool(person.any()):
            return torch.zeros(H, W)
        near, far = disparity[person].max(), disparity[person].min()
        depth = 1 + (near - disparity) / (near - far).clamp(min=1e-6)
        return torch.where(person, depth, torch.zeros_like(depth))


def load_depth_estimator(device: torch.device | str = "cpu", local_dir: str | Path | None = None) -> DepthEstimator:
    """The estimator from `local_dir` or the registry's copy (`persona.hub.fetch`); raises
    PersonaError when the weights cannot be had or read."""
    from persona.hub import fetch

    folder = fetch(WEIGHTS, local_dir)
    try:
        from transformers import DepthAnythingForDepthEstimation

        model = DepthAnythingForDepthEstimation.from_pretrained(folder, use_safetensors=True)
    except (ImportError, OSError, ValueError) as err:
        raise PersonaError(f"The depth estimator in {folder} could not be loaded ({type(err).__name__}: {err}).") from err
    device = torch.device(device)
    return DepthEstimator(model.eval().to(device), device)


def add_depth_estimates(
    frames: list[TrainingFrame], device: torch.device | str = "cpu", estimator: DepthEstimator | None = None
) -> tuple[list[TrainingFrame], list[str]]:
    """The frames, the photo among them, with a relative depth estimate each (`depth_relative`),
    and notes for the report: without an estimator (none given and none loadable) the frames
    come back unchanged with a note saying why; frames that already have depth are kept."""
    if estimator is None:
        try:
            estimator = load_depth_estimator(device)
        except PersonaError as err:
            log.warning("depth estimates: %s", err)
            return frames, [f"No depth estimates for the photo and the generated frames ({err}); their shape is learnt from masks and images alone."]
    out = []
    for frame in frames:
        if frame.depth is not None:
            out.append(frame)
            continue
        depth = estimator(frame.image, frame.mask).to(frame.mask.device)
        out.append(replace(frame, depth=depth, depth_relative=True))
    return out, []
