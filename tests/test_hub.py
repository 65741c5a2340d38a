"""The weight registry: offline -> a clear PersonaError (what, how to get it, licence);
a local folder laid out like the Hub repo is found; an incomplete one is named."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from persona import hub
from persona.errors import PersonaError


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.delenv(hub.WEIGHTS_DIR_VARIABLE, raising=False)


def lay_out(folder, entry: hub.HubEntry) -> None:
    for name in entry.required:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"{}")


def test_registry_entries_are_complete():
    assert {"mimicmotion", "svd-xt-1-1", "wan-vace-1.3b"} <= set(hub.REGISTRY)
    for entry in hub.REGISTRY.values():
        assert entry.licence and entry.repo.count("/") == 1 and entry.size_gb > 0
        assert entry.pinned or entry.revision == hub.UNPINNED
        for name in entry.required:  # every required file is downloaded
            assert any(fnmatch.fnmatch(name, p) for p in entry.allow_patterns), (entry.name, name)
    assert hub.REGISTRY["mimicmotion"].pinned
    assert hub.REGISTRY["svd-xt-1-1"].gated and not hub.REGISTRY["wan-vace-1.3b"].gated


@pytest.mark.usefixtures("offline")
def test_offline_without_cache_is_a_clear_error():
    with pytest.raises(PersonaError) as info:
        hub.fetch("svd-xt-1-1")
    message = str(info.value)
    for part in ("svd-xt-1-1", "HF_HUB_OFFLINE", "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
                 "PERSONA_WEIGHTS_DIR", "gated", "licence"):  # fmt: skip
        assert part.lower() in message.lower(), part


@pytest.mark.usefixtures("offline")
def test_local_folder_laid_out_like_the_hub_repo_is_found(tmp_path, monkeypatch):
    entry = hub.get_entry("wan-vace-1.3b")
    lay_out(tmp_path / "weights" / entry.name, entry)
    monkeypatch.setenv(hub.WEIGHTS_DIR_VARIABLE, str(tmp_path / "weights"))
    assert hub.fetch(entry) == tmp_path / "weights" / entry.name
    lay_out(tmp_path / "elsewhere", entry)  # an explicit folder wins
    assert hub.fetch(entry, local_dir=tmp_path / "elsewhere") == tmp_path / "elsewhere"


@pytest.mark.usefixtures("offline")
def test_incomplete_local_folder_names_the_missing_files(tmp_path):
    entry = hub.get_entry("mimicmotion")
    (tmp_path / "mm").mkdir()
    with pytest.raises(PersonaError, match="incomplete: missing MimicMotion_1-1.pth") as info:
        hub.fetch(entry, local_dir=tmp_path / "mm")
    assert "research" in str(info.value)


def test_unknown_weight():
    with pytest.raises(PersonaError, match="Unknown weight"):
        hub.fetch("dall-e")


# --- the Space's README front matter agrees with the registry ---------------------------------


def readme_front_matter() -> dict:
    """The YAML header of README.md (the Space's configuration)."""
    import yaml  # pyyaml: a dependency of huggingface_hub and gradio

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert text.startswith("---\n"), "README.md must start with the Space's YAML header"
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_readme_models_and_preloads_agree_with_the_registry():
    """`models` names every registry repository; `preload_from_hub` entries
    (`repo [file1,file2 [commit]]`, the Spaces config reference) are exactly the permissive,
    ungated registry entries, with files the registry downloads and its revision."""
    config = readme_front_matter()
    by_repo = {entry.repo: entry for entry in hub.REGISTRY.values()}
    assert set(config["models"]) == set(by_repo), config["models"]
    preloaded = set()
    for line in config["preload_from_hub"]:
        repo, *rest = line.split()
        assert repo in by_repo, f"{repo} is preloaded but not in persona.hub.REGISTRY"
        entry = by_repo[repo]
        assert hub.preloadable(entry) and entry.licence in hub.PERMISSIVE_LICENCES and not entry.gated, entry
        assert len(rest) <= 2, line
        if rest:  # listed files: each one the registry downloads, and every required one
            files = rest[0].split(",")
            for name in files:
                assert any(fnmatch.fnmatch(name, p) for p in entry.allow_patterns), (line, name)
            assert set(entry.required) <= set(files), (line, entry.required)
        # A pinned entry is preloaded at its revision (which needs the files listed); an
        # unpinned one at the repository's default branch, as `fetch` reads it.
        commit = rest[1] if len(rest) == 2 else None
        assert commit == (entry.revision if entry.pinned else None), (line, entry.revision)
        preloaded.add(entry.name)
    assert preloaded == {e.name for e in hub.REGISTRY.values() if hub.preloadable(e)}
    assert preloaded == {"wan-vace-1.3b", "depth-anything-v2-small"}  # Apache-2.0 and ungated; MimicMotion and SVD are not permissive
