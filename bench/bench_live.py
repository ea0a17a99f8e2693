"""Live throughput (issue 17): `fathom live` beside generate.stream offline and StreamDiffusion.

Run: python bench/bench_live.py [--seconds 20] [--frames 24] [--size 256]
     [--json out/bench/live.json] [--model out/bench/model]
GPU: python bench/bench_live.py --gpu   (SD-1.5's real layout, random weights, 512², CUDA;
     the first run builds the 3.4 GB model into out/bench/model_sd15_real, a minute or two)

One process, one clip: a synthetic 30 frames/s clip at the benchmark size. Every row runs the
same stream settings: one stage (t_index_list 35 of 50 LCM steps, one UNet pass a frame),
guidance 1.2 with RCFG "self", the tiny autoencoder, similarity filter off.

- live: `LiveSession` (what `fathom live` runs) of live.file (looping, at the clip's own 30
  frames/s; 240 on a GPU) → generate.stream → live.record for ``--seconds`` after the
  warm-up; frames/s out and capture-to-output latency from its report. The source outpaces
  the model, so frames drop and the model thread is never idle: its frames/s is the
  stream's throughput.
- offline: the same graph rendered once (video.load → generate.stream) over ``--frames``
  frames, timed on the node after a first run has loaded the model.
- StreamDiffusion 0.1.1 (pip install --no-deps streamdiffusion==0.1.1): its ``StreamDiffusion``
  wrapper on the same pipeline and the same decoded frames (CUDA-event timing made inert on CPU).

Every row's model work runs on a worker thread (the live model thread is one; see ``main``).
Each of ours also runs with Clockwork (period 3, reusing the previous frame's core features)
and ToMe 0.5, the accelerations generate.stream offers. Printed: frames/s, ratios, latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_generate import inert_cuda_timing

from fathom.engine.context import RunOptions
from fathom.engine.diffusion.minimodels import BENCH, ModelSpec, load_pipeline, save_model
from fathom.engine.executor import Executor
from fathom.engine.graphfile import loads
from fathom.engine.live import LiveOptions, LiveSession
from fathom.engine.live.session import LiveCache

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "bench"
PROMPT = "a watercolor painting of a harbour"
STAGES, STEPS, GUIDANCE = (35,), 50, 1.2
ACCEL = {"clock_period": 3, "clock_reuse": "frame", "token_merge": 0.5}

#: Stable Diffusion 1.5's own layout (860 M UNet parameters, ViT-L text encoder), random
#: weights: for speed on a GPU, where the mini model would not load it.
SD15_REAL = ModelSpec(
    unet_channels=(320, 640, 1280, 1280),
    unet_layers=2,
    attention_head_dim=8,
    cross_dim=768,
    vae_channels=(128, 256, 512, 512),
    vae_layers=2,
    vae_groups=32,
    tiny_vae_channels=64,
    text_layers=12,
    text_heads=12,
    sample_size=64,
)


def make_clip(path: Path, n: int, size: int, fps: int = 30) -> Path:
    """Drifting colour waves, H.264 at high quality."""
    import av

    yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    with av.open(str(path), mode="w") as out:
        v: Any = out.add_stream("libx264", rate=Fraction(fps))
        v.width = v.height = size
        v.pix_fmt, v.options = "yuv420p", {"crf": "12"}
        for i in range(n):
            ph = 0.12 * i
            r = np.sin(5 * xx + ph) * np.cos(3 * yy - 0.5 * ph)
            g = np.sin(4 * (xx + yy) + 0.7 * ph)
            b = np.cos(6 * yy + ph) * np.sin(2 * xx - 0.3 * ph)
            rgb = ((np.stack([r, g, b], -1) * 0.4 + 0.5) * 255).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return path


def graph_doc(clip: Path, model: Path, size: int, live: bool, accel: dict[str, Any]) -> str:
    gen = {
        "model": str(model),
        "prompt": PROMPT,
        "t_index_list": ",".join(map(str, STAGES)),
        "num_inference_steps": STEPS,
        "guidance": GUIDANCE,
        "cfg_type": "self",
        "seed": 2,
        "width": size,
        "height": size,
        **accel,
    }
    src = (
        {"id": "src", "type": "live.file", "params": {"path": str(clip), "loop": True}}
        if live
        else {"id": "src", "type": "video.load", "params": {"path": str(clip)}}
    )
    nodes = [src, {"id": "gen", "type": "generate.stream", "params": gen}]
    edges = [{"from": ["src", "video"], "to": ["gen", "frames"]}]
    if live:
        nodes.append({"id": "rec", "type": "live.record", "params": {"path": "live.mp4"}})
        edges.append({"from": ["gen", "video"], "to": ["rec", "video"]})
    doc = {"format": "fathom.graph", "version": 1, "nodes": nodes, "edges": edges}
    return json.dumps(doc)


def run_offline(ex: Executor, text: str, n: int, opts: RunOptions) -> dict[str, Any]:
    """The node's seconds on a second run (the first loads the model)."""
    secs = []
    for _ in range(2):
        ex.cache.clear()
        res = ex.run(loads(text), targets=["gen"], options=opts)
        assert res.ok, [r.error for r in res.records.values() if r.error]
        secs.append(res.records["gen"].seconds)
    return {"fps": n / secs[-1], "s_per_frame": secs[-1] / n, "frames": n}


def run_live(ex: Executor, text: str, seconds: float, opts: RunOptions) -> dict[str, Any]:
    session = LiveSession(loads(text), LiveOptions(opts, seconds=seconds), executor=ex)
    session.start()
    session.wait()
    r = session.stop().as_dict()
    assert not r["errors"], r["errors"]
    return {k: r[k] for k in ("fps", "frames_in", "frames_out", "frames_dropped", "latency_ms")} | {
        "warmup_s": r["warmup_s"],
        "s_per_frame": 1 / r["fps"] if r["fps"] else float("inf"),
    }


