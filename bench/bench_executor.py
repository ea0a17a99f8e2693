"""Executor overhead on 200 cheap nodes (issue 2): first run, unchanged re-run, one changed param.

Run: python bench/bench_executor.py [--reps 20] [--json results.json] [--profile]

The unchanged re-run is timed twice: on the same Graph object, and on a fresh ``Graph.copy()``
of it (what the editor hands the executor for every run), so the kept plan is shown to be found
by content, not by object identity.

Two graph shapes, a 200-node chain and a 10 x 20 layered DAG, built through ``engine.graph.Graph``
and run by ``Executor`` on a registry of the built-in nodes. The baseline, measured in the same run
on the same graph, calls the same nodes' ``run`` methods directly in a Python loop, in a
precomputed order, with inputs wired from a dict: whatever the executor adds on top is overhead.
Every timing is the median of ``--reps`` repetitions (min and max shown) after one untimed warm-up.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import os
import platform
import pstats
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fathom.engine.cache import OutputCache
from fathom.engine.context import NodeContext, RunOptions
from fathom.engine.device import DeviceInfo
from fathom.engine.executor import Executor
from fathom.engine.graph import Graph
from fathom.engine.registry import Registry

N_NODES = 200
LAYERS, WIDTH = 10, 20
TARGET_RERUN_MS = 10.0
#: An unchanged re-run reuses the kept plan and keys: only cache look-ups and pre-flight checks.
TARGET_KEPT_PLAN_MS = 1.0
TARGET_PER_NODE_US = 100.0


# ---- graphs ----------------------------------------------------------------------------------


def build_chain(n: int = N_NODES) -> tuple[Graph, str, str]:
    """Source, then alternating math.scale / math.binary(x + b); returns (graph, middle, param)."""
    g = Graph()
    g.add_node("math.binary", "n000", {"op": "add", "a": 1.0, "b": 0.0})
    for i in range(1, n):
        nid = f"n{i:03d}"
        if i % 2:
            g.add_node("math.scale", nid, {"factor": 1.001, "offset": 0.5})
            g.connect(f"n{i - 1:03d}", "value", nid, "value")
        else:
            g.add_node("math.binary", nid, {"op": "add", "b": 0.25})
            g.connect(f"n{i - 1:03d}", "value", nid, "x")
    return g, f"n{n // 2:03d}", "b"


def build_dag(seed: int, layers: int = LAYERS, width: int = WIDTH) -> tuple[Graph, str, str]:
    """Layer 0: math.binary sources. Later layers alternate math.sum (2-3 random parents on its
    multi input) and math.binary (x from one random parent, op with a literal b). Every node
    feeds the next layer, so no branch dangles. Returns (graph, a binary node in the middle layer,
    its parameter to change)."""
    rng = random.Random(seed)
    g = Graph()
    ids = [[f"L{layer}_{j:02d}" for j in range(width)] for layer in range(layers)]
    for j, nid in enumerate(ids[0]):
        g.add_node("math.binary", nid, {"op": "add", "a": float(j), "b": rng.random()})
    for layer in range(1, layers):
        prev = ids[layer - 1]
        fed: set[str] = set()
        for j, nid in enumerate(ids[layer]):
            if j % 2 == 0:
                g.add_node("math.sum", nid)
                for src in rng.sample(prev, rng.choice((2, 3))):
                    g.connect(src, "value", nid, "values", multi=True)
                    fed.add(src)
            else:
                op = rng.choice(("add", "subtract", "min", "max"))
                g.add_node("math.binary", nid, {"op": op, "b": rng.random()})
                src = rng.choice(prev)
                g.connect(src, "value", nid, "x")
                fed.add(src)
        sums = ids[layer][0::2]
        for src in prev:
            if src not in fed:
                g.connect(src, "value", rng.choice(sums), "values", multi=True)
    return g, ids[layers // 2][1], "b"


def descendants(g: Graph, node: str) -> set[str]:
    """The node and everything downstream of it, from the edge list alone (not the executor)."""
    out_adj: dict[str, list[str]] = {}
    for e in g.edges:
        out_adj.setdefault(e.src, []).append(e.dst)
    seen, todo = set(), [node]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(out_adj.get(n, ()))
    return seen


# ---- the baseline: the same run methods, called directly ---------------------------------------

Step = tuple[str, Any, dict[str, Any], list[tuple[str, bool, list[tuple[str, str]]]]]


def direct_steps(g: Graph, registry: Registry) -> list[Step]:
    """Everything a plain loop needs, worked out once: order, node objects, params, wiring."""
    indeg = {n: 0 for n in g.nodes}
    for e in g.edges:
        indeg[e.dst] += 1
    order, ready = [], [n for n, d in indeg.items() if d == 0]
    while ready:
        n = ready.pop()
        order.append(n)
        for e in g.edges:
            if e.src == n:
                indeg[e.dst] -= 1
                if indeg[e.dst] == 0:
                    ready.append(e.dst)
    steps: list[Step] = []
    for nid in order:
        inst = g.nodes[nid]
        cls = registry.get(inst.type)
        params = {p.name: inst.params.get(p.name, p.default) for p in cls.params}
        wiring = []
        for inp in cls.inputs:
            srcs = [(e.src, e.src_port) for e in g.edges if e.dst == nid and e.dst_port == inp.name]
            if srcs:
                wiring.append((inp.name, inp.multi, srcs))
        steps.append((nid, cls(), params, wiring))
    return steps


def run_direct(steps: list[Step], ctx: NodeContext) -> dict[str, dict[str, Any]]:
    values: dict[str, dict[str, Any]] = {}
    for nid, node, params, wiring in steps:
        kwargs = dict(params)
        for port, multi, srcs in wiring:
            if multi:
                kwargs[port] = [values[s][p] for s, p in srcs]
            else:
                kwargs[port] = values[srcs[0][0]][srcs[0][1]]
        values[nid] = node.run(ctx, **kwargs)
    return values


# ---- timing ----------------------------------------------------------------------------------


#: Rows timed per repetition and worker count, in the order they run.
SCENARIOS = ("first", "unchanged", "copy", "changed")


def stats_ms(samples: list[float]) -> dict[str, float]:
    ms = [s * 1e3 for s in samples]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms)}


def timed_run(ex: Executor, g: Graph, opts: RunOptions) -> dict[str, Any]:
    """Wall time (perf_counter) of plan() and run(), plus the process's CPU time for both."""
    c0, t0 = time.process_time(), time.perf_counter()
    plan = ex.plan(g, options=opts)
    t1 = time.perf_counter()
    result = ex.run(plan)
    t2, c2 = time.perf_counter(), time.process_time()
    if not result.ok:
        raise RuntimeError(f"benchmark graph failed: {result.failed}")
    return {
        "plan": t1 - t0,
        "run": t2 - t1,
        "total": t2 - t0,
        "cpu": c2 - c0,
        "executed": len(result.executed),
        "cached": len(result.cached),
        "result": result,
    }


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    executed = {s["executed"] for s in samples}
    if len(executed) != 1:
        raise RuntimeError(f"executed count varies between repetitions: {sorted(executed)}")
    return {
        "plan_ms": stats_ms([s["plan"] for s in samples]),
        "run_ms": stats_ms([s["run"] for s in samples]),
        "total_ms": stats_ms([s["total"] for s in samples]),
        "cpu_ms": stats_ms([s["cpu"] for s in samples]),
        "executed": executed.pop(),
    }


