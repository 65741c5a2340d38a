"""Load check of the Space (issue 10): 8 requests in flight against the launched app on the
preview preset, on this machine's CPU.

Four real /make_avatar calls (two photos, different motions and seeds) and four bad inputs
(a decompression bomb, a photo with no person, a corrupt package for /animate, a pickled
motion file) are submitted at once from 8 separate clients. Each must end with its own result
(the report's source, motion and seed are the request's; the files are complete) or the
project's message, and the app must answer afterwards. Writes
bench/results/load_app_cpu.json: machine, versions, date, the app's queue settings, and per
request its endpoint, outcome and seconds from submission to answer.

    python bench/load_app.py [--out bench/results/load_app_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
        "GRADIO_TEMP_DIR": str(folder / "gradio"), "GRADIO_EXAMPLES_CACHE": str(folder / "examples-cache"),
        "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    log = open(folder / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((folder / "app.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=5):
                return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError("the app did not start")


def bad_files(folder: Path) -> dict[str, Path]:
    import io
    import pickle
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    bomb = bytearray(buf.getvalue())
    bomb[16:24] = struct.pack(">II", 30000, 30000)  # claims 900 megapixels
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])))
    (folder / "bomb.png").write_bytes(bytes(bomb))
    Image.new("RGB", (640, 480), "white").save(folder / "wall.png")
    (folder / "avatar.persona").write_bytes(b"PK\x03\x04 not a zip")
    (folder / "motion.pkl").write_bytes(pickle.dumps({"poses": [0.0] * 10}))
    return {name: folder / name for name in ("bomb.png", "wall.png", "avatar.persona", "motion.pkl")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load_app_cpu.json")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="persona-load-"))
    bad = bad_files(work)
    photo_a, photo_b = EXAMPLES / "person_half.png", EXAMPLES / "person_full.jpg"
    if not photo_b.exists():
        photo_b = photo_a
    requests = [  # (id, endpoint, arguments, what must come back)
        ("make_walk_0", "/make_avatar", (handle_file(str(photo_a)), "preview", "walk", 0), {"motion": "walk", "seed": 0, "source": photo_a.name}),
        ("make_wave_1", "/make_avatar", (handle_file(str(photo_a)), "preview", "wave", 1), {"motion": "wave", "seed": 1, "source": photo_a.name}),
        ("make_jump_2", "/make_avatar", (handle_file(str(photo_b)), "preview", "jump", 2), {"motion": "jump", "seed": 2, "source": photo_b.name}),
        ("make_dance_3", "/make_avatar", (handle_file(str(photo_b)), "preview", "dance", 3), {"motion": "dance", "seed": 3, "source": photo_b.name}),
        ("bomb", "/make_avatar", (handle_file(str(bad["bomb.png"])), "preview", "walk", 0), "too large"),
        ("no_person", "/make_avatar", (handle_file(str(bad["wall.png"])), "preview", "walk", 0), "no person"),
        ("corrupt_package", "/animate", (handle_file(str(bad["avatar.persona"])), "jump", None, 384), "not a valid zip"),
        ("pickled_motion", "/make_avatar", (handle_file(str(photo_a)), "preview", "walk", 0, handle_file(str(bad["motion.pkl"]))), "pickle|invalid file type"),
    ]  # fmt: skip
    proc, url = launch(work)
    load_before = os.getloadavg()
    results = []
    try:
        clients = [Client(url, download_files=str(work / f"client_{r[0]}"), verbose=False) for r in requests]
        start = time.monotonic()
        jobs = [c.submit(*args, api_name=endpoint) for c, (_, endpoint, args, _) in zip(clients, requests)]
        finished: dict[int, float] = {}  # request -> seconds from submission to its answer
        while len(finished) < len(jobs) and time.monotonic() - start < 3600:
            for i, job in enumerate(jobs):
                if i not in finished and job.done():
                    finished[i] = round(time.monotonic() - start, 1)
            time.sleep(0.2)
        for i, (job, (name, endpoint, args, expected)) in enumerate(zip(jobs, requests)):
            try:
                value, outcome = job.result(timeout=60), "result"
            except Exception as err:
                value, outcome = str(err), "error"
            seconds = finished.get(i)
            entry = {"id": name, "endpoint": endpoint, "outcome": outcome, "seconds_from_submission": seconds}
            if isinstance(expected, str):
                entry["ok"] = outcome == "error" and any(e in value.lower() for e in expected.split("|")) and "Traceback" not in value
                entry["message"] = value
            else:
                ok = outcome == "result"
                if ok:
                    animation, turntable, ply, package, report = value
                    own = {k: report.get(k) for k in expected}
                    files = [Path(p) for p in (animation, turntable, ply, package)]
                    ok = own == expected and all(p.is_file() and p.stat().st_size > 0 for p in files)
                    entry.update(report_fields=own, stage_seconds=report["seconds"], gaussians=report["num_gaussians"])
                else:
                    entry["message"] = value
                entry["ok"] = ok
            results.append(entry)
            print(json.dumps(entry), flush=True)
        total = max(v for v in finished.values() if v is not None) if finished else None
        after = time.monotonic()
        answered = Client(url, verbose=False).view_api(print_info=False, return_format="dict") is not None
        after_s = round(time.monotonic() - after, 2)
        for c in clients:
            c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    import torch

    import persona

    out = {
        "what": "8 requests in flight against the launched app (preview preset): 4 real makes, 4 bad inputs",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
                    "load_average_1_5_15_min_at_start": [round(x, 2) for x in load_before],
                    "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
                    "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "versions": {**{name: metadata.version(name) for name in ("gradio", "gradio_client", "torch")}, "persona": persona.__version__},
        "app": {"concurrency": os.environ.get("PERSONA_CONCURRENCY", "1 (CPU default)"), "queue_max_size": os.environ.get("PERSONA_QUEUE_SIZE", "32")},
        "requests": results,
        "all_ok": all(r["ok"] for r in results),
        "seconds_until_all_answered": total,
        "app_answered_afterwards": answered,
        "seconds_to_answer_afterwards": after_s,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}: all_ok={out['all_ok']}, {total} s until all 8 answered")


if __name__ == "__main__":
    main()
