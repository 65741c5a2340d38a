"""PERSONA: one photo of a person to an animatable 3D Gaussian avatar.

Importing the package points library caches (anny, warp, Hugging Face, matplotlib, gradio)
at `~/.cache/persona` (see `persona.cache`), so nothing lands in the working directory.
"""

from persona.cache import configure_caches

configure_caches()

__version__ = "0.1.0"
