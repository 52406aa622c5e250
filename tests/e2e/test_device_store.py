"""The device store at rest: sealed with the app's key, no plaintext on disk, a wrong key
refused with a clear error."""

import sqlite3
from pathlib import Path

import pytest

import diaban
from conftest import KEY, Server, StaticKey

SECRET_PLACE = "Nhà ông Vàng A Sùng, bản Huổi Lèng"
SECRET_NOTE = "Người báo tin: Giàng Thị Mỷ"


def disk_bytes(path: str) -> bytes:
    return b"".join(p.read_bytes() for p in Path(path).parent.glob(Path(path).name + "*"))


def test_the_store_file_holds_no_plaintext_value_or_token(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)
    phone.set_field(record, "place", diaban.FieldValue.TEXT(SECRET_PLACE))
    phone.set_field(record, "notes", diaban.FieldValue.TEXT(SECRET_NOTE))
    phone.sync()
    phone.close_store()

    raw = disk_bytes(device_path)
    assert len(raw) > 10_000
    for secret in [SECRET_PLACE, SECRET_NOTE, "Huổi Lèng", "Lò Văn Cơ Sở", "canbo.muonggion"]:
        assert secret.encode("utf-8") not in raw, f"{secret!r} is on disk in clear"
    with sqlite3.connect(device_path) as db:
        token = db.execute("SELECT value FROM settings WHERE key = 'token'").fetchone()[0]
    # Sealed: nonce (24) + the 64-character token encrypted + tag (16), not the token itself.
    assert isinstance(token, bytes) and len(token) == 24 + 64 + 16
    assert not all(chr(b) in "0123456789abcdef" for b in token)

    reopened = diaban.Device.open(device_path, KEY, server.url, "phone")
    assert {i.name: i.display for i in reopened.record(record).items}["place"] == SECRET_PLACE
    reopened.close_store()


def test_a_wrong_key_is_a_clear_error_and_changes_nothing(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)
    phone.close_store()

    with pytest.raises(diaban.DiabanError.WrongKey):
        diaban.Device.open(device_path, StaticKey(bytes(32)), server.url, "phone")
    with pytest.raises(diaban.DiabanError.WrongKey):
        diaban.Device.open(device_path, StaticKey(b"too short"), server.url, "phone")


    class LockedPhone(diaban.KeyProvider):
        def store_key(self):
            raise diaban.KeyError.Unavailable("the Keystore is locked")

    with pytest.raises(diaban.DiabanError.KeyUnavailable) as locked:
        diaban.Device.open(device_path, LockedPhone(), server.url, "phone")
    assert "mở khoá điện thoại" in str(locked.value)

    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    assert [r.id for r in phone.records(None, None)] == [record]
    phone.close_store()


def test_edits_append_chunks_that_fold_into_a_snapshot_without_losing_history(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)

    def chunks():
        with sqlite3.connect(device_path) as db:
            return db.execute("SELECT COUNT(*) FROM record_chunks WHERE record_id = ?", (record,)).fetchone()[0]

    for n in range(1, 11):
        phone.set_field(record, "participants", diaban.FieldValue.INTEGER(n))
    assert chunks() == 10, "each edit appends a small chunk"
    for n in range(11, 41):
        phone.set_field(record, "participants", diaban.FieldValue.INTEGER(n))
    assert chunks() == 40 - 32, "32 chunks were folded into the snapshot"
    phone.close_store()

    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    history = phone.history(record, "participants")
    assert [h.new_value for h in history] == [str(n) for n in range(1, 41)], "the snapshot keeps every change"
    assert phone.sync().accepted == [record], "the whole history still syncs"
    phone.close_store()
