"""The signing secret: made strong, refused when someone else could know it (issue 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from durable_nb import trust


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh Jupyter data folder and no secret cached in this process."""
    folder = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(folder))
    monkeypatch.setattr(trust, "_secret", None)
    return folder


def fresh_key() -> bytes:
    trust._secret = None
    return trust.secret()


def test_a_new_secret_is_random_private_and_kept(data_dir: Path, capsys) -> None:
    key = fresh_key()
    path = data_dir / trust.SECRET_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key.decode())) >= trust.MIN_BYTES
    assert fresh_key() == key  # the next process reads the same one
    assert "durable_nb:" not in capsys.readouterr().err


def plant(data_dir: Path, content: bytes, mode: int = 0o600) -> Path:
    data_dir.mkdir(mode=0o700, exist_ok=True)
    path = data_dir / trust.SECRET_NAME
    path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    ("content", "mode", "why"),
    [
        (b"", 0o600, "0 bytes"),
        (b"abc", 0o600, "3 bytes"),
        (b"00" * 32, 0o600, "random"),  # long enough, but one repeated byte
        (os.urandom(32).hex().encode(), 0o644, "mode 0644"),
        (os.urandom(32).hex().encode(), 0o640, "mode 0640"),
    ],
    ids=["empty", "short", "repeated", "mode-0644", "mode-0640"],  # xdist: the same ids everywhere
)
def test_a_weak_or_exposed_secret_is_refused(data_dir, capsys, content, mode, why) -> None:
    path = plant(data_dir, content, mode)
    key = fresh_key()
    assert key != content and len(key) >= trust.MIN_BYTES  # a process key, never the weak one
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("durable_nb:")]
    assert len(lines) == 1 and str(path) in lines[0] and why in lines[0], err
    assert path.read_bytes() == content  # refused, not silently replaced


def test_a_symlinked_secret_is_refused(data_dir: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(os.urandom(32).hex().encode())
    target.chmod(0o600)
    data_dir.mkdir(mode=0o700)
    (data_dir / trust.SECRET_NAME).symlink_to(target)
    assert fresh_key() != target.read_bytes()
    assert "symbolic link" in capsys.readouterr().err


def test_a_folder_others_can_write_is_refused(data_dir: Path, capsys) -> None:
    data_dir.mkdir()
    data_dir.chmod(0o777)
    fresh_key()
    err = capsys.readouterr().err
    assert "writable by others" in err and str(data_dir) in err
    assert not (data_dir / trust.SECRET_NAME).exists()


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to another user")
def test_a_secret_owned_by_someone_else_is_refused(data_dir: Path, capsys) -> None:
    path = plant(data_dir, os.urandom(32).hex().encode())
    os.chown(path, 12345, 12345)
    assert fresh_key() != path.read_bytes()
    assert "owned by user id 12345" in capsys.readouterr().err
