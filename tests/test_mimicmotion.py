"""MimicMotion on diffusers, tiny random components on CPU (diffusers' fast-test style):
end to end, deterministic for a seed, save/load round trip through a folder laid out like a
Hub repo, parity with diffusers' own StableVideoDiffusionPipeline when the pose adds nothing,
long-video tiling, and the checkpoint converter (weights_only=True .pth and safetensors)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline  # noqa: E402

from persona.errors import PersonaError  # noqa: E402
from persona.generate.mimicmotion import (  # noqa: E402
    MimicMotionPipeline,
    PoseNet,
    build_pipeline,
    convert_checkpoint,
    load_mimicmotion_checkpoint,
    tile_indices,
    triangle_weights,
)
from persona.generate.video_bench import build_mimicmotion  # noqa: E402

SIZE = 64  # pixels; latents 8 x 8


@pytest.fixture(scope="module")
def pipe() -> MimicMotionPipeline:
    p = build_mimicmotion(torch.device("cpu"), torch.float32, scale="tiny")
    torch.manual_seed(1)
    with torch.no_grad():  # a PoseNet that does something (the released one is not zero either)
        p.pose_net.final_proj.weight.normal_(std=0.05)
    return p


def reference() -> PIL.Image.Image:
    return PIL.Image.fromarray((np.random.RandomState(0).rand(SIZE, SIZE, 3) * 255).astype(np.uint8))


def poses(frames: int, seed: int = 1) -> np.ndarray:
    rng = np.random.RandomState(seed)
    video = np.zeros((frames, SIZE, SIZE, 3), np.uint8)
    for f in range(frames):
        x, y = rng.randint(0, SIZE - 12, 2)
        video[f, y : y + 12, x : x + 4] = rng.randint(80, 255, 3)
    return video


def generate(pipe, frames=4, seed=0, **kw):
    kw = {"num_inference_steps": 2, "guidance_scale": 2.0, "tile_size": 4, "tile_overlap": 1, **kw}
    return pipe(reference(), poses(frames), generator=torch.Generator().manual_seed(seed), output_type="np", **kw).frames


def test_runs_end_to_end_and_is_deterministic(pipe):
    a, b, c = generate(pipe), generate(pipe), generate(pipe, seed=1)
    assert a.shape == (1, 4, SIZE, SIZE, 3) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_pose_changes_the_video(pipe):
    with_pose = generate(pipe)
    out = pipe(reference(), poses(4, seed=7), num_inference_steps=2, guidance_scale=2.0, tile_size=4, tile_overlap=1,
               generator=torch.Generator().manual_seed(0), output_type="np").frames  # fmt: skip
    assert np.abs(with_pose - out).max() > 1e-4


def test_matches_stable_video_diffusion_when_the_pose_adds_nothing(pipe):
    """Peer check: PoseNet output zeroed, one tile, CFG 2 constant over frames, no noise aug:
    every remaining step (CLIP and VAE conditioning, micro-conditioning, noise, scheduler,
    CFG, chunked decoding) must match diffusers' StableVideoDiffusionPipeline. Tolerance:
    1e-4 absolute on frames in [0, 1] (float32 on CPU; ours runs CFG as two batch-1 UNet
    calls and divides by the fusion weight, SVD batches the two: rounding only; measured
    about 3e-5)."""
    zeroed = MimicMotionPipeline(**{**pipe.components, "pose_net": PoseNet(noise_latent_channels=32)})
    zeroed.set_progress_bar_config(disable=True)
    ours = generate(zeroed, frames=4, num_inference_steps=3, decode_chunk_size=2)
    svd = StableVideoDiffusionPipeline(pipe.vae, pipe.image_encoder, pipe.unet, pipe.scheduler, pipe.feature_extractor)
    svd.set_progress_bar_config(disable=True)
    theirs = svd(
        reference(), height=SIZE, width=SIZE, num_frames=4, num_inference_steps=3, min_guidance_scale=2.0,
        max_guidance_scale=2.0, fps=7, motion_bucket_id=127, noise_aug_strength=0.0, decode_chunk_size=2,
        generator=torch.Generator().manual_seed(0), output_type="np",
    ).frames  # fmt: skip
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_tiles_and_weights():
    assert tile_indices(4, 4, 1) == [[0, 1, 2, 3]]
    assert tile_indices(3, 72, 6) == [[0, 1, 2]]  # short videos: one tile of every frame
    tiles = tile_indices(10, 4, 1)  # stride 3; frame 0 in every tile; the last tile ends at frame 9
    assert tiles == [[0, 1, 2, 3], [0, 4, 5, 6], [0, 7, 8, 9]]
    paper = tile_indices(1 + 71 + 66, 72, 6)  # N = 1 + P, P = 71 + 66k pose frames -> k + 1 tiles, 5 shared
    assert len(paper) == 2 and len(set(paper[0][1:]) & set(paper[1][1:])) == 5
    w = triangle_weights(72)
    assert w.shape == (72,) and torch.allclose(w, w.flip(0)) and float(w.min()) > 0 and float(w.max()) <= 1


def test_long_video_in_overlapping_tiles(pipe):
    out = generate(pipe, frames=10)
    assert out.shape == (1, 10, SIZE, SIZE, 3) and np.isfinite(out).all()


def test_check_inputs_name_the_bad_value(pipe):
    with pytest.raises(ValueError, match="multiples of 16"):  # tiny UNet: 2 blocks
        pipe(reference(), poses(4)[:, :60, :60], num_inference_steps=1)
    with pytest.raises(ValueError, match="tile_overlap"):
        generate(pipe, tile_size=4, tile_overlap=3)
    with pytest.raises(ValueError, match="latents"):
        generate(pipe, latents=torch.zeros(1, 3, 4, 8, 8))


def test_given_latents_replace_the_noise(pipe):
    latents = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    a = generate(pipe, latents=latents, seed=0)
    b = generate(pipe, latents=latents, seed=3)  # the seed still drives the (zero) noise aug only
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_save_and_load_pretrained(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "mm")
    assert (tmp_path / "mm" / "pose_net" / "config.json").is_file()
    loaded = MimicMotionPipeline.from_pretrained(tmp_path / "mm")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.pose_net, PoseNet) and isinstance(loaded.scheduler, EulerDiscreteScheduler)
    for name in ("unet", "vae", "image_encoder", "pose_net"):  # every weight comes back exactly
        saved, back = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved), name
    # The frames agree to rounding: a loaded UNet / CLIP may pick other attention kernels (about 6e-5 here).
    np.testing.assert_allclose(generate(pipe), generate(loaded), atol=2e-4)


def _fake_checkpoint(pipe) -> dict[str, torch.Tensor]:
    """The released file's layout: one flat dict, unet.* and pose_net.* keys, fp16."""
    state = {f"unet.{k}": v.half() for k, v in pipe.unet.state_dict().items()}
    state.update({f"pose_net.{k}": v.half() for k, v in pipe.pose_net.state_dict().items()})
    return state


