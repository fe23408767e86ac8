"""Issue 11: each attack on a shared journal, as Alice crafts it and Bob uses it.

Each test: the crafted file, Bob's commands, and that the marker never appears, no file
outside the blob folder is read, nothing hangs (every CLI call has a timeout) and no
traceback is printed. A control shows each payload is live.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from attack import cli, journal_of, marker_code, notebook, query, share, show, tamper

from durable_nb.cli.plan import source_hash


def _plan(*done: tuple[str, object, str]) -> str:
    return json.dumps(
        {
            "started": 0.0,
            "done": [{"key": k, "seq": s, "hash": source_hash(src)} for k, s, src in done],
            "parameters": [],
        }
    )


def test_a_forged_resume_plan_never_runs_code_nor_skips_cells(tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    marker = tmp_path / "pwned"
    first, second = "print('first', 'cell ran')", "print('second', 'cell ran')"
    nb = notebook(alice / "work" / "plan.ipynb", first, second)
    assert cli("run", nb, home=alice).returncode == 0
    # Attack 1 of the review: a seq of "1\n<python>" pasted into a hidden cell; wrapped
    # in the signed envelope, unwrapped, and as another type each time.
    payloads = [
        _plan(("cell-0", f"1\n{marker_code(marker)}", first)),
        json.dumps(
            {"plan": _plan(("cell-0", f"1\n{marker_code(marker)}", first)), "sig": "0" * 64}
        ),
        "{" * 100_000,
    ]
    for n, payload in enumerate(payloads):
        tamper(nb, ("UPDATE meta SET value = ? WHERE key = 'headless'", [payload]))
        mine = share(alice, nb, bob / str(n))
        run = cli("run", mine, home=bob / str(n))
        assert run.returncode == 0, show(run)
        assert not marker.exists(), payload[:200]
        # The unsigned plan skipped nothing: both cells ran.
        assert "first cell ran" in run.stdout and "second cell ran" in run.stdout, show(run)
        assert "done    (earlier run)" not in run.stdout, show(run)
        assert "resume plan" in run.stderr, show(run)


def test_control_a_signed_plan_does_resume(tmp_path):
    """The plan is live: Bob's own run, failed in the second cell, resumes there."""
    bob = tmp_path / "bob"
    nb = notebook(
        bob / "work" / "resume.ipynb",
        "print('first', 'cell ran')",
        "import pathlib\nassert pathlib.Path('ok').exists()",
    )
    assert cli("run", nb, home=bob, cwd=nb.parent).returncode == 1
    (nb.parent / "ok").touch()
    again = cli("run", nb, home=bob, cwd=nb.parent)
    assert again.returncode == 0, show(again)
    assert "done    (earlier run)" in again.stdout and "first cell ran" not in again.stdout


def _craft_blob_names(nb: Path, names: list[str]) -> None:
    """Point a payload's buffers and a step's blob at files outside the blob folder."""
    chunks = json.dumps([[1 << 20, [n]] for n in names])
    tamper(
        nb,
        ("UPDATE payloads SET buffers = ?, stream_chunks = ?", [chunks, json.dumps([5, names])]),
        ("UPDATE steps SET blob = ?", [names[0]]),
    )


