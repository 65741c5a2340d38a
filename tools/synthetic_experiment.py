"""One subject of the ground-truth benchmark with configuration overrides: the first avatar and
the full method's PERSONA stage (`persona.evaluate.synthetic.run_subject`, the full variant
alone). For experiments (bench/results/synthetic_*_experiments.json), not records.

    python tools/synthetic_experiment.py SUBJECT '{"offset_weight": 0.1}' OUT.json [--device cuda]

SUBJECT: a name in persona.evaluate.subjects.SUBJECTS (ada, ben, cleo) or its index. Override
keys: PersonaConfig fields ("deform.NAME" for its DeformConfig), "synthetic.NAME" for
SyntheticConfig fields, "photo.NAME" for the photo stage's AvatarConfig fields, and
"photo.lr_offsets_relative": r, the photo stage's offset step set to r x the Gaussians' mean
initial std. `tools/synthetic_experiments.sh` runs several side by side on the GPU machine.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import torch

from persona.avatar import train
from persona.body.anny_model import load_anny
from persona.evaluate import synthetic
from persona.evaluate.subjects import SUBJECTS


def configured(overrides: dict) -> tuple[synthetic.SyntheticConfig, dict, float | None]:
    """(benchmark config, photo-stage AvatarConfig overrides, relative photo offset step)."""
    config = synthetic.SyntheticConfig()
    persona, photo, relative = config.persona, {}, None
    for key, value in overrides.items():
        group, _, name = key.rpartition(".")
        if group == "synthetic":
            config = replace(config, **{name: tuple(value) if isinstance(value, list) else value})
        elif key == "photo.lr_offsets_relative":
            relative = value
        elif group == "photo":
            photo[name] = value
        elif group == "deform":
            persona = replace(persona, deform=replace(persona.deform, **{name: value}))
        elif not group:
            persona = replace(persona, **{name: value})
        else:
            raise SystemExit(f"unknown override {key!r}")
    return replace(config, persona=persona), photo, relative


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject")
    parser.add_argument("overrides", type=json.loads)
    parser.add_argument("out")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    names = [s.name for s in SUBJECTS]
    index = int(args.subject) if args.subject.isdigit() else names.index(args.subject)
    config, photo, relative = configured(args.overrides)
    config = replace(config, device=args.device)

    def photo_stage(avatar, rig, image, mask, camera, avatar_config, progress=None):
        avatar_config = replace(avatar_config, **photo)
        if relative is not None:
            avatar_config = replace(avatar_config, lr_offsets=relative * float(avatar.log_scales.exp().mean()))
        return train.optimize_on_photo(avatar, rig, image, mask, camera, avatar_config, progress)

    synthetic.optimize_on_photo = photo_stage  # the scene's first avatar takes the photo-stage overrides
    run = synthetic.run_subject(load_anny(args.device), index, replace(config, variants=("full",)))
    record = {
        "subject": names[index],
        "overrides": args.overrides,
        "seconds": round(sum(run.seconds.values()), 1),
        "first_avatar": run.results["first_avatar"],
        "oracle": run.oracle,
        **run.results["full"],
    }
    print(json.dumps(record), flush=True)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
