"""Namespace snapshots of a ~240 MB namespace: durable_nb vs dill.dump_session vs Kishu.
Each side runs in its own fresh real kernel and temp folder; then SIGKILL, new kernel, restore."""

import argparse
import ast
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import bytecode  # noqa: E402  (bench/)
import kishu_env  # noqa: E402  (bench/: Kishu's venv)
from kernels import Kernel  # noqa: E402  (the tests' real-kernel driver)

SIDES = ("plain", "durable", "dill", "kishu")
LABELS = {"plain": "plain python3", "durable": "durable_nb", "dill": "dill.dump_session",
          "kishu": "Kishu 0.3.4"}  # fmt: skip
SLICE = 1 << 20  # float64s per mutating cell: 8 MiB
CHANGED = SLICE * 8
N_MUTATE = 16
MB = 1e6
TARGETS = {"noop": 5.0, "read": 15.0, "store": 400.0, "restore": 0.5}
KINDS = ("build", "mutate", "noop", "read")

SMALL = "\n".join(
    f"v{i} = {(i, f'{i * 1.5}', repr(f's{i}'), f'[{i}, {i + 1}]')[i % 4]}" for i in range(100)
)
BUILD = f"""import numpy as np
import pandas as pd

rng = np.random.default_rng(0)
big = rng.random(25_000_000)  # 200 MB float64
df = pd.DataFrame(rng.random((250_000, 10)), columns=[f"c{{i}}" for i in range(10)])  # 20 MB
d = {{f"key{{i}}": i * 0.5 for i in range(10_000)}}
{SMALL}
"""
CELLS = [
    ("build", BUILD),
    *[("mutate", f"big[{i * SLICE}:{(i + 1) * SLICE}] += 1.0") for i in range(N_MUTATE)],
    ("noop", "pass"),
    ("read", "s = big.sum()"),
]

# Runs inside each kernel as the module ``_bench`` (never in the user namespace, so no
# side saves it). Hooks are timed by wrapping the side's own callbacks in place.
HARNESS = '''
import cProfile, json, time
from IPython import get_ipython

ip = get_ipython()
T, PROF, KIND = {}, {}, ["-"]


def timed(fn, key, profile=False):
    def run(*args, **kwargs):
        t, cpu = time.perf_counter(), time.thread_time()
        try:
            if profile:
                return PROF.setdefault(KIND[0], cProfile.Profile()).runcall(fn, *args, **kwargs)
            return fn(*args, **kwargs)
        finally:
            T[key] = T.get(key, 0.0) + time.perf_counter() - t
            T[key + "_cpu"] = T.get(key + "_cpu", 0.0) + time.thread_time() - cpu
    return run


def take(kind=None):
    out = dict(T)
    T.clear()
    if kind:
        KIND[0] = kind
    return json.dumps(out)


def wrap_hooks(owner, profile=False):
    for event in ("pre_run_cell", "post_run_cell"):
        cbs = ip.events.callbacks[event]
        for i, cb in enumerate(cbs):
            if getattr(cb, "__self__", None) is owner:
                cbs[i] = timed(cb, "hooks", profile)


def attach_durable(profile=False):
    from durable_nb import extension
    ext = extension._loaded[id(ip)]
    wrap_hooks(ext, profile)
    # A cell's snapshot, outputs and end record are written as its reply is sent: hooks too.
    ext.at_reply = timed(ext.at_reply, "hooks", profile)
    snaps = ext.snapshots
    snaps.after_cell = timed(snaps.after_cell, "snapshot")
    snaps.restore = timed(snaps.restore, "restore", profile)
    return "{}"


def attach_dill(path):
    import dill
    ip.events.register("post_run_cell", timed(lambda result: dill.dump_session(path), "hooks"))
    return "{}"


def attach_kishu(nb):
    """What `kishu init` runs in the kernel (as silent code, so get_ipython is there)."""
    from kishu import init_kishu
    timed(init_kishu, "init")(nb)
    wrap_hooks(ip.user_ns["_kishu"])


def preload():
    """Import what the namespace's payloads need, as a notebook's first cell would."""
    import numpy, pandas  # noqa: F401, E401
    return "{}"


def restore_dill(path):
    import dill
    timed(dill.load_session, "restore")(path)


def restore_kishu(commit):
    """What `kishu checkout` evaluates in the kernel (a user expression)."""
    out = timed(ip.user_ns["_kishu"].checkout, "restore")(commit, skip_notebook=True)
    return json.dumps({"message": str(out)})


def kishu_head():
    return json.dumps(ip.user_ns["_kishu"]._kishu_branch.get_head().commit_id)


def check():
    import pandas as pd
    ns, out = ip.user_ns, {}
    probes = {
        "big.sum()": lambda: float(ns["big"].sum()),
        "df hash": lambda: int(pd.util.hash_pandas_object(ns["df"]).sum()),
        "d": lambda: [len(ns["d"]), sum(ns["d"].values())],
        "v0..v99": lambda: repr([ns[f"v{i}"] for i in range(100)]),
        "s": lambda: float(ns["s"]),
    }
    for name, probe in probes.items():
        try:
            out[name] = probe()
        except Exception as exc:
            out[name] = f"missing: {type(exc).__name__}: {exc}"
    return json.dumps(out)


def dump_profiles(folder):
    for kind, prof in PROF.items():
        prof.dump_stats(f"{folder}/prof-{kind}.pstats")
    return json.dumps(sorted(PROF))
'''


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", default=",".join(SIDES), help="comma list of sides to run")
    p.add_argument("--tmp", default=None, help="parent folder for the temp folders")
    p.add_argument("--keep", action="store_true", help="keep the temp folders")
    p.add_argument("--profile", action="store_true", help="cProfile durable_nb's hooks")
    p.add_argument(
        "--objects",
        action="store_true",
        help="the object-heavy namespaces and widgets instead (snapshot_objects.py)",
    )
    p.add_argument(
        "--libraries-first",
        action="store_true",
        help="the restoring kernel imports numpy and pandas before the timed restore",
    )
    p.add_argument(
        "--kishu-path",
        default=str(ROOT / ".bench-kishu"),
        help="Kishu's venv, built there on first use (bench/kishu_env.py)",
    )
    return p.parse_args(argv)


