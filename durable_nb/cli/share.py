"""Sharing a journal: ``export`` / ``import`` of one signed file, ``trust``, and ``gc``.

The export is a zip: the notebook, its journal (``journal/<stem>.duckdb``, its WAL) and
the blobs it refers to, a ``manifest.json`` of every member's SHA-256, and this user's
signature of the manifest as the zip comment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..blobs import is_name
from ..errors import CommandError, JournalError
from ._exit import OK, USAGE
from ._journal import ensure_not_held, journal_path, open_journal

EXPORT_FORMAT = "durable-nb-export"


def cmd_export(args: argparse.Namespace) -> int:
    """``durable-nb export``: the notebook, its journal and its blobs, in one signed file."""
    path = args.notebook.expanduser().resolve()
    if not path.is_file():
        raise CommandError(USAGE, f"no notebook at {path}")
    from ..store import copy_journal

    journal = journal_path(path)
    with tempfile.TemporaryDirectory(prefix="durable-nb-export-") as tmp:
        with open_journal(journal, copy=args.copy) as j:
            blobs = sorted(j.referenced_blobs())
            j.checkpoint()  # the .duckdb file is whole: the copy needs no log
            copy = copy_journal(j.path, Path(tmp))
        blob_dir = journal.with_suffix(".blobs")
        # Names come from the journal: only content hashes, only regular files of the folder
        # (never a path leaving it, never a symlink planted in it) go into the archive.
        blobs = [b for b in blobs if is_name(b)]
        missing = [b for b in blobs if not _regular(blob_dir / b)]
        if missing:
            print(
                f"durable-nb: warning: {len(missing)} blob files the journal refers to are "
                f"missing from {blob_dir}",
                file=sys.stderr,
            )
        out = args.output.expanduser()
        size = _write_archive(
            out,
            path.name,
            path.read_bytes(),
            copy,
            [(b, blob_dir / b) for b in sorted(set(blobs) - set(missing))],
        )
    from .. import trust

    print(
        f"durable-nb: exported {path.name} with its journal and {len(blobs)} blob files to "
        f"{out} ({size / 1e6:.1f} MB), signed by you (key {trust.key_id()})"
    )
    return OK


def _regular(path: Path) -> bool:
    """True for a regular file that is not a symbolic link."""
    import stat

    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _write_archive(
    out: Path, nb_name: str, nb_bytes: bytes, journal: Path, blobs: list[tuple[str, Path]]
) -> int:
    """Write the export zip: members, a manifest of their SHA-256, the signature as comment."""
    import hashlib
    import zipfile

    from .. import trust
    from ..store import write_whole

    stem = Path(nb_name).stem
    members: list[tuple[str, Path | bytes]] = [(nb_name, nb_bytes)]
    members.append((f"journal/{stem}.duckdb", journal))
    if Path(f"{journal}.wal").exists():
        members.append((f"journal/{stem}.duckdb.wal", Path(f"{journal}.wal")))
    members += [(f"journal/{stem}.blobs/{name}", p) for name, p in blobs]
    files = {}
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(archive: Any) -> None:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for name, content in members:
                h = hashlib.sha256()
                if isinstance(content, bytes):
                    h.update(content)
                    z.writestr(name, content)
                else:
                    info = zipfile.ZipInfo(name, time.localtime()[:6])
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with open(content, "rb") as f, z.open(info, "w", force_zip64=True) as dst:
                        while block := f.read(1 << 20):
                            h.update(block)
                            dst.write(block)
                files[name] = h.hexdigest()
            manifest = json.dumps(
                {
                    "format": EXPORT_FORMAT,
                    "version": 1,
                    "notebook": nb_name,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "host": socket.gethostname(),
                    "signer": trust.key_id(),
                    "files": files,
                },
                indent=1,
                sort_keys=True,
            ).encode()
            z.writestr("manifest.json", manifest)
            z.comment = json.dumps(
                {"signer": trust.key_id(), "sig": trust.sign_bytes(manifest)}
            ).encode()

    # A file of a random name, then renamed into place: a link shipped at a fixed name
    # (``.<out>.tmp``) had the file it pointed to overwritten (helper-57 F3).
    write_whole(out, write)
    return out.stat().st_size


#: Environment variable: most bytes an import unpacks (default :func:`import_limit`).
LIMIT_ENV = "DURABLE_NB_IMPORT_LIMIT"


def import_limit(archive_size: int) -> int:
    """Most bytes an import unpacks: 10x the archive + 1 GiB, or ``$DURABLE_NB_IMPORT_LIMIT``.

    A small archive that would unpack to far more (a zip bomb) is refused before a byte
    is written.
    """
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if raw:
        try:
            return int(raw)
        except ValueError:
            raise CommandError(USAGE, f"{LIMIT_ENV}={raw!r} is not a number of bytes") from None
    return 10 * archive_size + (1 << 30)


def _read_archive(file: Path) -> tuple[Any, dict[str, Any], bool]:
    """Open an export, check every member against its manifest; return (zip, manifest, mine)."""
    import hashlib
    import zipfile
    import zlib

    from .. import trust

    if not file.is_file():
        raise CommandError(USAGE, f"no file at {file}")
    # What reading a crafted or damaged zip (or one of its members) may raise.
    damaged = (zipfile.BadZipFile, OSError, EOFError, NotImplementedError)
    try:
        z = zipfile.ZipFile(file)
        info = z.getinfo("manifest.json")
        if info.file_size > 1 << 26:
            raise ValueError("manifest.json is too big")
        raw = z.read(info)
        manifest = json.loads(raw)
    except (*damaged, KeyError, ValueError, RecursionError) as exc:
        raise CommandError(
            USAGE, f"{file} is not a file written by durable-nb export ({exc})"
        ) from None
    if type(manifest) is not dict:
        raise CommandError(USAGE, f"{file} is not a file written by durable-nb export")
    nb_name = manifest.get("notebook", "")
    files = manifest.get("files")
    if (
        manifest.get("format") != EXPORT_FORMAT
        or type(nb_name) is not str
        or not re.fullmatch(r"[^/\\\x00-\x1f\x7f]+\.ipynb", nb_name)
        or type(files) is not dict
        or not all(type(v) is str for v in files.values())
    ):
        raise CommandError(USAGE, f"{file} is not a file written by durable-nb export")
    stem = Path(nb_name).stem
    allowed = {nb_name, f"journal/{stem}.duckdb", f"journal/{stem}.duckdb.wal"}
    members = [i for i in z.infolist() if i.filename != "manifest.json"]
    names = [i.filename for i in members]
    if len(set(names)) != len(names) or set(names) != set(files):
        raise CommandError(
            USAGE, f"{file}: its members do not match its manifest (missing, extra or repeated)"
        )
    total, limit = sum(i.file_size for i in members), import_limit(file.stat().st_size)
    if total > limit:
        raise CommandError(
            USAGE,
            f"{file} would unpack to {total / 1e6:.0f} MB, more than the limit of "
            f"{limit / 1e6:.0f} MB (10x the file + 1 GiB); set {LIMIT_ENV}=BYTES to allow it",
        )
    for name in names:
        blob = name.removeprefix(f"journal/{stem}.blobs/")
        ok = name in allowed or (blob != name and is_name(blob))
        if not ok:
            raise CommandError(
                USAGE, f"{file} holds an unexpected member {name[:200]!r}; not importing it"
            )
        h = hashlib.sha256()
        try:
            with z.open(name) as f:
                while block := f.read(1 << 20):
                    h.update(block)
        except (*damaged, zlib.error, RuntimeError) as exc:  # RuntimeError: encrypted
            raise CommandError(
                USAGE, f"{file} is damaged: {name} cannot be read ({exc}); not importing it"
            ) from None
        if h.hexdigest() != files[name]:
            raise CommandError(USAGE, f"{file} is damaged: {name} does not match its manifest")
    if f"journal/{stem}.duckdb" not in z.namelist():
        raise CommandError(USAGE, f"{file} holds no journal")
    try:
        seal = json.loads(z.comment or b"{}")
    except (ValueError, RecursionError):
        seal = {}
    mine = trust.verify("export", raw, seal.get("sig") if type(seal) is dict else None)
    return z, manifest, mine


def cmd_import(args: argparse.Namespace) -> int:
    """``durable-nb import``: unpack an export beside a notebook of its name."""
    from .. import trust

    file = args.file.expanduser().resolve()
    z, manifest, mine = _read_archive(file)
    nb_name = manifest["notebook"]
    folder = args.dir.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    notebook = folder / nb_name
    # Never written through (a link to ~/.bashrc shipped at its name: helper-57 F2), nor
    # read from a FIFO (which hung) or a folder.
    if (notebook.exists() or notebook.is_symlink()) and not _regular(notebook):
        raise CommandError(USAGE, f"{notebook} is not a regular file (a link, a pipe or a "
                           "folder): nothing is written through it; move it aside")  # fmt: skip
    journal = journal_path(notebook)
    nb_bytes = z.read(nb_name)
    if notebook.exists() and notebook.read_bytes() != nb_bytes and not args.force:
        raise CommandError(
            USAGE,
            f"{notebook} exists and differs from the one in {file}; move it aside or pass --force",
        )
    from ..store import blobs_path, check_folder, journal_files, remove_journal, write_whole

    try:
        check_folder(journal.parent)
    except JournalError as exc:
        raise CommandError(USAGE, str(exc)) from None
    there = [p for p in (*journal_files(journal), blobs_path(journal))
             if p.exists() or p.is_symlink()]  # fmt: skip
    if there:
        if journal.exists():
            ensure_not_held(journal)
        if not args.force:
            raise CommandError(USAGE, f"{notebook} already has a journal ({there[0]}); pass "
                               "--force to replace it")  # fmt: skip
    journal.parent.mkdir(parents=True, exist_ok=True)
    remove_journal(journal)
    for name in z.namelist():
        if name == "manifest.json" or name == nb_name:
            continue
        target = journal.parent / name.removeprefix("journal/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with z.open(name) as src, open(target, "xb") as dst:  # new: nothing planted there
            shutil.copyfileobj(src, dst, 1 << 20)
    if not notebook.exists() or notebook.read_bytes() != nb_bytes:
        write_whole(notebook, lambda f: f.write(nb_bytes))
    with open_journal(journal, copy_hint=False) as j:
        # A journal of its own. What it holds signed by you stays so only in an export
        # you sealed: one changed since, or crafted, may carry records of your journals.
        j.rebind(keep=mine)
        untrusted = j.untrusted()
    print(f"durable-nb: imported {nb_name} to {notebook} with its journal {journal}")
    if mine and not untrusted:
        print("durable-nb: it was signed by you: it replays and restores as is")
    else:
        who = "by you" if mine else f"by another user (key {manifest.get('signer', '?')})"
        print(
            f"durable-nb: it was exported {who} and is not trusted here: JSON results "
            "replay, pickled results and snapshots are refused; "
            + trust.HOW_TO_TRUST.format(target=notebook)
        )
    return OK


def cmd_gc(args: argparse.Namespace) -> int:
    """``durable-nb gc``: delete blob files that nothing in the journal refers to."""
    with open_journal(journal_path(args.notebook), copy_hint=False) as j:
        count, freed = j.gc()
    print(f"durable-nb: removed {count} unreferenced payload files ({freed / 1e6:.1f} MB)")
    return OK


def cmd_trust(args: argparse.Namespace) -> int:
    """``durable-nb trust``: sign a journal's (or an export's) content as this user's."""
    import zipfile

    from .. import trust

    target = args.target.expanduser().resolve()
    if target.suffix not in (".ipynb", ".duckdb") and zipfile.is_zipfile(target):
        z, manifest, _ = _read_archive(target)
        nb_name = manifest["notebook"]
        with tempfile.TemporaryDirectory(prefix="durable-nb-trust-") as tmp:
            z.extractall(tmp)
            z.close()
            journal = Path(tmp) / "journal" / f"{Path(nb_name).stem}.duckdb"
            from ..store import Journal

            j = Journal.open(journal)
            try:
                n = j.trust()
            finally:
                j.close()
            blob_dir = journal.with_suffix(".blobs")
            blobs = sorted(blob_dir.iterdir()) if blob_dir.is_dir() else []
            _write_archive(
                target,
                nb_name,
                (Path(tmp) / nb_name).read_bytes(),
                journal,
                [(b.name, b) for b in blobs],
            )
        print(
            f"durable-nb: trusted {target}: {n} records signed as yours "
            f"(key {trust.key_id()}); importing it now gives a trusted journal"
        )
        return OK
    if not target.exists():
        raise CommandError(USAGE, f"no notebook, journal or exported file at {target}")
    journal = journal_path(target)
    with open_journal(journal, copy_hint=False) as j:
        n = j.trust()
    print(f"durable-nb: trusted {journal}: {n} records signed as yours (key {trust.key_id()})")
    return OK