def test_converter_reads_pth_with_weights_only_and_safetensors(pipe, tmp_path):
    from safetensors.torch import save_file

    state = _fake_checkpoint(pipe)
    torch.save(state, tmp_path / "MimicMotion_1-1.pth")
    save_file(state, tmp_path / "MimicMotion-fp16.safetensors")
    for name in ("MimicMotion_1-1.pth", "MimicMotion-fp16.safetensors"):
        parts = load_mimicmotion_checkpoint(tmp_path / name)
        assert set(parts.unet) == set(pipe.unet.state_dict()) and set(parts.pose_net) == set(pipe.pose_net.state_dict())
        unet = type(pipe.unet).from_config(pipe.unet.config)
        pose_net = PoseNet(noise_latent_channels=32)
        convert_checkpoint(parts, unet, pose_net)
        for k, v in pipe.pose_net.state_dict().items():
            torch.testing.assert_close(pose_net.state_dict()[k].float(), v.half().float())
        key = next(iter(parts.unet))
        torch.testing.assert_close(unet.state_dict()[key].float(), pipe.unet.state_dict()[key].half().float())


def test_converter_refuses_pickled_code_and_wrong_files(pipe, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"unet.x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(PersonaError, match="Could not read"):
        load_mimicmotion_checkpoint(tmp_path / "evil.pth")
    torch.save({"model.x": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(PersonaError, match="no unet"):
        load_mimicmotion_checkpoint(tmp_path / "other.pth")
    parts = load_mimicmotion_checkpoint(_save(tmp_path, {**_fake_checkpoint(pipe), "pose_net.extra": torch.zeros(1)}))
    with pytest.raises(PersonaError, match="unexpected"):
        convert_checkpoint(parts, type(pipe.unet).from_config(pipe.unet.config), PoseNet(noise_latent_channels=32))


def _save(folder, state):
    torch.save(state, folder / "ckpt.pth")
    return folder / "ckpt.pth"


def test_build_pipeline_from_hub_layout(pipe, tmp_path):
    """The real loading code: an SVD folder as on the Hub (fp16 variant files, UNet config
    only used) plus the MimicMotion .pth -> a pipeline equal to the source components."""
    svd = StableVideoDiffusionPipeline(pipe.vae, pipe.image_encoder, pipe.unet, pipe.scheduler, pipe.feature_extractor)
    svd.save_pretrained(tmp_path / "svd", variant="fp16")
    assert (tmp_path / "svd" / "vae" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    torch.save(_fake_checkpoint(pipe), tmp_path / "MimicMotion_1-1.pth")
    built = build_pipeline(tmp_path / "svd", tmp_path / "MimicMotion_1-1.pth", dtype=torch.float32)
    built.set_progress_bar_config(disable=True)
    assert not any(p.is_meta for p in built.unet.parameters())
    reference_pipe = MimicMotionPipeline(**{**pipe.components})
    for module in (reference_pipe.unet, reference_pipe.pose_net):  # the checkpoint is fp16
        module.load_state_dict({k: v.half().float() for k, v in module.state_dict().items()})
    np.testing.assert_allclose(generate(built), generate(reference_pipe), atol=2e-4)  # loaded: see above
