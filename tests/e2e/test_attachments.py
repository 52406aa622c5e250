"""Photos and files: content-addressed, sealed on the phone, size-limited, uploaded and
downloaded in chunks separately from the documents, resuming after an interruption."""

import hashlib
import sqlite3

import pytest

import diaban
from conftest import KEY, Phones, Server

CHUNK = 64 * 1024

INSPECTION = {
    "id": "site_photo", "version": 1, "kind": "event",
    "label": {"vi": "Ảnh hiện trường", "en": "Site photo"},
    "fields": [
        {"name": "photo", "type": "photo", "label": {"vi": "Ảnh", "en": "Photo"}},
        {"name": "minutes", "type": "file", "label": {"vi": "Biên bản", "en": "Minutes"}},
    ],
}


@pytest.fixture
def phones(server: Server, tmp_path):
    pair = Phones(server, tmp_path, INSPECTION)
    yield pair.a, pair.b
    pair.close()


def photo_bytes(size: int) -> bytes:
    return bytes((i * 7 + i // 251) % 256 for i in range(size))


def server_chunks(server: Server, sha: str, table: str = "attachment_chunks") -> int:
    """Chunks the server holds: of complete attachments, or (`upload_chunks`) of uploads under way."""
    with sqlite3.connect(server.db) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table} WHERE sha256 = ?", (sha,)).fetchone()[0]


def test_an_interrupted_upload_resumes_from_the_last_committed_chunk(phones, server: Server):
    a, b = phones
    data = photo_bytes(5 * CHUNK + 1234)  # 6 chunks
    record = a.create_record("site_photo", None)
    sha = a.attach(record, "photo", data, "image/jpeg")
    assert sha == hashlib.sha256(data).hexdigest()
    assert {i.name: i for i in a.record(record).items}["photo"].display == f"image/jpeg, {len(data)} B"

    # The record waits for its photo (the server takes a reference only to what this user
    # uploaded); the photo goes two chunks, then the link drops.
    assert a.sync_records().accepted == []
    assert a.record(record).unsent
    first = a.transfer_attachments(2)
    assert (first.uploaded_chunks, first.done) == (2, False)
    assert server_chunks(server, sha, "upload_chunks") == 2
    server.stop()
    with pytest.raises(diaban.DiabanError.Unreachable):
        a.transfer_attachments(2)
    server.start()
    rest = a.sync()
    assert (rest.attachments.uploaded_chunks, rest.attachments.uploaded_files) == (4, 1), "resumed at chunk 3, nothing re-sent"
    assert rest.accepted == [record], "the record went once its photo was there"
    assert server_chunks(server, sha) == 6 and server_chunks(server, sha, "upload_chunks") == 0
    assert a.sync().attachments.uploaded_chunks == 0

    # The other phone gets the record and then the photo.
    report = b.sync()
    assert report.pulled_records == 1 and report.attachments.downloaded_files == 1
    assert b.attachment(sha) == data


def test_an_interrupted_download_keeps_its_chunks_and_finishes_later(phones, server: Server, tmp_path):
    a, b = phones
    data = photo_bytes(4 * CHUNK)
    record = a.create_record("site_photo", None)
    sha = a.attach(record, "minutes", data, "application/pdf")
    a.sync()

    assert b.sync_records().pulled_records == 1
    with pytest.raises(diaban.DiabanError.UnknownAttachment):
        b.attachment(sha)
    partial = b.transfer_attachments(2)
    assert (partial.downloaded_chunks, partial.done) == (2, False)
    with sqlite3.connect(tmp_path / "b.sqlite") as db:
        kept = db.execute("SELECT COUNT(*) FROM download_chunks WHERE sha256 = ?", (sha,)).fetchone()[0]
    assert kept == 2
    # The phone restarts; the download goes on from the third chunk.
    b.close_store()
    b = diaban.Device.open(str(tmp_path / "b.sqlite"), KEY, server.url, "B")
    rest = b.transfer_attachments(100)
    assert (rest.downloaded_chunks, rest.downloaded_files, rest.done) == (2, 1, True)
    assert b.attachment(sha) == data
    b.close_store()


def test_size_limits_and_other_communes(phones, server: Server, tmp_path):
    a, _ = phones
    record = a.create_record("site_photo", None)
    with pytest.raises(diaban.DiabanError.TooLarge):
        a.attach(record, "photo", bytes(10 * 1024 * 1024 + 1), "image/jpeg")
    with pytest.raises(diaban.DiabanError.InvalidValue):
        a.attach(a.create_record("propaganda_session", None), "notes", b"x", "text/plain")
    sha = a.attach(record, "photo", photo_bytes(1000), "image/png")
    a.sync()

    other = diaban.Device.open(str(tmp_path / "c.sqlite"), KEY, server.url, "C")
    other.login("canbo.sopcop", "canbo-mat-khau")
    token = server.token("canbo.sopcop", "canbo-mat-khau")
    status, body = server.get(f"/api/v1/attachments/{sha}?offset=0&length=100", {"authorization": "Bearer " + token})
    assert status == 404 and body["error"]["code"] == "not_found", "another commune's photo is not reachable"
    other.close_store()
