"""One registry of every optional weight, and the one way to get it.

Everything in PERSONA runs without these (the embedded default). With them, the training
videos come from a pose-guided video diffusion model instead of the weight-free
synthesizer. Each `HubEntry` names the Hub repository, the pinned revision, the files we
need, the licence and whether the repository is gated, so that the UI and the avatar
manifest can state what was used.

Where the files come from, in order (`fetch`):
1. a local folder laid out like the Hub repository: the `local_dir` argument, else
   `$PERSONA_WEIGHTS_DIR/<entry name>` when that folder exists (for machines that cannot
   reach the Hub: copy the repository's files there);
2. the Hugging Face cache / download (`huggingface_hub.snapshot_download` with the pinned
   revision and only the files listed), under `HF_HOME` (see `persona.cache`). With
   `HF_HUB_OFFLINE=1` only the cache is read.
When neither has the files, `fetch` raises `PersonaError` saying what is missing, how to
get it, and the licence / gating, never a raw traceback.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from persona.errors import PersonaError

log = logging.getLogger(__name__)

WEIGHTS_DIR_VARIABLE = "PERSONA_WEIGHTS_DIR"
UNPINNED = "main"  # used only where no commit could be looked up; see each entry's comment


@dataclass(frozen=True)
class HubEntry:
    """One optional weight set.

    name: registry key, also the sub-folder of `$PERSONA_WEIGHTS_DIR`.
    repo: Hub repository id. revision: a 40-hex commit, or `UNPINNED` ("main").
    allow_patterns: the repository files we download (glob patterns, as snapshot_download).
    required: files that must exist in a usable copy (paths relative to the repo root).
    licence: the licence users accept by using it. gated: the Hub asks for access + a token.
    size_gb: download size in GB (10^9 bytes) of the allowed files, approximate.
    """

    name: str
    repo: str
    revision: str
    allow_patterns: tuple[str, ...]
    required: tuple[str, ...]
    licence: str
    gated: bool
    size_gb: float
    purpose: str

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    @property
    def pinned(self) -> bool:
        return len(self.revision) == 40 and all(c in "0123456789abcdef" for c in self.revision)

    def describe(self) -> dict[str, object]:
        """What the avatar manifest and the UI show about this weight."""
        return {
            "name": self.name, "repo": self.repo, "revision": self.revision, "licence": self.licence,
            "gated": self.gated, "url": self.url,
        }  # fmt: skip


_SVD_FILES = (
    "model_index.json",
    "feature_extractor/preprocessor_config.json",
    "image_encoder/config.json",
    "image_encoder/model.fp16.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "scheduler/scheduler_config.json",
    "unet/config.json",  # the architecture only: MimicMotion replaces every UNet weight
)
_WAN_VACE_REQUIRED = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "tokenizer/tokenizer_config.json",
    "transformer/config.json",
    "vae/config.json",
)

REGISTRY: dict[str, HubEntry] = {
    e.name: e
    for e in (
        HubEntry(
            name="mimicmotion",
            repo="tencent/MimicMotion",
            # Commit of the tree holding MimicMotion_1-1.pth, LICENSE and NOTICE (Hub page
            # tencent/MimicMotion/tree/5bc182b...).
            revision="5bc182bc6c3922450a4f8d9b9fc94810d9a67f45",
            allow_patterns=("MimicMotion_1-1.pth", "LICENSE", "NOTICE", "README.md"),
            required=("MimicMotion_1-1.pth",),
            licence="other: academic/research/education use only (Tencent MimicMotion LICENSE + NOTICE), "
            "plus the Stable Video Diffusion 1.1 community licence",
            gated=False,
            size_gb=3.05,
            purpose="MimicMotion 1.1 UNet + PoseNet (fp16 state dict; read with torch.load(weights_only=True))",
        ),
        HubEntry(
            name="mimicmotion-safetensors",
            repo="Kijai/MimicMotion_pruned",
            revision=UNPINNED,  # no full commit id found offline; pin it on first download
            allow_patterns=("MimicMotion-fp16.safetensors",),
            required=("MimicMotion-fp16.safetensors",),
            licence="tagged apache-2.0, but the Tencent MimicMotion research-only terms still apply",
            gated=False,
            size_gb=3.05,
            purpose="the same MimicMotion weights as safetensors (no pickle)",
        ),
        HubEntry(
            name="svd-xt-1-1",
            repo="stabilityai/stable-video-diffusion-img2vid-xt-1-1",
            revision=UNPINNED,  # gated repo: its commit ids were not readable from here
            allow_patterns=_SVD_FILES,
            required=_SVD_FILES,
            licence="Stable Video Diffusion 1.1 non-commercial community licence (stable-video-diffusion-1-1-nc-community)",
            gated=True,
            size_gb=1.46,
            purpose="VAE, CLIP image encoder, scheduler and UNet config that MimicMotion builds on",
        ),
        HubEntry(
            name="wan-vace-1.3b",
            repo="Wan-AI/Wan2.1-VACE-1.3B-diffusers",
            revision=UNPINNED,  # no full commit id found offline; pin it on first download
            allow_patterns=("model_index.json", "*/*.json", "*/*.safetensors", "tokenizer/*"),
            required=_WAN_VACE_REQUIRED,
            licence="Apache-2.0",
            gated=False,
            size_gb=19.0,
            purpose="Wan2.1-VACE-1.3B (diffusers WanVACEPipeline): pose-controlled video, reference image",
        ),
        HubEntry(
            name="depth-anything-v2-small",
            repo="depth-anything/Depth-Anything-V2-Small-hf",
            revision=UNPINNED,  # no full commit id found offline; pin it on first download
            allow_patterns=("config.json", "model.safetensors"),
            required=("config.json", "model.safetensors"),
            licence="Apache-2.0",  # the Small model only: Base, Large and Giant are CC-BY-NC-4.0
            gated=False,
            size_gb=0.1,
            purpose="relative depth of the photo and the diffusion generators' frames (persona.perceive.depth)",
        ),
    )
}


# Licences under which a weight may be downloaded into the Space at build time and used by
# anyone (README front matter `preload_from_hub`); the others are fetched only when asked for.
PERMISSIVE_LICENCES = ("Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause")


def preloadable(entry: HubEntry) -> bool:
    """A permissive licence and no gate: the Space preloads it (README `preload_from_hub`,
    checked against this registry by tests/test_hub.py)."""
    return entry.licence in PERMISSIVE_LICENCES and not entry.gated


def get_entry(name: str) -> HubEntry:
    if name not in REGISTRY:
        raise PersonaError(f"Unknown weight '{name}'. Known weights: {', '.join(REGISTRY)}.")
    return REGISTRY[name]


def missing_files(entry: HubEntry, folder: Path) -> list[str]:
    """The entry's required files that `folder` (laid out like the Hub repo) lacks; a
    required name may be a glob pattern, satisfied by any match."""
    missing = []
    for name in entry.required:
        if any(ch in name for ch in "*?["):
            parent = (folder / name).parent
            found = parent.is_dir() and any(fnmatch.fnmatch(p.name, Path(name).name) for p in parent.iterdir())
        else:
            found = (folder / name).is_file()
        if not found:
            missing.append(name)
    return missing


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _how_to_get(entry: HubEntry) -> str:
    access = (
        f" The repository is gated: request access on {entry.url} and log in (`hf auth login` or HF_TOKEN)."
        if entry.gated else ""
    )  # fmt: skip
    return (
        f"Get it with network access to the Hub ({entry.url}, revision {entry.revision}, about {entry.size_gb:g} GB),"
        f" or copy the repository's files ({', '.join(entry.required)}) into "
        f"${WEIGHTS_DIR_VARIABLE}/{entry.name}/.{access} Licence: {entry.licence}."
    )


def fetch(entry: HubEntry | str, local_dir: str | Path | None = None, token: str | bool | None = None) -> Path:
    """The folder holding `entry`'s files, laid out like the Hub repository.

    local_dir: a folder to use instead of the Hub (it must hold the required files).
    Raises PersonaError when the files cannot be had (offline and not cached, gated without
    access, unknown revision, incomplete local copy, no network)."""
    entry = get_entry(entry) if isinstance(entry, str) else entry
    # 1. A local copy laid out like the repository
    folder = Path(local_dir) if local_dir is not None else None
    if folder is None and os.environ.get(WEIGHTS_DIR_VARIABLE):
        candidate = Path(os.environ[WEIGHTS_DIR_VARIABLE]) / entry.name
        folder = candidate if candidate.is_dir() else None
    if folder is not None:
        missing = missing_files(entry, folder) if folder.is_dir() else list(entry.required)
        if missing:
            raise PersonaError(
                f"The local copy of '{entry.name}' in {folder} is incomplete: missing {', '.join(missing)}. "
                + _how_to_get(entry)
            )
        log.info("hub: '%s' from the local folder %s", entry.name, folder)
        return folder
    # 2. The Hugging Face cache, downloading what is missing unless offline
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as err:  # the Space always has it; a bare local install may not
        raise PersonaError(f"Downloading '{entry.name}' needs the huggingface_hub package. " + _how_to_get(entry)) from err
    offline = _offline()
    try:
        path = Path(
            snapshot_download(
                entry.repo, revision=entry.revision, allow_patterns=list(entry.allow_patterns),
                local_files_only=offline, token=token,
            )
        )  # fmt: skip
    except GatedRepoError as err:
        raise PersonaError(f"'{entry.name}' ({entry.repo}) is gated and this account has no access. " + _how_to_get(entry)) from err
    except RevisionNotFoundError as err:
        raise PersonaError(f"'{entry.name}': revision {entry.revision} is not in {entry.repo}. " + _how_to_get(entry)) from err
    except RepositoryNotFoundError as err:
        raise PersonaError(f"'{entry.name}': the repository {entry.repo} was not found or needs a token. " + _how_to_get(entry)) from err
    except LocalEntryNotFoundError as err:
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub could not be reached"
        raise PersonaError(f"The weights '{entry.name}' are not in the local cache and {why}. " + _how_to_get(entry)) from err
    except (HfHubHTTPError, OSError, ValueError) as err:
        raise PersonaError(f"Could not download '{entry.name}' from {entry.repo}: {err}. " + _how_to_get(entry)) from err
    missing = missing_files(entry, path)
    if missing:
        raise PersonaError(f"The download of '{entry.name}' lacks {', '.join(missing)}. " + _how_to_get(entry))
    return path