def bench_shape(
    name: str, g: Graph, middle: str, param: str, registry: Registry, reps: int, workers: list[int]
) -> dict[str, Any]:
    """Every scenario once per repetition, interleaved, so a noisy spell on a shared machine
    lands on all rows alike instead of on whichever block it happens to hit."""
    opts = RunOptions(device="cpu")
    ctx = NodeContext("direct", opts, DeviceInfo("cpu"))
    steps = direct_steps(g, registry)
    reference = run_direct(steps, ctx)
    expected = descendants(g, middle)
    base = g.nodes[middle].params[param]
    # One executor per worker count keeps its cache for the re-run rows.
    warm = {w: Executor(registry, cache=OutputCache(), max_workers=w) for w in workers}
    samples: dict[str, list[dict[str, Any]]] = {"direct": []}
    for w in workers:
        samples |= {f"{scen}/{w}": [] for scen in SCENARIOS}
    for i in range(-1, reps):  # i == -1: untimed warm-up round
        row: dict[str, dict[str, Any]] = {}
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        run_direct(steps, ctx)
        row["direct"] = {
            "total": time.perf_counter() - t0,
            "cpu": time.process_time() - c0,
            "executed": len(steps),
        }
        for w in workers:
            gc.collect()
            first = timed_run(Executor(registry, cache=OutputCache(), max_workers=w), g, opts)
            for nid, outs in reference.items():  # the executor computes what the loop does
                if first["result"].values[nid]["value"] != outs["value"]:
                    raise RuntimeError(f"{name}: executor and direct loop disagree at {nid}")
            row[f"first/{w}"] = first
            if i == -1:
                timed_run(warm[w], g, opts)
            gc.collect()
            row[f"unchanged/{w}"] = timed_run(warm[w], g, opts)
            snapshot = g.copy()  # made outside the timing, as the editor makes it beforehand
            gc.collect()
            row[f"copy/{w}"] = timed_run(warm[w], snapshot, opts)
            # A value no earlier repetition used, so the changed node's key is never cached;
            # putting it back afterwards leaves the unchanged graph fully cached for the next row.
            g.set_param(middle, param, base + (i + 2) * 1e-3)
            gc.collect()
            changed = timed_run(warm[w], g, opts)
            g.set_param(middle, param, base)
            if set(changed["result"].executed) != expected:
                raise RuntimeError(
                    f"{name}: re-executed nodes are not the changed node's "
                    f"descendants: {sorted(changed['result'].executed)}"
                )
            row[f"changed/{w}"] = changed
        if i >= 0:
            for key, sample in row.items():
                sample.pop("result", None)
                samples[key].append(sample)
    return {
        "nodes": len(g.nodes),
        "edges": len(g.edges),
        "changed_node": middle,
        "expected_downstream": len(expected),
        "direct_ms": stats_ms([s["total"] for s in samples["direct"]]),
        "direct_cpu_ms": stats_ms([s["cpu"] for s in samples["direct"]]),
        "runs": {
            f"workers={w}": {scen: summarise(samples[f"{scen}/{w}"]) for scen in SCENARIOS}
            for w in workers
        },
    }