# ---------------------------------------------------- talking to a kernel


def query(k, expr, code=""):
    """Run ``code`` then evaluate ``expr`` (a JSON string), silently: no cell hooks fire."""
    msg_id = k.kc.execute(code, silent=True, store_history=False, user_expressions={"r": expr})
    reply = k.kc.get_shell_msg(timeout=600)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = k.kc.get_shell_msg(timeout=600)
    if reply["content"]["status"] != "ok":
        c = reply["content"]
        raise RuntimeError(f"{code}: {c.get('ename')}: {c.get('evalue')}")
    r = reply["content"]["user_expressions"]["r"]
    if r["status"] != "ok":
        raise RuntimeError(f"{expr}: {r['ename']}: {r['evalue']}")
    return json.loads(ast.literal_eval(r["data"]["text/plain"]))


def bench(call):
    return f"__import__('_bench').{call}"


def wchar(pid):
    """Bytes the process passed to write() and friends so far (/proc/PID/io)."""
    with open(f"/proc/{pid}/io") as f:
        fields = dict(line.split(": ") for line in f.read().splitlines())
    return int(fields["wchar"])


def du(folder):
    """Allocated bytes under ``folder`` (as du counts them)."""
    return sum(
        os.stat(os.path.join(d, f)).st_blocks * 512
        for d, _, files in os.walk(folder)
        for f in files
    )


#: The kernels of the sides; Kishu's is its own venv's (made by ``kishu_env.ensure`` in main).
KERNELS = {"durable": "python3-durable", "plain": "python3", "dill": "python3",
           "kishu": kishu_env.KERNEL}  # fmt: skip


def kernel_env(side, work, harness):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "DURABLE_NB"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(harness), env.get("PYTHONPATH")) if p)
    nb = str(work / "nb.ipynb")
    if side == "durable":
        env["JPY_SESSION_NAME"] = nb
    if side == "kishu":  # Kishu's own test mode: no Jupyter server or frontend to ask
        env.update(TEST_NOTEBOOK_PATH=nb, ENV_KISHU_TEST_MODE="1", KISHU_PATH_ROOT=str(work))
    return env


def start(side, work, env):
    return Kernel(work, env, KERNELS[side])


