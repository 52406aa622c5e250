"""The foundation slice: an officer's phone records a propaganda session offline, syncs it
later, and a province reviewer sees it in a browser — every part real."""

import sqlite3

import pytest

import diaban
from conftest import KEY, Server, days_ago, signed_in

PROPAGANDA = "propaganda_session"


def fill_session(phone, record_id):
    phone.set_field(record_id, "session_date", diaban.FieldValue.DATE(days_ago(3)))
    phone.set_field(record_id, "place", diaban.FieldValue.TEXT("Nhà văn hóa bản Nà Sản"))
    phone.set_field(record_id, "audience_group", diaban.FieldValue.CHOICE("youth"))
    phone.set_field(record_id, "participants", diaban.FieldValue.INTEGER(57))
    phone.set_field(record_id, "participants_female", diaban.FieldValue.INTEGER(30))
    phone.set_field(record_id, "methods", diaban.FieldValue.CHOICES(["film", "leaflets"]))
    phone.set_field(record_id, "notes", diaban.FieldValue.TEXT("Chiếu phim tư liệu, phát tờ rơi song ngữ Thái – Việt"))


def test_offline_record_reaches_the_reviewer(server: Server, device_path, browser):
    # Online: the officer signs in; templates arrive with the first sync.
    phone = diaban.Device.open(device_path, KEY, server.url, "Điện thoại thử nghiệm")
    account = phone.login("canbo.muonggion", "canbo-mat-khau")
    assert (account.unit_code, account.unit_name, account.role) == ("03694", "Xã Mường Giôn", "field_officer")
    templates = [t.id for t in phone.templates()]
    assert PROPAGANDA in templates
    assert "public_tip" not in templates and "tip_informant" not in templates, "restricted templates need a grant"

    # Offline: the server goes away; the officer keeps working.
    server.stop()
    record_id = phone.create_record(PROPAGANDA, None)
    fill_session(phone, record_id)
    phone.submit(record_id)
    with pytest.raises(diaban.DiabanError.Unreachable):
        phone.sync()
    assert phone.record(record_id).unsent

    # The phone is switched off and on: the record is still there, still unsent.
    phone.close_store()
    phone = diaban.Device.open(device_path, KEY, server.url, "Điện thoại thử nghiệm")
    view = phone.record(record_id)
    assert view.unsent and view.state == "submitted"
    shown = {f.name: f.display for f in view.items}
    assert shown["audience_group"] == "Thanh thiếu niên"
    assert shown["participants"] == "57"

    # Back in coverage: one sync commits it on the server.
    server.start()
    report = phone.sync()
    assert report.accepted == [record_id]
    assert report.rejected == []
    assert report.round_trips == 1
    assert not phone.record(record_id).unsent
    # Nothing left to send: the next sync pushes nothing.
    assert phone.sync().accepted == []

    # The server's SQLite file holds the record and its values.
    with sqlite3.connect(server.db) as db:
        unit, state, values = db.execute(
            "SELECT unit_code, state, values_json FROM records WHERE id = ?", (record_id,)).fetchone()
    assert (unit, state) == ("03694", "submitted")
    assert '"participants":57' in values

    # The reviewer signs in to the web UI and reads it with Vietnamese labels.
    page = signed_in(browser, server)
    # The pages keep a strict Content-Security-Policy (nothing inline) and still draw their style.
    response = page.goto(server.url + "/records")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer" and "max-age" in response.headers["strict-transport-security"]
    assert page.evaluate("getComputedStyle(document.querySelector('header')).backgroundColor") == "rgb(139, 26, 26)"
    page.click("#records a:has-text(\"Buổi tuyên truyền phòng, chống ma túy\")")
    page.wait_for_url(f"**/records/{record_id}")
    rows = {
        row.locator("th").inner_text(): row.locator("td").inner_text()
        for row in page.locator("#values tbody tr").all()
    }
    assert rows == {
        "Ngày tuyên truyền": days_ago(3),
        "Địa điểm": "Nhà văn hóa bản Nà Sản",
        "Đối tượng tuyên truyền": "Thanh thiếu niên",
        "Hình thức tuyên truyền": "Chiếu phim, phóng sự, Phát tờ rơi, tài liệu",
        "Số người tham dự": "57",
        "Trong đó: nữ": "30",
        "Ghi chú": "Chiếu phim tư liệu, phát tờ rơi song ngữ Thái – Việt",
    }
    assert "Xã Mường Giôn" in page.inner_text("main")
    # The per-field history names who entered each value.
    history = page.locator("#history tbody tr").all_inner_texts()
    assert any("Địa điểm" in row and "canbo.muonggion" in row and "Nhà văn hóa bản Nà Sản" in row for row in history)
    assert "Đã gửi" in page.inner_text("main")
    phone.close_store()


def test_an_officer_of_another_commune_never_receives_the_record(server: Server, tmp_path):
    mine = diaban.Device.open(str(tmp_path / "a.sqlite"), KEY, server.url, "A")
    mine.login("canbo.muonggion", "canbo-mat-khau")
    record_id = mine.create_record(PROPAGANDA, None)
    fill_session(mine, record_id)
    assert mine.sync().accepted == [record_id]

    other = diaban.Device.open(str(tmp_path / "b.sqlite"), KEY, server.url, "B")
    other.login("canbo.sopcop", "canbo-mat-khau")
    other.sync()
    assert other.records(None, None) == []
    with pytest.raises(diaban.DiabanError.UnknownRecord):
        other.record(record_id)
    mine.close_store()
    other.close_store()