def overhead(shape: dict[str, Any], workers: str = "workers=1") -> dict[str, float]:
    """Per-node overhead = (executor first run - direct calls) / nodes, with and without plan()."""
    first = shape["runs"][workers]["first"]
    direct = shape["direct_ms"]["median"]
    n = shape["nodes"]
    return {
        "per_node_us": (first["total_ms"]["median"] - direct) / n * 1e3,
        "per_node_run_only_us": (first["run_ms"]["median"] - direct) / n * 1e3,
        "per_node_cpu_us": (first["cpu_ms"]["median"] - shape["direct_cpu_ms"]["median"]) / n * 1e3,
    }


# ---- report ----------------------------------------------------------------------------------


def fmt(s: dict[str, float]) -> str:
    return f"{s['median']:8.2f} [{s['min']:.2f}-{s['max']:.2f}]"


def print_table(results: dict[str, Any]) -> None:
    head = (
        f"{'graph':6} {'scenario':22} {'workers':>7} {'plan ms':>9} {'run ms':>9} "
        f"{'total ms median [min-max]':>28} {'cpu ms':>7} {'executed':>8} {'expected':>8}"
    )
    print(head)
    print("-" * len(head))
    for name, shape in results["shapes"].items():
        d = shape["direct_ms"]
        print(
            f"{name:6} {'direct run() loop':22} {'-':>7} {'-':>9} {'-':>9} {fmt(d):>28} "
            f"{shape['direct_cpu_ms']['median']:7.2f} {shape['nodes']:>8} {'-':>8}"
        )
        for wkey, runs in shape["runs"].items():
            w = wkey.split("=")[1]
            for scen, label, exp in (
                ("first", "first run (cold cache)", shape["nodes"]),
                ("unchanged", "re-run, unchanged", 0),
                ("copy", "re-run, unchanged copy", 0),
                (
                    "changed",
                    f"re-run, {shape['changed_node']} changed",
                    shape["expected_downstream"],
                ),
            ):
                r = runs[scen]
                print(
                    f"{name:6} {label:22} {w:>7} {r['plan_ms']['median']:9.2f} "
                    f"{r['run_ms']['median']:9.2f} {fmt(r['total_ms']):>28} "
                    f"{r['cpu_ms']['median']:7.2f} {r['executed']:>8} {exp:>8}"
                )
    print()
    for line in results["verdicts"]:
        print(line)


