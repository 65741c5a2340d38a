"""`python -m persona bench cpu`: time every stage of a preset on the example photo.

Writes bench/results/cpu_<preset>.json with the machine, versions, date, per-stage seconds,
peak resident memory and the input-view metrics.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from persona.pipeline import MakeOptions, make_avatar


def machine() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_cpu_benchmark(image: Path, preset: str = "preview", out: Path | None = None) -> Path:
    out = out or Path("bench") / "results" / f"cpu_{preset}.json"
    with tempfile.TemporaryDirectory(prefix="persona-bench-") as folder:
        result = make_avatar(image, folder, MakeOptions(preset=preset, device="cpu"))
    report = result.report
    record = {
        "benchmark": f"cpu_{preset}",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "image": image.name,
        "machine": machine(),
        "versions": report.versions,
        "seconds": report.seconds,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
        "num_gaussians": report.num_gaussians,
        "metrics": asdict(report.metrics),
        "targets": {"total_seconds": 600, "peak_rss_gb": 6.0},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out
