"""Kishu for bench/snapshot.py: a venv of its own in ``.bench-kishu/``, built on first use.

Kishu's requirements name the ``typing`` and ``dataclasses`` backports: in a venv the
standard library comes first and hides them, but put on a kernel's PYTHONPATH (as the
``pip install --target`` folder was) they replace the standard modules and the kernel
dies at start. The venv also pins the ipykernel Kishu is run with (IPYKERNEL), apart
from the project's own venv. Its kernelspec (``kishu-python3``) is found through
JUPYTER_PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

KISHU = "kishu==0.3.4"
IPYKERNEL = "ipykernel==7.4.0"
#: What the workloads import besides Kishu (and Kishu's own numpy, pandas, ipywidgets).
EXTRA = ("numpy", "pandas", "ipywidgets")
KERNEL = "kishu-python3"


def ensure(folder: Path) -> str:
    """Build the venv in ``folder`` unless it has these pins; register its kernel; its name."""
    python = folder / "bin" / "python"
    stamp = folder / "bench-kishu.stamp"
    wanted = " ".join([KISHU, IPYKERNEL, *EXTRA])
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        print(f"building {folder} ({wanted}) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", KISHU, IPYKERNEL, *EXTRA],
                       check=True)  # fmt: skip
        stamp.write_text(wanted)
    share = folder / "share" / "jupyter"
    spec = share / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": f"Kishu ({IPYKERNEL})", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    path = [str(share), os.environ.get("JUPYTER_PATH", "")]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in path if p)
    return KERNEL
