"""Choose the body model by name: `load_body("anny")` (embedded, the default) or
`load_body("smplx", "path/to/SMPLX_NEUTRAL.npz")` (user-supplied files, see
`persona.body.smplx_model`)."""

from __future__ import annotations

import os

from persona.body.model import BodyModel
from persona.errors import PersonaError

BODY_MODELS = ("anny", "smplx")

# Licence of each body model, for the avatar manifest and the report.
BODY_LICENCES = {
    "anny": {"anny body model": "Apache-2.0"},
    "smplx": {"SMPL-X body model (user-supplied)": "SMPL-X Model License (non-commercial research use)"},
}


def load_body(name: str = "anny", model_path: str | os.PathLike | None = None, device: str = "cpu") -> BodyModel:
    """The body model `name` (built once per process). SMPL-X needs `model_path`, the model
    file or the folder holding it; anny takes none."""
    if name == "anny":
        if model_path:
            raise PersonaError("A body model file is only used with the SMPL-X body (--body smplx); anny ships with PERSONA.")
        from persona.body.anny_model import load_anny

        return load_anny(device)
    if name == "smplx":
        from persona.body.smplx_model import WHERE_TO_GET, load_smplx

        if not model_path:
            raise PersonaError(f"The SMPL-X body needs its model file: pass --body-model PATH. {WHERE_TO_GET}")
        return load_smplx(model_path, device)
    raise PersonaError(f"Unknown body model '{name}'. Choose one of: {', '.join(BODY_MODELS)}.")
