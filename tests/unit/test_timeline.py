"""timeline.segments: what the picture draws from the journal's rows (no plotting here)."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from durable_nb.store import CellRow, RunRow, StepRow, Timeline
from durable_nb.timeline import COLORS, segments

T0 = 1_700_000_000.0


def run(ended: float | None = T0 + 100) -> RunRow:
    return RunRow("r1", 42, "host", "nb.ipynb", T0, ended, "ok" if ended else "running")


def cell(seq: int, key: str, ran: int, replayed: int, status: str = "ok",
         ended: float | None = T0 + 50) -> CellRow:  # fmt: skip
    return CellRow(f"e{seq}", seq, "r1", key, key, f"work({seq})\nmore", T0 + seq, ended,
                   status, "Boom: no" if status == "error" else None, ran, replayed)  # fmt: skip


def step(identity: str, log: list[dict], status: str = "ok", started: float = T0 + 1,
         ended: float = T0 + 9, name: str = "provision") -> StepRow:  # fmt: skip
    return StepRow(f"rec-{identity}-{ended}", identity, 0, name, "c1", 1, "r1", "('node-1',)",
                   0, None, status, "json", None, None, None, len(log), json.dumps(log),
                   started, ended)  # fmt: skip


def test_attempts_failures_suspension_decision_and_replay():
    log = [
        {"started": T0 + 1, "seconds": 0.5, "error": "ConnectionError: refused"},
        {"started": T0 + 2, "seconds": 0.5, "error": "ConnectionError: refused"},
        {"decision": "retry", "at": T0 + 6},
        {"started": T0 + 6, "seconds": 1.0, "error": None},
    ]
    # The failure journaled before the person was asked, then the record after Retry.
    failed = step("s1", log[:2], status="error", ended=T0 + 2.5)
    rows, bars, marks = segments(Timeline(
        [run()], [cell(1, "c1", 1, 0), cell(2, "c1", 0, 1), cell(3, "c2", 0, 0, "error")],
        [failed, step("s1", log)],
    ))  # fmt: skip
    assert rows == ["runs", "cell 1: work(1)", "cell 2: work(3)", "provision('node-1',)"]
    mine = [(b.kind, b.start - T0, b.end - T0) for b in bars if b.row == rows[-1]]
    # The failure's record is a prefix of the later one: drawn once.
    assert mine == [("failed", 1, 1.5), ("failed", 2, 2.5), ("suspended", 2.5, 6),
                    ("attempt", 6, 7)]  # fmt: skip
    assert [(m.row, m.at - T0) for m in marks] == [(rows[-1], 6)]
    assert "retry" in marks[0].text
    kinds = {b.text.split(":")[0]: b.kind for b in bars if b.row.startswith("cell")}
    assert kinds == {"[1] ok": "cell", "[2] ok": "replayed", "[3] error": "failed"}


def test_an_interrupted_cell_and_a_live_run_reach_the_last_known_time():
    _, bars, _ = segments(Timeline([run(ended=None)], [cell(1, "c1", 1, 0, "running", None)],
                                      [step("s", [], ended=T0 + 30)]))  # fmt: skip
    by_kind = {b.kind: b for b in bars}
    assert by_kind["interrupted"].end == by_kind["run"].end == T0 + 30
    assert by_kind["attempt"].start == T0 + 1  # no attempt log: the call as one bar


ATTEMPT = {"started": st.floats(T0, T0 + 100), "seconds": st.floats(0, 10),
           "error": st.none() | st.text(max_size=5)}  # fmt: skip
DECISION = {"decision": st.sampled_from(["retry", "skip"]), "at": st.floats(T0, T0 + 100)}
entries = st.one_of(
    st.fixed_dictionaries(ATTEMPT),
    st.fixed_dictionaries(DECISION),
    st.none(),
    st.integers(),
    st.fixed_dictionaries({"started": st.text(max_size=3)}),
)


@given(st.lists(st.lists(entries, max_size=6), max_size=5))
def test_any_attempt_log_gives_ordered_bars_on_known_rows(logs):
    steps = [step(f"s{i}", log, ended=T0 + 20 + i) for i, log in enumerate(logs)]
    rows, bars, marks = segments(Timeline([run()], [], steps))
    assert len(rows) == len(set(rows)) == 1 + len(logs)  # one row per call, distinct names
    for b in bars:
        assert b.row in rows and b.kind in COLORS and b.end >= b.start
    assert len(marks) == sum(isinstance(e, dict) and "decision" in e for log in logs for e in log)


def test_the_picture_is_plotly_json_with_a_row_per_call():
    from durable_nb.timeline import Picture, figure

    tl = Timeline([run()], [cell(1, "c1", 1, 0)], [step("s1", [], status="error")])
    bundle = Picture(figure(tl))._repr_mimebundle_()
    spec = bundle["application/vnd.plotly.v1+json"]
    assert spec["layout"]["yaxis"]["categoryarray"] == ["runs", "cell 1: work(1)",
                                                        "provision('node-1',)"]  # fmt: skip
    assert {t["name"] for t in spec["data"]} == {"run", "cell", "failed"}
    assert spec["config"]["scrollZoom"] and "3 rows" in bundle["text/plain"]


def test_without_plotly_the_timeline_says_which_extra_to_install():
    probe = (
        "import sys; sys.modules['plotly'] = None\n"
        "from durable_nb.store import Timeline\nfrom durable_nb.timeline import figure\n"
        "try:\n    figure(Timeline([], [], []))\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert 'pip install "durable_nb[timeline]"' in out and "needs plotly" in out, out
