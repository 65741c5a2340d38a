"""Balanced sampling (PERSONA): the captured photo as often as all generated frames together.

A training set holds one captured photo and hundreds of generated frames. Drawn uniformly,
the photo would be one sample in hundreds and the generated frames' drift in identity would
win; PERSONA repeats the captured frames until they match the generated frames in number and
shuffles both lists together, so every epoch is half photo, half generated frames.
"""

from __future__ import annotations

from typing import Iterator

import torch


class BalancedSampler:
    """Endless frame indices, epoch after epoch.

    captured: indices of captured frames; generated: indices of generated frames;
    balanced: False gives each frame once per epoch (the ablation); seed: the shuffle's seed.
    """

    def __init__(self, captured: list[int], generated: list[int], balanced: bool = True, seed: int = 0):
        if not captured and not generated:
            raise ValueError("no frames to sample")
        self.captured, self.generated, self.balanced = list(captured), list(generated), balanced
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def epoch_length(self) -> int:
        """Frames per epoch: twice the generated frames when balanced, else every frame once."""
        if self.balanced and self.generated:
            return 2 * len(self.generated)
        return len(self.captured) + len(self.generated)

    def steps_for(self, balanced_steps: int) -> int:
        """Steps that cover as many epochs as `balanced_steps` steps of the balanced schedule do
        (PERSONA counts its schedule in epochs: without balancing an epoch is shorter)."""
        if not self.generated:
            return balanced_steps
        return max(1, round(balanced_steps * self.epoch_length / (2 * len(self.generated))))

    def epoch(self) -> list[int]:
        """One epoch: the generated frames once each, and the captured frames cycled to the
        same count (once each when not balanced or when there are no generated frames),
        shuffled together."""
        repeats = len(self.generated) if self.balanced and self.generated else len(self.captured)
        captured = [self.captured[i % len(self.captured)] for i in range(repeats)] if self.captured else []
        frames = captured + self.generated
        order = torch.randperm(len(frames), generator=self.generator).tolist()
        return [frames[i] for i in order]

    def __iter__(self) -> Iterator[int]:
        while True:
            yield from self.epoch()