def attach(k, side, work, profile):
    if side == "durable":
        return query(k, bench(f"attach_durable({profile})"))
    if side == "dill":
        return query(k, bench(f"attach_dill({str(work / 'session.pkl')!r})"))
    if side == "kishu":
        return query(k, bench("take()"), bench(f"attach_kishu({str(work / 'nb.ipynb')!r})"))
    return {}


# ---------------------------------------------------- one side


def run_cell(k, n, kind, code):
    query(k, bench(f"take({kind!r})"))
    io0, t0 = wchar(k.pid), time.perf_counter()
    res = k.run(code, cell_id=f"cell-{n}", timeout=900)
    wall = time.perf_counter() - t0
    out = {"kind": kind, "wall": wall, "written": wchar(k.pid) - io0, "ok": res.ok}
    out.update(query(k, bench("take()")))
    out["note"] = (res.stderr.strip().splitlines() or [""])[0][:160]
    return out


def restore(k, side, work, head):
    io0, t0 = wchar(k.pid), time.perf_counter()
    if side == "durable":
        res = k.run("%durable restore", timeout=900)
        out = {"message": res.stdout.strip() or res.stderr.strip(), "ok": res.ok}
    elif side == "dill":
        res = k.run(bench(f"restore_dill({str(work / 'session.pkl')!r})"), timeout=900)
        out = {"message": res.stderr.strip()[:160], "ok": res.ok}
    else:  # as `kishu checkout` does: a silent request, so no commit follows it
        out = query(k, bench(f"restore_kishu({head!r})"))
    out.update(wall=time.perf_counter() - t0, written=wchar(k.pid) - io0)
    out.update(query(k, bench("take()")))
    return out


def prepare(side, args, prefix="bench-snapshot", harness_code=HARNESS):
    """A temp folder with an empty notebook and the harness: (folder, work, env)."""
    folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-{side}-", dir=args.tmp))
    work, harness = folder / "work", folder / "harness"
    work.mkdir()
    harness.mkdir()
    (harness / "_bench.py").write_text(harness_code)
    nbformat.write(nbformat.v4.new_notebook(), work / "nb.ipynb")
    return folder, work, kernel_env(side, work, harness)


def run_side(side, args):
    folder, work, env = prepare(side, args)
    profile = args.profile and side == "durable"
    out = {"side": side, "cells": [], "du": []}
    kernels = []
    try:
        kernels.append(start(side, work, env))
        out["attach"] = attach(kernels[0], side, work, profile)
        for n, (kind, code) in enumerate(CELLS):
            out["cells"].append(run_cell(kernels[0], n, kind, code))
            out["du"].append(du(work))
        if side != "plain":
            out.update(kill_and_restore(kernels, side, work, env, profile, folder,
                                        args.libraries_first))  # fmt: skip
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        stop(kernels, folder, args)
    return out


def stop(kernels, folder, args):
    """Shut the side's kernels down; remove its folder (unless --keep)."""
    for k in kernels:
        if k.km.is_alive():
            k.kc.stop_channels()
            k.km.shutdown_kernel(now=True)
    if not getattr(args, "keep", False):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"kept {folder}")


def kill_and_restore(kernels, side, work, env, profile, folder, libraries_first=False):
    k = kernels[0]
    before = query(k, bench("check()"))
    head = query(k, bench("kishu_head()")) if side == "kishu" else None
    if profile:
        print_profiles(k, folder, "prof-run")
    k.kill()
    kernels.append(start(side, work, env))
    k2 = kernels[1]
    attached = attach(k2, side, work, profile) if side != "dill" else {}
    if libraries_first:  # silent: no side saves it, and it is not timed
        query(k2, bench("preload()"))
    query(k2, bench("take('restore')"))
    rest = restore(k2, side, work, head)
    rest["attach"] = attached
    after = query(k2, bench("check()"))
    if profile:
        print_profiles(k2, folder, "prof-restore")
    wrong = {n: [v, after.get(n)] for n, v in before.items() if after.get(n) != v}
    return {"before": before, "restore": rest, "wrong": wrong}


