"""The example notebook, followed as its own text says (issue 16.10), in a real kernel."""

from __future__ import annotations

import json

from conftest import NOTEBOOKS


def test_flaky_service_notebook_run_all_then_its_own_instructions(start_kernel):
    """Run All, then "re-run the loop cell above, then the stats cell": both work, the
    loop replays from the journal (the service sees no new request), and the replay note
    is information on stdout, not an error on stderr."""
    nb = json.loads((NOTEBOOKS / "01_flaky_service.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in code]
    ids = [c.get("id") or f"cell-{i}" for i, c in enumerate(code)]
    loop = next(i for i, s in enumerate(sources) if "results[node] = provision(node)" in s)
    stats_cell = next(i for i, s in enumerate(sources) if s.startswith("print(stats("))
    k = start_kernel()
    for source, cell_id in zip(sources, ids, strict=True):  # Run All
        k.ok(source, cell_id=cell_id)
    total = k.value("stats(svc.url)['total']")

    again = k.ok(sources[loop], cell_id=ids[loop])
    assert "provisioned 12 nodes" in again.stdout, again
    assert "durable_nb: 12 steps replayed from the journal" in again.stdout, again
    assert "replayed" not in again.stderr, again
    k.ok(sources[stats_cell], cell_id=ids[stats_cell])
    assert k.value("stats(svc.url)['total']") == total
