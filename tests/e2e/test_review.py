"""The review loop in a real browser: a reviewer returns a submission with a comment, the
phone sees it, fixes and resubmits, the reviewer approves, the record is locked."""

import sqlite3

import pytest

import diaban
from conftest import KEY, Server, days_ago, signed_in




def test_return_with_a_comment_fix_resubmit_approve(server: Server, device_path, browser):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)
    phone.set_field(record, "session_date", diaban.FieldValue.DATE(days_ago(3)))
    phone.set_field(record, "place", diaban.FieldValue.TEXT("Nhà văn hóa bản Nà Sản"))
    phone.set_field(record, "audience_group", diaban.FieldValue.CHOICE("youth"))
    phone.set_field(record, "participants", diaban.FieldValue.INTEGER(57))
    phone.submit(record)
    phone.sync()

    page = signed_in(browser, server)
    page.goto(f"{server.url}/records/{record}")
    page.fill("#comment", "Bổ sung số người tham dự là nữ")
    page.click("#review button[value=return]")
    page.wait_for_url(f"**/records/{record}")
    assert "Bị trả lại" in page.inner_text("main")

    # The phone gets the comment; the record is editable again.
    phone.sync()
    view = phone.record(record)
    assert view.state == "returned" and view.editable
    assert view.events[-1].kind == "return" and view.events[-1].comment == "Bổ sung số người tham dự là nữ"
    assert view.events[-1].by == "kiemduyet.sonla"
    phone.set_field(record, "participants_female", diaban.FieldValue.INTEGER(31))
    phone.submit(record)
    assert phone.sync().accepted == [record]

    page.reload()
    assert "Đã gửi" in page.inner_text("main")
    page.click("#review button[value=approve]")
    page.wait_for_url(f"**/records/{record}")
    assert "Đã phê duyệt" in page.inner_text("main")
    assert page.locator("#review button").all_inner_texts() == ["Mở lại để sửa"], "an approved record can only be reopened"

    phone.sync()
    view = phone.record(record)
    assert view.state == "approved" and not view.editable
    with pytest.raises(diaban.DiabanError.NotEditable):
        phone.set_field(record, "participants", diaban.FieldValue.INTEGER(60))
    with sqlite3.connect(server.db) as db:
        actions = [a for (a,) in db.execute("SELECT action FROM audit_log WHERE action IN ('return', 'approve') ORDER BY id")]
    assert actions == ["return", "approve"]
    phone.close_store()


def test_a_return_needs_a_comment_and_a_draft_cannot_be_reviewed(server: Server, device_path, browser):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)
    phone.set_field(record, "place", diaban.FieldValue.TEXT("Bản Mới"))
    phone.sync()
    page = signed_in(browser, server)
    page.goto(f"{server.url}/records/{record}")
    assert page.locator("#review").count() == 0, "a draft is not offered for review"

    phone.set_field(record, "session_date", diaban.FieldValue.DATE(days_ago(3)))
    phone.set_field(record, "audience_group", diaban.FieldValue.CHOICE("youth"))
    phone.set_field(record, "participants", diaban.FieldValue.INTEGER(5))
    phone.submit(record)
    phone.sync()
    page.reload()
    page.click("#review button[value=return]")
    assert "Trả lại hoặc mở lại hồ sơ cần ý kiến" in page.inner_text("main")
    phone.close_store()


TWO_LEVELS = {
    "id": "commune_report", "version": 1, "kind": "event",
    "label": {"vi": "Báo cáo chuyên đề của xã", "en": "Commune thematic report"},
    "roles": {"fill": ["field_officer"], "sign_off": ["commune_lead"], "review": ["reviewer"]},
    "fields": [{"name": "summary", "type": "text", "required": True, "label": {"vi": "Tóm tắt"}}],
}


def test_two_levels_the_commune_lead_signs_off_then_the_province_approves(server: Server, device_path, browser):
    assert server.publish(TWO_LEVELS, server.token("quantri", "quantri-mat-khau"))[0] == 201
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("commune_report", None)
    phone.set_field(record, "summary", diaban.FieldValue.TEXT("Tình hình tháng 11 ổn định"))
    phone.submit(record)
    phone.sync()

    province = signed_in(browser, server)
    province.goto(f"{server.url}/records/{record}")
    assert province.locator("#review").count() == 0, "the province waits for the commune lead"

    lead = signed_in(browser, server, "lanhdao.muonggion", "lanhdao-mat-khau")
    lead.goto(f"{server.url}/records/{record}")
    assert lead.locator("#review button[value=approve]").count() == 0
    lead.click("#review button[value=sign_off]")
    lead.wait_for_url(f"**/records/{record}")
    assert "Xã đã ký" in lead.inner_text("main")

    province.reload()
    province.click("#review button[value=approve]")
    province.wait_for_url(f"**/records/{record}")
    assert "Đã phê duyệt" in province.inner_text("main")

    phone.sync()
    view = phone.record(record)
    assert view.state == "approved"
    assert [(e.kind, e.by) for e in view.events] == [
        ("submit", "canbo.muonggion"), ("sign_off", "lanhdao.muonggion"), ("approve", "kiemduyet.sonla")]
    phone.close_store()
