"""trust: the per-user secret and the signatures that decide what a load may unpickle."""

from __future__ import annotations

import stat

import pytest

from durable_nb import trust


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    """A Jupyter data folder of this test's own, and no secret cached by the process."""
    folder = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(folder))
    monkeypatch.setattr(trust, "_secret", None)
    return folder


def test_the_secret_is_created_once_private_to_the_user(data_dir):
    key = trust.secret()
    path = data_dir / trust.SECRET_NAME
    assert trust.secret_path() == path
    assert path.read_bytes() == key and len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    trust._secret = None  # a later process reads the same secret
    assert trust.secret() == key


def test_a_signature_verifies_only_the_same_data_in_the_same_domain():
    sig = trust.sign("step", b"payload")
    assert trust.verify("step", b"payload", sig)
    assert trust.verify("step", memoryview(b"payload"), sig)
    assert trust.sign("step", "payload") == sig  # text is signed as its UTF-8
    assert not trust.verify("step", b"payload!", sig)
    assert not trust.verify("snapshot", b"payload", sig)
    assert not trust.verify("step", b"payload", None)
    assert not trust.verify("step", b"payload", "")


def test_another_users_secret_does_not_verify(data_dir, tmp_path, monkeypatch):
    sig, mine = trust.sign("step", b"payload"), trust.key_id()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "someone-else"))
    monkeypatch.setattr(trust, "_secret", None)
    assert not trust.verify("step", b"payload", sig)
    assert trust.key_id() != mine


def test_key_id_is_short_public_and_stable():
    kid = trust.key_id()
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert trust.key_id() == kid
    assert kid not in trust.secret().decode()


def test_an_export_is_signed_in_its_own_domain():
    assert trust.sign_bytes(b"file") == trust.sign("export", b"file")
    assert trust.sign_bytes(b"file") != trust.sign("step", b"file")


def test_an_unusable_data_folder_gives_a_process_secret_and_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(blocker / "jupyter"))
    key = trust.secret()
    assert len(key) == 32 and trust.secret() == key
    err = capsys.readouterr().err
    assert err.startswith("durable_nb: cannot create the signing secret") and err.count("\n") == 1


def test_signatures_are_hmac_sha256_and_rows_keyed_blake2b():
    import hashlib
    import hmac

    key = trust.secret()
    assert trust.sign("step", b"data") == hmac.new(key, b"step\0data", hashlib.sha256).hexdigest()
    fields = b"fields\0steps\x0012:S2:abNI7;B1;\0"  # schema 5: no journal named
    assert trust.sign_fields("steps", ["ab", None, 7, b"\0"], None) == (
        hashlib.blake2b(fields, key=key, digest_size=32).hexdigest()
    )
    bound = b"row\0" + b"a" * 32 + b"\0steps\x0012:S2:abNI7;B1;\0"
    assert trust.sign_fields("steps", ["ab", None, 7, b"\0"], "a" * 32) == (
        hashlib.blake2b(bound, key=key, digest_size=32).hexdigest()
    )


def test_fields_never_run_together():
    signed = {
        trust.sign_fields("t", f, "j")
        for f in (["ab", "c"], ["a", "bc"], [None], [""], [b""], [1], ["1"], [], ["ab"], [b"ab"])
    }
    assert len(signed) == 10
    assert trust.sign_fields("t", ["a"], "j") != trust.sign_fields("u", ["a"], "j")
    assert not trust.verify_fields("t", [1.5], trust.sign_fields("t", [1], "j"), "j")  # no raise