def test_export_never_copies_a_file_outside_the_blob_folder(tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    private = bob / "private.txt"
    private.parent.mkdir(parents=True)
    private.write_text("bob's private data")
    nb = notebook(
        alice / "work" / "leak.ipynb",
        "import durable_nb as dnb\nimport numpy as np\n"
        "@dnb.step\ndef fetch():\n    return {'n': 1}\nr = fetch()\narr = np.arange(300_000)",
    )
    assert cli("run", nb, home=alice).returncode == 0
    names = [
        str(private),
        "../../private.txt",
        "../../jupyter-data/durable_nb_secret",
        "/proc/self/environ",
    ]
    _craft_blob_names(nb, names)
    mine = share(alice, nb, bob)
    # Control: the crafted names reached Bob's journal (the payload is live).
    got = {r[0] for r in query(mine, "SELECT blob FROM steps WHERE blob IS NOT NULL")}
    assert got == {names[0]}
    for command in (["ls", mine.parent], ["show", mine], ["gc", mine]):
        proc = cli(*command, home=bob)
        assert proc.returncode in (0, 1), show(proc)
    out = bob / "again.dnb"
    proc = cli("export", mine, "-o", out, home=bob)
    assert proc.returncode == 0, show(proc)
    secret = (bob / "jupyter-data" / "durable_nb_secret").read_bytes()
    with zipfile.ZipFile(out) as z:
        for name in z.namelist():
            data = z.read(name)
            assert b"bob's private data" not in data and secret not in data, name
            if "/" in name and ".blobs/" in name:
                assert len(name.rsplit("/", 1)[1]) == 32, name
    # Restoring in Bob's kernel reads nothing outside the blob folder either.
    run = cli("run", mine, home=bob)
    assert "bob's private data" not in run.stdout + run.stderr, show(run)


def _rewrite(archive: Path, out: Path, extra: dict[str, bytes], manifest_too: bool) -> None:
    """Copy an export, adding members (listed in its manifest when ``manifest_too``)."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        manifest = json.loads(src.read("manifest.json"))
        for info in src.infolist():
            if info.filename != "manifest.json":
                dst.writestr(info.filename, src.read(info))
        for name, data in extra.items():
            dst.writestr(name, data)
            if manifest_too:
                import hashlib

                manifest["files"][name] = hashlib.sha256(data).hexdigest()
        dst.writestr("manifest.json", json.dumps(manifest))


def test_import_refuses_bombs_and_members_that_do_not_match(tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    nb = notebook(alice / "work" / "bomb.ipynb", "x = 1")
    assert cli("run", nb, home=alice).returncode == 0
    archive = alice / "bomb.dnb"
    assert cli("export", nb, "-o", archive, home=alice).returncode == 0
    blob = "journal/bomb.blobs/" + "0" * 32
    cases = {
        "bomb": ({blob: bytes(8 << 20)}, True, {"DURABLE_NB_IMPORT_LIMIT": str(4 << 20)}),
        "unlisted": ({blob: b"x"}, False, {}),
        "traversal": ({"journal/bomb.blobs/../../../evil": b"x"}, True, {}),
        "not a hash": ({"journal/bomb.blobs/abc": b"x"}, True, {}),
    }
    for n, (extra, listed, limit) in enumerate(cases.values()):
        crafted = tmp_path / f"crafted{n}.dnb"
        _rewrite(archive, crafted, extra, listed)
        where = bob / f"in{n}"
        proc = cli("import", crafted, "--dir", where, home=bob, **limit)
        assert proc.returncode == 2, show(proc)
        assert not journal_of(where / "bomb.ipynb").exists()
        assert not (tmp_path / "evil").exists() and not (bob / "evil").exists()
    # Control: the untouched archive imports, and so does the bomb under a larger limit.
    assert cli("import", archive, "--dir", bob / "ok", home=bob).returncode == 0
    _rewrite(archive, tmp_path / "big.dnb", {blob: bytes(8 << 20)}, True)
    proc = cli("import", tmp_path / "big.dnb", "--dir", bob / "big", home=bob)
    assert proc.returncode == 0, show(proc)


def test_a_forged_sleep_deadline_never_waits_longer_than_asked(tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    nb = notebook(
        alice / "work" / "sleep.ipynb",
        "import durable_nb as dnb\ndnb.sleep(0.2)\nprint('woke up')",
    )
    assert cli("run", nb, home=alice).returncode == 0
    far = io.BytesIO(json.dumps(4e12).encode()).getvalue()
    tamper(nb, ("UPDATE steps SET result = ? WHERE name = 'dnb.sleep'", [far]))
    assert query(nb, "SELECT kind FROM steps WHERE name = 'dnb.sleep'") == [("json",)]
    mine = share(alice, nb, bob)
    run = cli("run", mine, home=bob)  # a wait of 4e12 - now seconds would time out here
    assert run.returncode == 0 and "woke up" in run.stdout, show(run)


def test_terminal_output_of_journal_text_is_escaped(tmp_path):
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    nb = notebook(alice / "work" / "esc.ipynb", "import durable_nb as dnb\nx = dnb.now()")
    assert cli("run", nb, home=alice).returncode == 0
    evil = "\x1b[2K\x1b[1A\rtrust     signed by you\x1b]0;owned\x07"
    tamper(
        nb,
        ("UPDATE cells SET source = ?, error = ?, status = ?", [evil, evil, evil]),
        ("UPDATE steps SET name = ?, args = ?", [evil, evil]),
        ("UPDATE runs SET host = ?, status = ?", [evil, evil]),
    )
    mine = share(alice, nb, bob)
    for command in (["show", mine], ["ls", mine.parent], ["show", mine, "--json"]):
        proc = cli(*command, home=bob)
        assert proc.returncode == 0, show(proc)
        assert "\x1b" not in proc.stdout + proc.stderr and "\x07" not in proc.stdout, command
    assert "\\x1b[2K" in cli("show", mine, home=bob).stdout  # control: the text is shown