def decoded(clip: Path, n: int, device: str) -> list[torch.Tensor]:
    import av

    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)][:n]
    return [torch.from_numpy(f).permute(2, 0, 1).float().div(255).to(device) for f in frames]


def run_peer(model: Path, clip: Path, n: int, size: int, device: str) -> dict[str, Any]:
    from diffusers import AutoencoderTiny

    if device == "cpu":
        inert_cuda_timing()
    from streamdiffusion import StreamDiffusion

    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = load_pipeline(model).to(device, dtype)
    peer = StreamDiffusion(
        pipe,
        t_index_list=list(STAGES),
        torch_dtype=dtype,
        width=size,
        height=size,
        cfg_type="self",
    )
    peer.vae = AutoencoderTiny.from_pretrained(str(model / "vae_tiny")).to(device, dtype).eval()
    peer.prepare(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE)
    frames = decoded(clip, n + 3, device)
    for f in frames[:3]:
        peer(f.to(dtype))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for f in frames[3:]:
        peer(f.to(dtype))
    sync()
    secs = time.perf_counter() - t0
    return {"fps": n / secs, "s_per_frame": secs / n, "frames": n}


def markdown(res: dict[str, Any]) -> str:
    peer = res["rows"]["StreamDiffusion 0.1.1"]["fps"]
    lines = [
        "| config | frames/s | s/frame | × offline (same accel) | × StreamDiffusion 0.1.1 "
        "| latency median / p95 (ms) | frames in / out / dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res["rows"].items():
        off = res["rows"].get(name.replace("live", "offline generate.stream"), {}).get("fps")
        x_off = f"{r['fps'] / off:.2f}" if name.startswith("live") and off else "–"
        lat = r.get("latency_ms")
        lat_s = f"{lat['median']:.0f} / {lat['p95']:.0f}" if lat else "–"
        counts = (
            f"{r['frames_in']} / {r['frames_out']} / {r['frames_dropped']}"
            if "frames_in" in r
            else f"{r['frames']} frames"
        )
        lines.append(
            f"| {name} | {r['fps']:.2f} | {r['s_per_frame']:.3f} | {x_off} | "
            f"{r['fps'] / peer:.2f} | {lat_s} | {counts} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Every row's model work runs on a worker thread, as the live session's model thread
    does: under heavy load from other processes, torch's CPU kernels called from the main
    thread were measured 2–3× slower here than the same kernels on a worker thread, which
    would flatter live against offline and the peer."""
    box: list[BaseException] = []

    def body() -> None:
        try:
            run_rows()
        except BaseException as exc:  # noqa: BLE001 - raised again on the main thread
            box.append(exc)

    worker = threading.Thread(target=body, name="bench-live")
    worker.start()
    worker.join()
    if box:
        raise box[0]


def run_rows() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="SD-1.5 layout at 512² on CUDA")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", type=int, default=0, help="default 256 (CPU) or 512 (--gpu)")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for every row (default 1: on this shared 2-core machine two "
        "threads ran several times slower than one while other processes were busy)",
    )
    args = ap.parse_args()
    device = "cuda" if args.gpu else "cpu"
    size = args.size or (512 if args.gpu else 256)
    model = args.model or OUT / ("model_sd15_real" if args.gpu else "model")
    out = OUT / ("live_gpu" if args.gpu else "live")
    out.mkdir(parents=True, exist_ok=True)
    if not (model / "model_index.json").exists():
        print(f"building the benchmark model into {model}")
        save_model(model, SD15_REAL if args.gpu else BENCH)
    if not args.gpu:
        torch.set_num_threads(args.threads)  # the live model thread takes the same number
    load_start = os.getloadavg()
    n = args.frames + 3  # 3 warm-up frames for the peer
    clip = make_clip(out / "clip.mp4", n, size, fps=240 if args.gpu else 30)
    opts = RunOptions(output_dir=out, device=device)
    ex = Executor(cache=LiveCache(256 * 1024**2))
    rows: dict[str, Any] = {}
    for label, accel in (("", {}), (" + clockwork p3 + ToMe 0.5", ACCEL)):
        off = graph_doc(clip, model, size, False, accel)
        rows[f"offline generate.stream{label}"] = run_offline(ex, off, n, opts)
        live = graph_doc(clip, model, size, True, accel)
        rows[f"live{label}"] = run_live(ex, live, args.seconds, opts)
        print(f"offline{label}: {rows[f'offline generate.stream{label}']}")
        print(f"live{label}: {rows[f'live{label}']}")
    rows["StreamDiffusion 0.1.1"] = run_peer(model, clip, args.frames, size, device)
    print(f"StreamDiffusion 0.1.1: {rows['StreamDiffusion 0.1.1']['fps']:.2f} fps")
    import diffusers

    res = {
        "size": size,
        "device": torch.cuda.get_device_name() if args.gpu else platform.processor() or "cpu",
        "stages": list(STAGES),
        "rows": rows,
        "env": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_avg_start": load_start,
            "load_avg_end": os.getloadavg(),
            "machine": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }
    path = args.json or out / "live.json"
    path.write_text(json.dumps(res, indent=1))
    sys.stdout.write(markdown(res))
    if args.gpu:
        sys.stdout.write(
            "published: StreamDiffusion paper (Kodaira et al. 2023), 91-106 frames/s on one "
            "RTX 4090 (SD-turbo, one step, TensorRT)\n"
        )
    sys.stdout.write(f"load average start {load_start}, end {os.getloadavg()}\n")


if __name__ == "__main__":
    main()
