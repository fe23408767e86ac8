"""Object-heavy namespaces and widgets: per-cell overhead of durable_nb vs the plain kernel,
dill.dump_session and Kishu (issue 13). Run by ``bench/snapshot.py --objects``.

Each namespace is built in a fresh real kernel per side; then trivial cells (``y = 1``),
mutating cells each followed by ``pickle.dumps`` of the touched variable timed in the same
kernel (interleaved, so a ratio compares neighbours, not one noisy sample), a SIGKILL and a
restore in a new kernel, checked against a digest taken before the kill.
"""

from __future__ import annotations

import statistics
import time

import snapshot as base  # bench/snapshot.py: the harness and the kernel driver

WORKLOADS = {
    "50k JSON rows": (
        "rows = [{'id': i, 'name': f'n{i}', 'tags': ['a', 'b'], 'ok': True}"
        " for i in range(50_000)]",
        "rows.append({'id': -1, 'name': 'x', 'tags': [], 'ok': False})",
        "rows",
    ),
    "10k class instances": (
        "class Obj:\n    def __init__(self, i):\n        self.i, self.tags = i, [i]\n"
        "objs = [Obj(i) for i in range(10_000)]",
        "objs[0].tags.append(1)",
        "objs",
    ),
    "100k-entry dict": ("d = {f'k{i}': f'v{i}' for i in range(100_000)}", "d['new'] = 1", "d"),
    "1M-element list": ("lst = list(range(1_000_000))", "lst.append(1)", "lst"),
    # What an operations notebook defines: dataclasses and helpers beside its records.
    "5 dataclasses, 10 functions": (
        "from dataclasses import dataclass, field\nfrom typing import Optional\n"
        + "".join(
            f"@dataclass\nclass Rec{i}:\n    name: str\n    size: Optional[int] = 0\n"
            "    tags: list[str] = field(default_factory=list)\n"
            "    def total(self):\n        return self.size or 0\n"
            for i in range(5)
        )
        + "".join(f"def helper{i}(x, scale={i}):\n    return [x, scale]\n" for i in range(10))
        + "recs = [Rec0(f'n{i}', i) for i in range(1_000)]",
        "recs.append(Rec0('x', 1))",
        "recs",
    ),
}
N_TRIVIAL, N_MUTATE, N_PICKLE = 10, 7, 3
SLIDERS = (1, 5, 10, 20, 40)

PROBE = """
def pickle_cpu(name, n):
    # main-thread CPU of pickle.dumps of the variable (as the hooks are timed), n samples
    import json, pickle, time
    from IPython import get_ipython
    v = get_ipython().user_ns[name]
    took = []
    for _ in range(n):
        t = time.thread_time()
        pickle.dumps(v, protocol=5)
        took.append(time.thread_time() - t)
    return json.dumps(took)
def digest(name):
    import json, pickle, xxhash
    from IPython import get_ipython
    v = get_ipython().user_ns[name]
    blob = pickle.dumps(v, protocol=5)
    if name == "objs":  # instances pickle by class reference: compare their content
        blob = pickle.dumps([(o.i, o.tags, type(o).__name__) for o in v])
    if name == "recs":
        blob = pickle.dumps([(o.name, o.size, o.tags, type(o).__name__) for o in v])
    return json.dumps({"digest": xxhash.xxh3_64_hexdigest(blob)})
"""


def run_workload(side, label, args):
    build, mutate, var = WORKLOADS[label]
    folder, work, env = base.prepare(side, args, "bench-objects", base.HARNESS + PROBE)
    out = {"side": side, "workload": label}
    kernels = []
    try:
        kernels.append(base.start(side, work, env))
        k = kernels[0]
        base.attach(k, side, work, False)
        cells = [base.run_cell(k, 0, "build", build)]
        cells += [base.run_cell(k, 1 + i, "noop", "y = 1") for i in range(N_TRIVIAL)]
        pickles = []
        for i in range(N_MUTATE):  # each mutating cell, then the pickle of its variable
            cells.append(base.run_cell(k, 20 + i, "mutate", mutate))
            try:  # (Kishu's kernel cannot pickle the instances: ``Obj`` not on __main__)
                pickles.append(base.query(k, base.bench(f"pickle_cpu({var!r}, {N_PICKLE})")))
            except RuntimeError:
                pickles.append(None)
        out["cells"], out["pickles"] = cells, pickles
        out["probe"] = base.query(k, base.bench(f"digest({var!r})"))
        if side != "plain":
            head = base.query(k, base.bench("kishu_head()")) if side == "kishu" else None
            k.kill()
            kernels.append(base.start(side, work, env))
            k2 = kernels[1]
            if side != "dill":
                base.attach(k2, side, work, False)
            base.query(k2, base.bench("take('restore')"))
            out["restore"] = base.restore(k2, side, work, head)
            try:
                after = base.query(k2, base.bench(f"digest({var!r})"))["digest"]
            except RuntimeError as exc:
                after = f"missing: {exc}"[:80]
            out["correct"] = after == out["probe"]["digest"]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        base.stop(kernels, folder, args)
    return out


