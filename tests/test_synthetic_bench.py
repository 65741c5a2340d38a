"""The ground-truth benchmark's runner on a tiny configuration: the JSON record's shape.
(The full run on a GPU runs each subject in its own process: tested here on the CPU.)"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from persona.avatar.deform import DeformConfig
from persona.avatar.optimize import PersonaConfig
from persona.body.weight_field import WeightFieldConfig
from persona.cli import main
from persona.errors import PersonaError
from persona.evaluate.synthetic import (
    ORACLES, QUICK, VARIANTS, SyntheticConfig, build_scene, merge_records, run_synthetic_benchmark, synth_training_set, worker_threads,
    write_synthetic_benchmark,
)  # fmt: skip
from persona.evaluate.subjects import SUBJECTS, make_subject

TINY = SyntheticConfig(
    subjects=2, avatar_level=0, photo_size=(36, 48), resolution=48, train_motions=("walk",), frames_per_motion=2,
    heldout_motions=("wave",), heldout_per_motion=1, first_iterations=2,
    persona=PersonaConfig(
        iterations=4, deform=DeformConfig(triplane_channels=2, triplane_resolution=8, hidden=16, hidden_layers=1, groups=4),
        skinning=WeightFieldConfig(resolution=12),
    ),
)  # fmt: skip


def test_the_record_holds_every_variant_for_every_subject(body):
    required = {"full", "no_balanced_sampling", "no_geometry_weighting", "no_pose_deformation"}
    assert required <= set(VARIANTS) and required <= set(SyntheticConfig().variants) and set(QUICK.variants) == set(VARIANTS)
    some = ("full", "no_pose_deformation", "synth_frames")  # the others only switch flags
    record = run_synthetic_benchmark(body, replace(TINY, variants=some), log=lambda message: None)
    assert set(record["variants"]) == set(some)
    for metrics in [*record["variants"].values(), record["first_avatar"]]:
        assert {"psnr_heldout", "ssim_heldout", "iou_heldout", "psnr_input_view", "psnr_heldout_true_colors", "psnr_heldout_true_shape", "seconds"} <= set(metrics)
        assert 0.5 < metrics["iou_heldout"] <= 1 and metrics["psnr_heldout"] > 10
        assert metrics["psnr_heldout_true_colors"] > 10 and metrics["psnr_heldout_true_shape"] > 10
    assert list(record["per_subject"]) == ["ada", "ben"] and record["config"]["subjects"] == 2
    assert set(record["per_subject"]["ben"]) == {"first_avatar", *some}
    # The oracles: the subject at the avatar's level scores above the first avatar; ben's shirt
    # is skinned with the body's weights (posed_garment is exact), ada's skirt is not.
    assert set(record["oracle"]) == set(ORACLES) and set(record["oracle_per_subject"]) == {"ada", "ben"}
    for subject, oracle in record["oracle_per_subject"].items():
        first = record["per_subject"][subject]["first_avatar"]
        assert oracle["exact"]["psnr_heldout"] > first["psnr_heldout"] and oracle["exact"]["iou_heldout"] > first["iou_heldout"]
    ada, ben = record["oracle_per_subject"]["ada"], record["oracle_per_subject"]["ben"]
    assert ben["posed_garment"] == ben["exact"] and ada["posed_garment"] != ada["exact"]


def test_the_synth_frames_variant_sees_the_first_avatar_in_the_simulators_poses_and_views(body):
    """`synth_frames` trains on what the default pipeline trains on: the first avatar rendered
    by the `synth` generator, in the same driving poses and from the same cameras as the
    simulator's video-model frames, with exact depth and normals."""
    scene = build_scene(body, make_subject(body, SUBJECTS[1], TINY.avatar_level + 1), TINY, seed=1)
    simulated, synth = scene.training_set, synth_training_set(body, scene, TINY)
    assert (simulated.backend, synth.backend) == ("simulator", "synth") and synth.follows_driving_pose
    assert synth.true_colors and not simulated.true_colors  # the simulator's frames drift in colour
    assert synth.body_skinning and not simulated.body_skinning  # and its garments move off the body
    assert synth.captured == simulated.captured and len(synth.generated) == len(simulated.generated) == 2
    for ours, theirs in zip(synth.generated, simulated.generated):
        assert torch.equal(ours.pose.joint_rotations, theirs.pose.joint_rotations)
        assert torch.equal(ours.camera.world_to_camera, theirs.camera.world_to_camera)
        assert not ours.depth_relative and ours.normal is not None
        person = (ours.mask > 0.5) & (theirs.mask > 0.5)
        assert person.float().mean() > 0.05 and not torch.allclose(ours.image[person], theirs.image[person], atol=0.02)


def test_one_process_per_subject_gives_the_same_record(body):
    """The GPU mode (here on the CPU): each subject in a spawned process."""
    config = replace(TINY, variants=("full", "no_pose_deformation"))
    threads = torch.get_num_threads()
    torch.set_num_threads(worker_threads(config.subjects))  # as each worker: the sums' order is the same
    try:
        alone = run_synthetic_benchmark(body, config, log=lambda message: None)
    finally:
        torch.set_num_threads(threads)
    spread = run_synthetic_benchmark(body, config, log=lambda message: None, parallel=True)
    assert spread["per_subject"].keys() == alone["per_subject"].keys()
    for subject, runs in alone["per_subject"].items():
        assert spread["per_subject"][subject].keys() == runs.keys()
        for name, metrics in runs.items():
            for key, value in metrics.items():
                assert abs(spread["per_subject"][subject][name][key] - value) < 1e-3, (subject, name, key)