def print_profiles(k, folder, sub):
    """cProfile of durable_nb's hooks per kind of cell: the top functions by own time."""
    (folder / sub).mkdir()
    for kind in query(k, bench(f"dump_profiles({str(folder / sub)!r})")):
        print(f"\n--- durable_nb profile, {kind} cells: its hooks (+ restore), by own time")
        stats = pstats.Stats(str(folder / sub / f"prof-{kind}.pstats"))
        stats.sort_stats("tottime").print_stats(12)


# ---------------------------------------------------- report


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def metrics(r):
    cells = r["cells"]

    def of(kind, key, scale=1.0):
        v = mean([c.get(key) for c in cells if c["kind"] == kind])
        return None if v is None else v * scale

    rest = r.get("restore", {})
    return {
        "noop": of("noop", "hooks", 1e3),
        "read": of("read", "hooks", 1e3),
        "mutate": of("mutate", "hooks", 1e3),
        "mut_mb": of("mutate", "written", 1 / MB),
        "store": r["du"][N_MUTATE] / MB if len(r["du"]) > N_MUTATE else None,
        "restore": rest.get("restore"),
        "restore_wall": rest.get("wall"),
        "correct": None if "wrong" not in r else not r["wrong"],
        "build": of("build", "hooks"),
        "build_mb": of("build", "written", 1 / MB),
        "snapshot": {k: of(k, "snapshot", 1e3) for k in KINDS},
        "cpu": {k: of(k, "hooks_cpu", 1e3) for k in KINDS},
        "written": {k: of(k, "written", 1 / MB) for k in KINDS},
        "restore_cpu": rest.get("restore_cpu"),
        "init": rest.get("attach", {}).get("init"),
        "wall": {k: of(k, "wall", 1e3) for k in KINDS},
    }


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def meets(m):
    """durable_nb against the issue's targets: name -> (value, target text, ok)."""
    mut_goal = 1.2 * CHANGED / MB + 1
    rows = {
        "no-op cell overhead": (m["noop"], f"≤ {TARGETS['noop']:g} ms", TARGETS["noop"]),
        "read-only cell overhead": (m["read"], f"≤ {TARGETS['read']:g} ms", TARGETS["read"]),
        "bytes per mutating cell": (m["mut_mb"], f"≤ {mut_goal:.1f} MB", mut_goal),
        "journal after 16 cells": (m["store"], f"≤ {TARGETS['store']:g} MB", TARGETS["store"]),
        "restore (in kernel)": (m["restore"], f"≤ {TARGETS['restore']:g} s", TARGETS["restore"]),
        "restore (request wall)": (
            m["restore_wall"], f"≤ {TARGETS['restore']:g} s", TARGETS["restore"]),
    }  # fmt: skip
    return {k: (v, text, v is not None and v <= goal) for k, (v, text, goal) in rows.items()}


def print_table(results, libraries_first=False):
    print(f"\nworkload: {len(CELLS)} cells, 220 MB of arrays + a dict + 100 small variables; "
          f"each mutating cell changes {CHANGED / MB:.2f} MB")  # fmt: skip
    print(
        "ms = the side's own cell hooks (pre+post_run_cell, durable_nb's end of cell at "
        "its reply), timed inside the kernel"
    )
    head = (f"{'side':<18} {'no-op ms':>8} {'read ms':>8} {'mut ms':>8} {'MB/mut':>7} "
            f"{'store MB':>8} {'restore s':>9} {'wall s':>7}  correct")  # fmt: skip
    print(head)
    for r in results:
        if r["side"] == "plain":
            continue
        m = metrics(r)
        correct = {None: "-", True: "yes", False: "NO"}[m["correct"]]
        print(
            f"{LABELS[r['side']]:<18} {fmt(m['noop'], '8.1f')} {fmt(m['read'], '8.1f')} "
            f"{fmt(m['mutate'], '8.1f')} {fmt(m['mut_mb'], '7.1f')} {fmt(m['store'], '8.0f')} "
            f"{fmt(m['restore'], '9.3f')} {fmt(m['restore_wall'], '7.3f')}  {correct}"
        )
        if r["side"] == "durable":
            t = meets(m)
            goals = [t[k][1] for k in list(t)[:5]]
            print(f"{'  targets':<18} {goals[0]:>8} {goals[1]:>8} {'':>8} {goals[2]:>7} "
                  f"{goals[3]:>8} {goals[4]:>9}")  # fmt: skip
    print_notes(results, libraries_first)


