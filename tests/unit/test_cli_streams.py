"""How ``durable-nb run``/``replay`` print a cell's streams: whole lines, as a frontend."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_nb.cli.run import streams

pytestmark = pytest.mark.unit


def stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


DISPLAY = {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {}}

texts = st.text(alphabet="ab é\n\t", max_size=30)
outputs = st.lists(
    st.one_of(st.builds(stream, st.sampled_from(["stdout", "stderr"]), texts), st.just(DISPLAY)),
    max_size=8,
)


@st.composite
def split(draw, outs: list[dict]) -> list[dict]:
    """``outs`` with each stream output cut at drawn places into consecutive messages."""
    pieces = []
    for out in outs:
        if out["output_type"] != "stream":
            pieces.append(out)
            continue
        text = out["text"]
        cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=4)))
        bounds = [0, *cuts, len(text)]
        pieces += [stream(out["name"], text[a:b]) for a, b in pairwise(bounds)]
    return pieces


@given(st.data(), outputs)
def test_a_print_split_into_messages_prints_as_one(data, outs):
    assert streams(data.draw(split(outs))) == streams(outs)


def test_the_flush_timer_split_keeps_the_line_whole():
    outs = [stream("stdout", "results [('n1', 1)] tok"), stream("stdout", "en 3f\nnext\n")]
    assert streams(outs) == ["results [('n1', 1)] token 3f\nnext"]


def test_another_output_or_stream_starts_a_new_text():
    outs = [stream("stdout", "a"), DISPLAY, stream("stdout", "b\n"), stream("stderr", "c\n"),
            stream("stdout", "d"), stream("stdout", "  \n"), stream("stderr", " \n")]  # fmt: skip
    assert streams(outs) == ["a", "b", "c", "d"]
