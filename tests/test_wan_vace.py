"""Wan2.1-VACE wrapper on tiny random components (diffusers' own test sizes), on CPU: runs
end to end with the photo as reference image, is deterministic for a seed, and loads back
from a folder laid out like the Hub repo (save_pretrained -> our load_pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel  # noqa: E402

from persona.generate import wan_vace  # noqa: E402


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer built in memory (no download): every word of the prompts."""
    words = sorted({w for text in (wan_vace.DEFAULT_PROMPT, wan_vace.DEFAULT_NEGATIVE_PROMPT) for w in text.replace(",", " ").split()})
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_pipeline() -> WanVACEPipeline:
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    tokenizer = tiny_tokenizer()
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=1, num_heads=4)).eval()  # eval: no dropout, as from_pretrained gives
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16, text_dim=32,
        freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
        vace_layers=[0, 2], vace_in_channels=96,
    )  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    pipe = WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler, transformer=transformer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def inputs(frames: int = 6, size: int = 16):
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)
    skeleton = np.zeros((frames, size, size, 3), np.uint8)
    for f in range(frames):  # a moving bar, as a stand-in for a skeleton
        skeleton[f, :, (2 * f) % size] = 255
    return reference, skeleton


def run(pipe, seed=0, **kw):
    reference, skeleton = inputs()
    return wan_vace.generate(pipe, reference, skeleton, num_inference_steps=2, guidance_scale=2.0,
                             generator=torch.Generator().manual_seed(seed), max_sequence_length=16, **kw)  # fmt: skip


def test_padded_length():
    assert [wan_vace.padded_length(n) for n in (1, 2, 5, 6, 9, 81)] == [1, 5, 5, 9, 9, 81]


def test_runs_end_to_end_and_is_deterministic():
    pipe = tiny_pipeline()
    a, b, c = run(pipe, 0), run(pipe, 0), run(pipe, 1)
    assert a.frames.shape == (6, 16, 16, 3) and a.frames.dtype == np.float32
    assert np.isfinite(a.frames).all() and 0.0 <= a.frames.min() and a.frames.max() <= 1.0
    np.testing.assert_array_equal(a.frames, b.frames)
    assert np.abs(a.frames - c.frames).max() > 1e-4  # the seed matters


def test_precomputed_prompt_embeddings_match_the_prompt():
    """The benchmark skips UMT5 by passing embeddings: the same embeddings give the same video."""
    pipe = tiny_pipeline()
    embeds, negative = pipe.encode_prompt(wan_vace.DEFAULT_PROMPT, wan_vace.DEFAULT_NEGATIVE_PROMPT, max_sequence_length=16)
    a = run(pipe)
    b = run(pipe, prompt_embeds=embeds, negative_prompt_embeds=negative)
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-6)


def test_save_and_load_like_the_hub_repo(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "wan")
    loaded = wan_vace.load_pipeline(tmp_path / "wan", dtype=torch.float32)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded, WanVACEPipeline)
    np.testing.assert_allclose(run(pipe).frames, run(loaded).frames, atol=1e-6)


def test_rejects_bad_sizes():
    pipe = tiny_pipeline()
    reference, skeleton = inputs(size=16)
    with pytest.raises(ValueError, match="multiples of 16"):
        wan_vace.generate(pipe, reference, skeleton[:, :12], num_inference_steps=1)
