"""Profile the PERSONA training step on a CUDA GPU (run on the device machine):

    python bench/profile_step.py [--preset standard] [--steps 40]

Builds the preset's synthetic scene as `python -m persona bench gpu` does, then times the
pieces of one step alone (body transforms, pose offsets, diffused skinning, render, losses)
and prints torch.profiler's table of the full step by GPU and CPU time.
"""

from __future__ import annotations

import argparse
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from persona.avatar.model import AvatarRig
from persona.avatar.optimize import optimize_persona
from persona.body.anny_model import load_anny
from persona.evaluate.gpu_bench import cuda_ms, preset_config
from persona.evaluate.subjects import SUBJECTS, make_subject
from persona.evaluate.synthetic import build_scene


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    body = load_anny("cuda")
    config = preset_config(args.preset)
    with torch.device("cuda"):
        subject = make_subject(body, SUBJECTS[0], config.avatar_level + 1)
    scene = build_scene(body, subject, config, seed=0)
    persona = replace(config.persona, iterations=args.steps)
    avatar, _ = optimize_persona(scene.first_avatar, body, scene.training_set, persona)  # warm-up, and a deformer
    rig = AvatarRig(body, avatar)
    frame = scene.training_set.generated[3]
    shape = scene.training_set.shape[None]
    with torch.no_grad():
        transforms = body.forward(shape, frame.pose).bone_transforms
        canonical = rig.rest_points[None] + avatar.offsets
        print(f"body.forward: {cuda_ms(lambda: body.forward(shape, frame.pose)):.2f} ms")
        print(f"pose offsets: {cuda_ms(lambda: rig.pose_offsets(avatar.deformer, frame.pose)):.2f} ms")
        print(f"diffused skinning: {cuda_ms(lambda: rig.skin_deformed(canonical, transforms)):.2f} ms")
    # Where the loop waits for the GPU: each synchronising call, with the line that made it.
    seen: dict[str, int] = {}

    def note(message, category, filename, lineno, file=None, line=None):
        frames = [f for f in traceback.extract_stack()[:-1] if "/persona/" in f.filename or "/anny/" in f.filename or "/gsplat/" in f.filename]
        key = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in frames[-3:][::-1])
        seen[key] = seen.get(key, 0) + 1

    warnings.showwarning = note
    torch.cuda.set_sync_debug_mode("warn")
    optimize_persona(scene.first_avatar, body, scene.training_set, replace(persona, iterations=10))
    torch.cuda.set_sync_debug_mode("default")
    print("synchronising calls in 10 steps (and the setup):")
    for key, count in sorted(seen.items(), key=lambda kv: -kv[1]):
        print(f"  {count:4d}  {key}")
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        optimize_persona(scene.first_avatar, body, scene.training_set, persona)
        torch.cuda.synchronize()
    table = prof.key_averages()
    print(table.table(sort_by="self_cpu_time_total", row_limit=30))
    print(table.table(sort_by="self_cuda_time_total", row_limit=20))


if __name__ == "__main__":
    main()