def verdicts(results: dict[str, Any]) -> list[str]:
    out = []
    for name, shape in results["shapes"].items():
        ov = overhead(shape)
        shape["overhead"] = ov
        seq = shape["runs"]["workers=1"]
        rerun = seq["unchanged"]["total_ms"]
        ch = seq["changed"]
        ok_rerun = rerun["median"] < TARGET_RERUN_MS
        copy = seq["copy"]["total_ms"]
        ok_kept = max(rerun["median"], copy["median"]) <= TARGET_KEPT_PLAN_MS
        ok_node = ov["per_node_us"] < TARGET_PER_NODE_US
        ok_half = (
            ch["executed"] == shape["expected_downstream"] and ch["executed"] <= shape["nodes"] // 2
        )
        shape["targets_met"] = {
            "unchanged_rerun": ok_rerun,
            "unchanged_rerun_kept_plan": ok_kept,
            "per_node": ok_node,
            "downstream_only": ok_half,
        }
        out += [
            f"{name}: unchanged re-run {rerun['median']:.2f} ms (max {rerun['max']:.2f}) "
            f"vs target < {TARGET_RERUN_MS:g} ms: {'MET' if ok_rerun else 'NOT MET'}",
            f"{name}: unchanged re-run {rerun['median']:.2f} ms, of a copy "
            f"{copy['median']:.2f} ms, vs target <= {TARGET_KEPT_PLAN_MS:g} ms (kept plan): "
            f"{'MET' if ok_kept else 'NOT MET'}",
            f"{name}: per-node overhead {ov['per_node_us']:.1f} us incl. plan, "
            f"{ov['per_node_run_only_us']:.1f} us run only, {ov['per_node_cpu_us']:.1f} us "
            f"in CPU time, vs target < "
            f"{TARGET_PER_NODE_US:g} us: {'MET' if ok_node else 'NOT MET'}",
            f"{name}: one-parameter change re-executed {ch['executed']} of {shape['nodes']}, "
            f"descendants of {shape['changed_node']} = {shape['expected_downstream']}: "
            f"{'MET' if ok_half else 'NOT MET'}",
        ]
    dag = results["shapes"].get("dag", {}).get("runs", {})
    if "workers=2" in dag:
        seq, par = dag["workers=1"]["first"], dag["workers=2"]["first"]
        out.append(
            f"dag: first run with 2 workers {par['total_ms']['median']:.2f} ms vs "
            f"sequential {seq['total_ms']['median']:.2f} ms "
            f"(x{par['total_ms']['median'] / seq['total_ms']['median']:.2f})"
        )
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "processor": cpu_model() or platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "loadavg_1min_before": os.getloadavg()[0],
    }


def profile(g: Graph, registry: Registry, label: str, warm: bool, reps: int = 20) -> None:
    """cProfile of ``reps`` first runs (cold cache) or unchanged re-runs: top functions by own
    time, then the engine's by cumulative time (where a run's time goes: plan(), validate,
    compute_keys...). cProfile inflates small calls, so read it for ranking and shares, the
    table for absolute time."""
    opts = RunOptions(device="cpu")
    prof = cProfile.Profile()
    for _ in range(reps):
        ex = Executor(registry, cache=OutputCache())
        if warm:
            timed_run(ex, g, opts)
        prof.enable()
        timed_run(ex, g, opts)
        prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(20)
    buf.write("--- engine functions by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats(r"engine[/\\]", 15)
    print(f"\n=== cProfile: {label} ===")
    print(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20, help="timed repetitions per row (median)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the DAG's random edges")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--profile", action="store_true", help="print cProfile of the DAG runs")
    args = ap.parse_args(argv)

    registry = Registry()
    registry.load_builtin()
    chain = build_chain()
    dag = build_dag(args.seed)
    results: dict[str, Any] = {
        "machine": machine(),
        "reps": args.reps,
        "seed": args.seed,
        "command": "python bench/bench_executor.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "shapes": {},
    }
    m = results["machine"]
    print(
        f"python {m['python']} on {m['platform']}, {m['processor']}, {m['cpu_count']} CPUs, "
        f"{m['date']}, {args.reps} reps\n"
    )
    results["shapes"]["chain"] = bench_shape("chain", *chain, registry, args.reps, [1])
    results["shapes"]["dag"] = bench_shape("dag", *dag, registry, args.reps, [1, 2])
    results["verdicts"] = verdicts(results)
    results["machine"]["loadavg_1min_after"] = os.getloadavg()[0]
    # Wall-clock numbers mean little while other work shares the cores: say so in the output.
    busy = max(m["loadavg_1min_before"], results["machine"]["loadavg_1min_after"])
    if busy > 1.0:
        results["verdicts"].append(
            f"WARNING: 1-min load average up to {busy:.2f} around this "
            "run: other processes shared the CPUs; absolute times are "
            "likely inflated, compare rows within this run"
        )
    print_table(results)
    if args.profile:
        profile(
            dag[0],
            registry,
            f"DAG first run (cold cache), sequential, x{args.reps}",
            warm=False,
            reps=args.reps,
        )
        profile(
            dag[0],
            registry,
            f"DAG unchanged re-run, sequential, x{args.reps}",
            warm=True,
            reps=args.reps,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