def run_widgets(side, args):
    """A ``pass`` cell with 1..40 IntSliders in the namespace: the side's hooks, ms."""
    folder, work, env = base.prepare(side, args, "bench-widgets")
    out, have = {}, 0
    k = base.start(side, work, env)
    try:
        base.attach(k, side, work, False)
        base.run_cell(k, 0, "build", "import ipywidgets as widgets")
        for n in SLIDERS:
            code = "\n".join(f"s{i} = widgets.IntSlider()" for i in range(have, n))
            base.run_cell(k, n, "build", code)
            have = n
            cells = [base.run_cell(k, 100 + n + i, "noop", "pass") for i in range(5)]
            out[n] = {
                "hooks": statistics.median(c.get("hooks", 0.0) for c in cells) * 1e3,
                "wall": statistics.median(c["wall"] for c in cells) * 1e3,
            }
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        base.stop([k], folder, args)
    return out


def summary(r):
    cells = r.get("cells", [])

    def med(kind, key, scale=1e3):
        values = [c.get(key, 0.0) for c in cells if c["kind"] == kind]
        return statistics.median(values) * scale if values else None

    rest = r.get("restore", {})
    muts = [c for c in cells if c["kind"] == "mutate"]
    got = r.get("pickles", [])  # shorter than muts when the run stopped early
    pairs = [(c, p) for c, p in zip(muts[: len(got)], got, strict=True) if p and min(p) > 0]
    pickles = [p for _, p in pairs]
    # each mutating cell's hooks CPU over the median pickle sample just after it
    ratios = [c.get("hooks_cpu", 0.0) / statistics.median(p) for c, p in pairs]
    return {
        "build": med("build", "hooks"),
        "noop": med("noop", "hooks"),
        "noop_wall": med("noop", "wall"),
        "noop_snap": med("noop", "snapshot"),
        "mutate": med("mutate", "hooks"),
        "mutate_cpu": med("mutate", "hooks_cpu"),
        "noop_cpu": med("noop", "hooks_cpu"),
        "mut_mb": med("mutate", "written", 1e-6),
        "pickle": statistics.median(x for p in pickles for x in p) * 1e3 if pickles else None,
        "cpu_ratio": statistics.median(ratios) if ratios else None,
        "restore": rest.get("restore"),
        "correct": {None: "-", True: "yes", False: "NO"}[r.get("correct")],
    }


def print_tables(results, widgets):
    fmt = base.fmt
    print("\nobject-heavy namespaces: median per cell; ms = the side's own hooks in the kernel")
    cols = ("build ms", 9), ("y=1 ms", 8), ("y=1 cpu", 8), ("of it,snap", 10), ("wall ms", 8)
    cols += ("mut ms", 8), ("mut cpu", 8), ("pickle ms", 9)
    cols += ("mut/pkl", 7), ("cpu/pkl", 7), ("MB/mut", 7), ("restore s", 9)
    print(f"{'namespace':<20} {'side':<18} " + " ".join(f"{c:>{w}}" for c, w in cols) + "  ok")
    for r in results:
        s = summary(r)
        ratio = s["mutate"] / s["pickle"] if s["mutate"] and s["pickle"] else None
        cpu_ratio = s["cpu_ratio"]
        print(f"{r['workload']:<20} {base.LABELS[r['side']]:<18} {fmt(s['build'], '9.1f')} "
              f"{fmt(s['noop'], '8.2f')} {fmt(s['noop_cpu'], '8.2f')} "
              f"{fmt(s['noop_snap'], '10.2f')} {fmt(s['noop_wall'], '8.1f')} "
              f"{fmt(s['mutate'], '8.1f')} {fmt(s['mutate_cpu'], '8.1f')} "
              f"{fmt(s['pickle'], '9.1f')} {fmt(ratio, '7.1f')} {fmt(cpu_ratio, '7.1f')} "
              f"{fmt(s['mut_mb'], '7.2f')} {fmt(s['restore'], '9.3f')}  "
              f"{s['correct']}")  # fmt: skip
        if r.get("error"):
            print(f"  ! {r['error']}")
    print("cpu = the hooks' main-thread CPU (what a loaded machine does not inflate); pickle ms")
    print("= main-thread CPU of pickle.dumps of the touched variable in the same kernel, after")
    print(f"each mutating cell, {N_PICKLE} samples each, median of all; mut/pkl = hooks wall time")
    print("(fsyncs included) / pickle; cpu/pkl = median over the mutating cells of the cell's")
    print("hooks CPU / the median pickle sample taken just after it")
    print("targets (durable_nb): y=1 ≤ 1 ms over plain; mut ≤ 2× pickle.dumps of the variable")
    if widgets:
        print("\n`pass` cell with N IntSliders in the namespace: hooks ms (wall ms), median of 5")
        print(f"{'side':<18} " + " ".join(f"{n:>14}" for n in SLIDERS))
        for side, w in widgets.items():
            got = [w.get(n, {}) for n in SLIDERS]
            cells = [f"{fmt(g.get('hooks'), '.1f')} ({fmt(g.get('wall'), '.1f')})" for g in got]
            print(f"{base.LABELS[side]:<18} " + " ".join(f"{c:>14}" for c in cells))
            if "error" in w:
                print(f"  ! {w['error']}")


def main(args):
    # bench/snapshot.py runs as __main__: ``base`` is a second copy of it, told apart here.
    results, widgets = [], {}
    for label in WORKLOADS:
        for side in args.sides.split(","):
            t0 = time.perf_counter()
            results.append(run_workload(side, label, args))
            print(f"{label}, {base.LABELS[side]}: {time.perf_counter() - t0:.0f} s", flush=True)
    for side in ("plain", "durable"):
        if side in args.sides.split(","):
            widgets[side] = run_widgets(side, args)
    print_tables(results, widgets)
    return int(any(r.get("error") or r.get("correct") is False for r in results))
