"""Gradio app: wires the UI to `persona.pipeline` (no math here).

A first, minimal UI for the foundation: upload a photo, pick a preset and a motion, get the
animation, the turntable, a splat preview and the files. The full Space (ZeroGPU, API,
re-animation, browser tests) is issue 7.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from persona.config import PRESETS
from persona.errors import PersonaError
from persona.generate.motions import DESCRIPTIONS
from persona.pipeline import MakeOptions, make_avatar

EXAMPLES = sorted(str(p) for p in (Path(__file__).parent / "examples").glob("person_*.*"))


def make(image_path: str | None, preset: str, motion: str, progress=gr.Progress()):
    if not image_path:
        raise gr.Error("Upload a photo of one person first.")
    folder = Path(tempfile.mkdtemp(prefix="persona-"))
    try:
        result = make_avatar(image_path, folder, MakeOptions(preset=preset, motion=motion), lambda f, m: progress(f, desc=m))
    except PersonaError as err:
        raise gr.Error(str(err)) from None
    files, report = result.files, result.report
    summary = (
        f"{report.num_gaussians} Gaussians in {report.seconds['total']:.0f} s · silhouette IoU "
        f"{report.metrics.silhouette_iou:.3f} · PSNR {report.metrics.psnr_in_mask_db:.1f} dB"
        + "".join(f"\n- {w}" for w in report.warnings)
    )
    return str(files.animation), str(files.turntable), str(files.ply), [str(files.package), str(files.ply), str(files.report)], summary


with gr.Blocks(title="PERSONA: one photo to an animatable 3D avatar") as demo:
    gr.Markdown("# PERSONA\nOne photo of a person → an animatable 3D Gaussian avatar.")
    with gr.Row():
        with gr.Column():
            image = gr.Image(type="filepath", label="Photo of one person (ideally head to feet)")
            preset = gr.Dropdown(list(PRESETS), value="preview", label="Preset")
            motion = gr.Dropdown(list(DESCRIPTIONS), value="walk", label="Motion")
            run = gr.Button("Make the avatar", variant="primary")
            gr.Examples(EXAMPLES, inputs=image)
        with gr.Column():
            animation = gr.Video(label="Animation")
            turntable = gr.Video(label="Turntable")
            splat = gr.Model3D(label="Gaussian splat (canonical pose)")
            files = gr.File(label="Avatar files", file_count="multiple")
            summary = gr.Markdown()
    run.click(make, [image, preset, motion], [animation, turntable, splat, files, summary], api_name="make_avatar")

if __name__ == "__main__":
    demo.queue().launch()
