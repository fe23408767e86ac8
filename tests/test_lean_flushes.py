"""Displays and cell results flush only the streams that hold text (issue 13: widget
notebooks spent a tenth of their cell time in ipykernel's flush round trips), and the
outputs keep the order the plain kernel gives them. Real kernels, generated cells.
"""

from __future__ import annotations

import queue

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TEXT = st.text(st.characters(codec="ascii", exclude_characters="\r"), max_size=12)
FIXED = ("print('x' * 5000)", "clear_output()", "clear_output(wait=True)", "time.sleep(0.3)",
         "h = display(0, display_id=True)")  # fmt: skip
#: Statements a cell is made of: prints to both streams (with and without a newline, one
#: long enough that its message takes a while to sign), displays, updates, clears, and a
#: pause long enough for ipykernel's timed flush (0.2 s) to send text on its own.
STEP = st.one_of(
    st.builds("print({!r})".format, TEXT),
    st.builds("print({!r}, end='')".format, TEXT),
    st.builds("print({!r}, file=sys.stderr)".format, TEXT),
    st.builds("sys.stderr.write({!r})".format, TEXT),
    st.builds("display({!r})".format, TEXT),
    st.builds("display(Markdown({!r}))".format, TEXT),
    st.builds("h.update({!r})".format, TEXT),
    st.sampled_from(FIXED),
)
CELL = st.builds(lambda steps, last: "\n".join([*steps, last]),
                 st.lists(STEP, min_size=1, max_size=8),
                 st.one_of(st.just("pass"), st.builds(repr, TEXT)))  # fmt: skip
SETUP = ("import sys, time\nfrom IPython.display import display, clear_output, Markdown\n"
         "h = display(0, display_id=True)")  # fmt: skip


def outputs(k, code: str) -> list[tuple]:
    """What the cell sent on iopub, in order; a stream's consecutive texts joined (how
    ipykernel cuts them into messages depends on timing)."""
    msg_id = k.send(code)
    got: list[tuple] = []
    while True:
        msg = k.kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "status" and content["execution_state"] == "idle":
            break
        if kind == "stream":
            if got and got[-1][:2] == ("stream", content["name"]):
                got[-1] = ("stream", content["name"], got[-1][2] + content["text"])
            else:
                got.append(("stream", content["name"], content["text"]))
        elif kind in ("display_data", "update_display_data", "execute_result"):
            got.append((kind, content["data"].get("text/plain")))
        elif kind in ("clear_output", "error"):
            got.append((kind, content.get("wait", content.get("ename"))))
    reply = k.kc.get_shell_msg(timeout=60)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = k.kc.get_shell_msg(timeout=60)
    return got


def test_generated_cells_show_their_outputs_in_the_plain_kernels_order(start_kernel):
    plain, durable = start_kernel(kernel_name="python3"), start_kernel()
    for k in (plain, durable):
        k.ok(SETUP)

    @settings(max_examples=30, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(CELL)
    def same(code: str) -> None:
        assert outputs(durable, code) == outputs(plain, code), code

    same()
    # The durable kernel did leave its displays' flushes out (else this proved nothing).
    leaned = "getattr(vars(get_ipython().display_pub).get('_flush_streams'), '__name__', None)"
    assert durable.value(leaned) == "'flush_streams'"


COUNT = """
from ipykernel.iostream import OutStream
_flushes, _flush = [], OutStream.flush
OutStream.flush = lambda self: (_flushes.append(self.name), _flush(self))[1]
"""


def test_a_display_after_no_print_waits_for_no_flush(start_kernel):
    counts = {}
    for name in ("python3", "python3-durable"):
        k = start_kernel(kernel_name=name)
        k.ok("from IPython.display import display\n" + COUNT)
        k.ok("_flushes.clear()\ndisplay(1)\ndisplay(2)\n3")
        quiet = k.value("n = list(_flushes); n")
        k.ok("_flushes.clear()\nprint('a')\ndisplay(1)")
        after_print = k.value("n = list(_flushes); n")
        counts[name] = eval(quiet), eval(after_print)  # (lists of 'stdout' and 'stderr')
    plain, durable = counts["python3"], counts["python3-durable"]
    # Plain: both streams before each display and the result; durable: neither.
    assert len(plain[0]) - len(durable[0]) == 2 * 3, counts
    # After a print, its stream is flushed before the display, and only it.
    assert len(plain[1]) - len(durable[1]) == 1 and durable[1][0] == "stdout", counts
    # Before the reply and after it, both still are (the reply has a socket of its own).
    assert durable[0] == ["stdout", "stderr"] * 2, counts


def test_unloading_gives_ipykernel_its_flushes_back(start_kernel):
    k = start_kernel()
    probe = (
        "ip = get_ipython()\nsorted(n for n, o in [('pub', ip.display_pub), "
        "('hook', ip.displayhook), ('out', sys.stdout), ('err', sys.stderr)] if "
        "{'_flush_streams', 'finish_displayhook', '_flush', 'flush'} & vars(o).keys())"
    )
    k.ok("import sys")
    assert k.value(probe) == "['err', 'hook', 'out', 'pub']"
    k.ok("%unload_ext durable_nb")
    assert k.value(probe) == "[]"
    k.ok("print('a')\nfrom IPython.display import display\ndisplay(1)")  # ipykernel's own
    k.ok("%load_ext durable_nb")
    assert k.value(probe) == "['err', 'hook', 'out', 'pub']"


def test_outputs_arrive_before_the_reply(start_kernel):
    """The flushes before a reply stay: nothing the cell showed comes after it."""
    k = start_kernel()
    k.ok("from IPython.display import display")
    for _ in range(20):
        msg_id = k.send("for i in range(30):\n    display(i)")
        reply = k.kc.get_shell_msg(timeout=60)
        shown = 0
        while True:  # everything on iopub that came before the reply was read
            try:
                msg = k.kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "display_data":
                shown += 1
        assert reply["content"]["status"] == "ok" and shown == 30
