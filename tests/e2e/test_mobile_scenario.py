"""What a phone app does in a day, through the pip-installed Python binding: sign in, work
offline, sync with progress, settle a conflict with a colleague's phone, receive a reviewer's
comment, fix and resubmit, find records, see refused changes kept in quarantine, and stop a
long sync halfway without losing or repeating anything. The Kotlin suite in bindings/kotlin
runs the same scenario on the JVM."""

import asyncio
import hashlib
import sqlite3
import threading

import pytest

import diaban
from conftest import KEY, Reviewer, Server, TestCA, fill_session


class Progress(diaban.SyncListener):
    def __init__(self, on_report=None):
        self.seen = []
        self.threads = set()
        self.on_report = on_report

    def on_progress(self, progress):
        self.seen.append(progress)
        self.threads.add(threading.get_ident())
        if self.on_report:
            self.on_report(progress)


def text(value: str):
    return diaban.FieldValue.TEXT(value)


def display(phone, record, name):
    return {i.name: i.display for i in phone.record(record).items}[name]


def server_state(server: Server, record: str) -> str:
    with sqlite3.connect(server.db) as db:
        return db.execute("SELECT state FROM records WHERE id = ?", (record,)).fetchone()[0]


def test_a_day_on_the_phone(https_server: Server, tmp_path):
    # Over the server's own HTTPS, the phones trusting the province's authority.
    server = https_server
    assert server.url.startswith("https://")
    a = server.phone(tmp_path / "a.sqlite", "Điện thoại A")
    b = server.phone(tmp_path / "b.sqlite", "Điện thoại B")
    assert KEY.calls >= 2, "the key comes from the host's provider"
    account = a.login("canbo.muonggion", "canbo-mat-khau")
    assert (account.unit_code, account.unit_name, account.role) == ("03694", "Xã Mường Giôn", "field_officer")
    b.login("canbo2.muonggion", "canbo-mat-khau")
    assert "propaganda_session" in [t.id for t in a.templates()]
    assert [(u.code, u.name, u.level) for u in a.units()] == [("03694", "Xã Mường Giôn", "commune")]

    # Offline: the record is made and kept; the sync fails with a sentence the officer reads.
    server.stop()
    record = a.create_record("propaganda_session", None)
    fill_session(a, record, place="Bến xe khách Mường Giôn")
    with pytest.raises(diaban.DiabanError.Unreachable) as offline:
        asyncio.run(a.sync_async())
    assert "Dữ liệu vẫn được lưu trên máy" in str(offline.value)
    assert a.record(record).unsent

    # Back in coverage: one sync, with progress reported off the caller's thread.
    server.start()
    progress = Progress()
    report = asyncio.run(a.sync_async(progress, diaban.SyncCancel()))
    assert report.accepted == [record] and report.rejected == []
    assert progress.seen[-1].phase == diaban.SyncPhase.DONE
    assert progress.seen[-1].records_accepted == 1
    assert progress.seen[-1].round_trips == report.round_trips
    assert progress.seen[-1].bytes_up == report.bytes_up
    assert threading.get_ident() not in progress.threads
    assert not a.record(record).unsent

    # Both phones change the place while apart; A sees both values and keeps B's.
    b.sync()
    a.set_field(record, "place", text("Bến xe khách"))
    b.set_field(record, "place", text("Trạm y tế xã"))
    a.sync()
    b.sync()
    a.sync()
    [conflict] = a.conflicts(record)
    assert conflict.path == "place" and conflict.label == "Địa điểm"
    by = [v.by for v in conflict.values]
    assert sorted(by) == ["canbo.muonggion", "canbo2.muonggion"]
    a.resolve_conflict(record, "place", by.index("canbo2.muonggion"))
    a.sync()
    b.sync()
    for phone in (a, b):
        assert phone.conflicts(record) == []
        assert display(phone, record, "place") == "Trạm y tế xã"

    # Submitted, returned by the province with a comment, fixed and submitted again.
    a.submit(record)
    a.sync()
    Reviewer(server).review(record, "return", "Số người tham dự chưa khớp biên bản (60 người).")
    a.sync()
    view = a.record(record)
    assert (view.state, view.editable) == ("returned", True)
    assert view.review_comment == "Số người tham dự chưa khớp biên bản (60 người)."
    a.set_field(record, "participants", diaban.FieldValue.INTEGER(60))
    a.submit(record)
    assert a.sync().accepted == [record]
    assert server_state(server, record) == "submitted"
    assert a.record(record).review_comment is None

    # Found by what was written in it, with or without diacritics.
    assert [r.id for r in a.search("tram y te", None)] == [record]
    assert [r.id for r in a.search("Trạm Y TẾ", "propaganda_session")] == [record]
    assert a.search("nhà văn hoá", None) == []

    # Errors speak the officer's language, Vietnamese by default.
    with pytest.raises(diaban.DiabanError.NotEditable) as locked:
        a.set_field(record, "place", text("x"))
    assert locked.value.reason == "Hồ sơ đang ở trạng thái đã gửi nên không sửa được."
    a.set_language("en")
    with pytest.raises(diaban.DiabanError.NotEditable) as locked:
        a.set_field(record, "place", text("x"))
    assert locked.value.reason == "The record is submitted and cannot be edited now."
    a.close_store()
    b.close_store()


