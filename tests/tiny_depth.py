"""A Depth Anything V2 network with random weights and tiny sizes, in the Hub's format
(config.json + model.safetensors), for the depth estimator's tests: the real loading code runs
on it where the real weights (Apache-2.0, 99 MB) cannot be downloaded."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_depth_model(folder: Path) -> Path:
    """Write the tiny model to `folder` (created) and return it."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, patch_size=14, image_size=56,
        out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
        head_hidden_size=8, patch_size=14,
    )  # fmt: skip
    torch.manual_seed(0)
    model = DepthAnythingForDepthEstimation(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    return folder