def print_notes(results, libraries_first=False):
    print("MB/mut = bytes the kernel process wrote (/proc/PID/io wchar) per mutating cell;")
    print("store = du of the side's folder after the 16 mutating cells;")
    print(
        "restore s = in kernel; wall s = the restore request, client side; "
        + (
            "numpy and pandas imported before it (--libraries-first)"
            if libraries_first
            else "importing numpy and pandas included"
        )
    )
    for r in results:
        m = metrics(r)
        print(f"{LABELS[r['side']]}:")
        if r["side"] != "plain":
            print(f"  first snapshot (build cell) {fmt(m['build'], '.2f')} s, "
                  f"{fmt(m['build_mb'], '.0f')} MB written")  # fmt: skip
        if r.get("error"):
            print(f"! {LABELS[r['side']]} failed: {r['error']}")
        if r.get("wrong"):
            print(f"! {LABELS[r['side']]} restored wrong values: {r['wrong']}")
        if r.get("restore", {}).get("message"):
            print(f"  restore said: {r['restore']['message'][:200]}")
        print("  MB written per cell: "
              + ", ".join(f"{k} {fmt(m['written'][k], '.2f')}" for k in KINDS))  # fmt: skip
        if r["side"] != "plain" and m["cpu"]["noop"] is not None:
            print("  main-thread CPU in the hooks, ms: "
                  + ", ".join(f"{k} {fmt(m['cpu'][k], '.1f')}" for k in KINDS)
                  + f"; restore {fmt(m['restore_cpu'], '.2f')} s")  # fmt: skip
        if m["init"] is not None:
            print(f"  Kishu re-attach (init_kishu) in the new kernel: {m['init']:.2f} s")
        notes = {c["note"] for c in r["cells"] if c.get("note")}
        for note in sorted(notes)[:3]:
            print(f"  {LABELS[r['side']]} stderr: {note}")
        bad = [c["kind"] for c in r["cells"] if not c["ok"]]
        if bad:
            print(f"! {LABELS[r['side']]}: cells failed: {bad}")
    print_wall(results)
    print_verdicts(results)


def print_wall(results):
    print("\nwall time per execute request, ms (client side; noisy), mean per kind of cell")
    kinds = " ".join(f"{k:>9}" for k in KINDS)
    print(f"{'side':<18} {kinds}   Δ vs plain (no-op, read, mut)")
    plain = next((metrics(r)["wall"] for r in results if r["side"] == "plain"), None)
    for r in results:
        w = metrics(r)["wall"]
        line = f"{LABELS[r['side']]:<18} " + " ".join(fmt(w[k], "9.1f") for k in KINDS)
        if plain and r["side"] != "plain":
            deltas = [None if w[k] is None else w[k] - plain[k] for k in ("noop", "read", "mutate")]
            line += "   " + ", ".join(fmt(d, "+.1f") for d in deltas)
        print(line)
    for r in results:
        if r["side"] == "durable":
            s = metrics(r)["snapshot"]
            print("durable_nb: of the hooks, snapshot (after_cell) ms: "
                  + ", ".join(f"{k} {fmt(s[k], '.1f')}" for k in KINDS))  # fmt: skip


def print_verdicts(results):
    for r in results:
        if r["side"] != "durable":
            continue
        print("\ndurable_nb against the targets:")
        for name, (v, text, ok) in meets(metrics(r)).items():
            print(f"  {name:<24} {fmt(v, '.2f'):>8}  {text:<12} {'ok' if ok else 'MISSED'}")


def main(argv=None):
    args = parse_args(argv)
    bytecode.compile_package()  # as installed (bench/bytecode.py)
    if "kishu" in args.sides.split(","):
        kishu_env.ensure(Path(args.kishu_path))
    if args.objects:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import snapshot_objects

        return snapshot_objects.main(args)
    results = []
    for side in args.sides.split(","):
        t0 = time.perf_counter()
        results.append(run_side(side, args))
        print(f"{LABELS[side]}: {time.perf_counter() - t0:.0f} s", flush=True)
    print_table(results, args.libraries_first)
    return int(any(r.get("error") or r.get("wrong") for r in results))


if __name__ == "__main__":
    sys.exit(main())