def test_a_refused_change_stays_in_quarantine_until_the_record_can_take_it(server: Server, tmp_path):
    a = diaban.Device.open(str(tmp_path / "a.sqlite"), KEY, server.url, "A")
    b = diaban.Device.open(str(tmp_path / "b.sqlite"), KEY, server.url, "B")
    a.login("canbo.muonggion", "canbo-mat-khau")
    b.login("canbo2.muonggion", "canbo-mat-khau")
    record = a.create_record("propaganda_session", None)
    fill_session(a, record)
    a.sync()
    b.sync()

    # A submits; B, not yet aware, clears a required answer: merged, the submission is invalid.
    a.submit(record)
    a.sync()
    b.clear_field(record, "place")
    assert b.sync().accepted == []
    [held] = b.quarantined()
    assert (held.record_id, held.template_id, held.code) == (record, "propaganda_session", "invalid_submission")
    assert held.message
    b.sync()
    assert [q.record_id for q in b.quarantined()] == [record], "kept and offered again, never dropped"

    # The reviewer returns the record; B's change now fits, and the quarantine empties.
    Reviewer(server).review(record, "return", "Bổ sung địa điểm.")
    b.sync()
    b.set_field(record, "place", text("Nhà văn hóa bản Nà Sản"))
    report = b.sync()
    assert report.accepted == [record]
    assert b.quarantined() == []
    a.close_store()
    b.close_store()