def test_an_unknown_variant_is_refused_before_anything_runs(body, tmp_path):
    with pytest.raises(PersonaError, match="no_such_thing"):
        write_synthetic_benchmark(body, quick=True, out=tmp_path / "record.json", variants=("full", "no_such_thing"))
    for motions in (("walk", "moonwalk"), ()):  # the training clips: built-in motions only, at least one
        with pytest.raises(PersonaError, match="moonwalk|No training motion"):
            write_synthetic_benchmark(body, quick=True, out=tmp_path / "record.json", train_motions=motions)
    assert main(["bench", "synthetic", "--quick", "--train-motions", "walk,moonwalk", "--out", str(tmp_path / "record.json")]) != 0
    assert not (tmp_path / "record.json").exists()


def test_the_training_clips_can_be_chosen(body, tmp_path, monkeypatch):
    """`--train-motions`: the record's training set is made of those clips, and says so; as
    `--no-depth-estimates` says the frames had no depth."""
    import persona.evaluate.synthetic as synthetic

    monkeypatch.setattr(synthetic, "QUICK", replace(TINY, subjects=1))
    out = write_synthetic_benchmark(
        body, quick=True, out=tmp_path / "record.json", variants=("no_pose_deformation",), train_motions=("stretch", "walk"),
        depth_estimates=False,
    )  # fmt: skip
    record = json.loads(out.read_text())
    assert record["config"]["train_motions"] == ["stretch", "walk"] and set(record["variants"]) == {"no_pose_deformation"}
    assert record["config"]["depth_estimates"] is False and TINY.depth_estimates


def test_records_of_a_split_run_merge_into_one(body, tmp_path):
    """The full run split over calls (`--variants`), put back together (`--merge`)."""
    one = replace(TINY, subjects=1)
    parts = [run_synthetic_benchmark(body, replace(one, variants=(name,)), log=lambda message: None) for name in ("no_pose_deformation", "full")]
    merged = merge_records(parts)
    assert list(merged["variants"]) == ["full", "no_pose_deformation"] == merged["config"]["variants"]  # VARIANTS' order
    assert merged["variants"]["full"] == parts[1]["variants"]["full"]
    assert set(merged["per_subject"]["ada"]) == {"first_avatar", "full", "no_pose_deformation"}
    assert merged["seconds_total"] == pytest.approx(parts[0]["seconds_total"] + parts[1]["seconds_total"], abs=0.11)
    with pytest.raises(PersonaError, match="more than once"):
        merge_records([parts[0], parts[0]])
    with pytest.raises(PersonaError, match="different settings"):
        merge_records([parts[0], {**parts[1], "config": {**parts[1]["config"], "resolution": 64}}])

    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"part{i}.json")
        paths[-1].write_text(json.dumps(part))
    out = tmp_path / "merged.json"
    assert main(["bench", "synthetic", "--merge", *map(str, paths), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["variants"] == json.loads(json.dumps(merged))["variants"]
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["bench", "synthetic", "--merge", str(paths[0]), str(tmp_path / "broken.json"), "--out", str(out)]) != 0


def test_repeated_runs_merge_into_their_means(body):
    """A variant in several records (repeats, for the GPU's run-to-run spread): its metrics
    are the runs' means, per subject and overall, and each run's held-out PSNR is kept."""
    one = replace(TINY, subjects=1, variants=("full",))
    runs = [run_synthetic_benchmark(body, one, log=lambda message: None) for _ in range(2)]
    fake = {**runs[1], "date": "another call"}  # a third run that scored 1 dB higher
    fake["per_subject"] = {"ada": {**runs[1]["per_subject"]["ada"], "full": {**runs[1]["per_subject"]["ada"]["full"]}}}
    fake["per_subject"]["ada"]["full"]["psnr_heldout"] += 1
    fake["variants"] = {"full": {**runs[1]["variants"]["full"], "psnr_heldout": runs[1]["variants"]["full"]["psnr_heldout"] + 1}}
    records = [*runs, fake]
    each = [r["variants"]["full"]["psnr_heldout"] for r in records]
    merged = merge_records(records)
    full = merged["variants"]["full"]
    assert full["runs"] == 3 and full["psnr_heldout_runs"] == each and len(full["iou_heldout_runs"]) == 3
    assert full["psnr_heldout"] == pytest.approx(sum(each) / 3, abs=1e-4)
    ada = merged["per_subject"]["ada"]["full"]
    assert ada["runs"] == 3 and ada["psnr_heldout"] == pytest.approx(sum(r["per_subject"]["ada"]["full"]["psnr_heldout"] for r in records) / 3, abs=1e-4)
    # Merging the merged record with a fourth run weighs each run once.
    again = merge_records([merged, {**runs[0], "date": "a fourth call"}])
    assert again["variants"]["full"]["runs"] == 4
    assert again["variants"]["full"]["psnr_heldout"] == pytest.approx((sum(each) + each[0]) / 4, abs=1e-4)