def test_a_long_sync_stops_when_cancelled_and_the_next_one_finishes_without_repeats(server: Server, tmp_path):
    token = server.token("quantri", "quantri-mat-khau")
    photo_template = {
        "id": "site_photo", "version": 1, "kind": "event",
        "label": {"vi": "Ảnh hiện trường", "en": "Site photo"},
        "fields": [{"name": "photo", "type": "photo", "label": {"vi": "Ảnh", "en": "Photo"}}],
    }
    assert server.publish(photo_template, token)[0] == 201
    phone = diaban.Device.open(str(tmp_path / "a.sqlite"), KEY, server.url, "A")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("site_photo", None)
    data = bytes((i * 31 + i // 997) % 256 for i in range(4 * 1024 * 1024))  # 64 chunks
    sha = phone.attach(record, "photo", data, "image/jpeg")

    cancel = diaban.SyncCancel()
    listener = Progress(lambda p: cancel.cancel() if p.chunks_uploaded >= 1 else None)
    with pytest.raises(diaban.DiabanError.Cancelled) as stopped:
        asyncio.run(phone.sync_async(listener, cancel))
    assert "lần sau sẽ tiếp tục" in str(stopped.value)
    sent_before = max(p.chunks_uploaded for p in listener.seen)
    assert 1 <= sent_before < 64

    report = asyncio.run(phone.sync_async())
    # No chunk is sent twice. The chunk in flight when the cancel landed may have reached the
    # server without its answer reaching the phone; the next sync then starts after it.
    assert 64 - sent_before - 1 <= report.attachments.uploaded_chunks <= 64 - sent_before
    assert report.attachments.done
    with sqlite3.connect(server.db) as db:
        stored = b"".join(c for (c,) in db.execute(
            "SELECT data FROM attachment_chunks WHERE sha256 = ? ORDER BY offset", (sha,)))
    assert hashlib.sha256(stored).hexdigest() == sha

    # A cancel given before the start stops at once, with nothing sent.
    stopped_early = diaban.SyncCancel()
    stopped_early.cancel()
    with pytest.raises(diaban.DiabanError.Cancelled):
        asyncio.run(phone.sync_async(None, stopped_early))
    phone.close_store()


def test_the_phone_talks_only_to_the_right_server_and_only_over_https(https_server: Server, tmp_path):
    server = https_server
    # A certificate from an authority the phone does not trust: refused, nothing sent.
    stranger = diaban.Device.open(str(tmp_path / "s.sqlite"), KEY, server.url, "S")
    stranger.set_tls([], TestCA(tmp_path / "other").root_pem)
    with pytest.raises(diaban.DiabanError.Certificate) as untrusted:
        stranger.login("canbo.muonggion", "canbo-mat-khau")
    assert untrusted.value.problem == "unknown_issuer"
    assert "không được tin cậy" in untrusted.value.reason
    # The right authority with the wrong pin, then the right pin.
    pinned = diaban.Device.open(str(tmp_path / "p.sqlite"), KEY, server.url, "P")
    pinned.set_tls(["ab" * 32], server.tls.root_pem)
    with pytest.raises(diaban.DiabanError.Certificate) as mismatch:
        pinned.login("canbo.muonggion", "canbo-mat-khau")
    assert mismatch.value.problem == "pin_mismatch"
    pinned.set_tls([server.tls.pin], server.tls.root_pem)
    assert pinned.login("canbo.muonggion", "canbo-mat-khau").unit_code == "03694"
    with sqlite3.connect(server.db) as db:
        assert db.execute("SELECT COUNT(*) FROM devices").fetchone()[0] == 1, "only the pinned phone got through"
    # Plain HTTP to anywhere but the phone itself: refused before anything leaves.
    with pytest.raises(diaban.DiabanError.Insecure):
        diaban.Device.open(str(tmp_path / "h.sqlite"), KEY, "http://diaban.sonla.gov.vn", "H")
    for phone in (stranger, pinned):
        phone.close_store()


def test_the_app_lock_needs_the_host_key_and_the_pin(https_server: Server, tmp_path):
    import time

    server = https_server
    path = tmp_path / "locked.sqlite"
    phone = server.phone(path, "A")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)
    fill_session(phone, record)
    phone.set_pin("2468")
    phone.close_store()

    with pytest.raises(diaban.DiabanError.Locked):
        diaban.Device.open(str(path), KEY, server.url, "A")
    with pytest.raises(diaban.DiabanError.WrongPin) as wrong:
        diaban.Device.open_with_pin(str(path), KEY, "0000", server.url, "A")
    assert wrong.value.attempts_left == 9 and "Còn 9 lần thử" in wrong.value.reason
    phone = diaban.Device.open_with_pin(str(path), KEY, "2468", server.url, "A")
    phone.set_tls([], server.tls.root_pem)
    assert display(phone, record, "place") == "Nhà văn hóa bản Nà Sản"
    phone.change_pin("2468", "97531")

    # Left alone past the idle timeout, the phone asks for the PIN again.
    phone.set_idle_lock(1)
    time.sleep(1.2)
    with pytest.raises(diaban.DiabanError.Locked):
        phone.record(record)
    assert phone.is_locked()
    phone.unlock("97531")
    assert phone.sync().accepted == [record], "unsent work goes up once unlocked"
    phone.close_store()
