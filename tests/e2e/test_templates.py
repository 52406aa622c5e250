"""Templates as data, end to end: publication through the admin API, versions on the phone,
repeat groups and calculations through the binding, and the server validating submissions
with the same engine as the phone."""

import copy
import json
import sqlite3
from pathlib import Path

import pytest

import diaban
from conftest import KEY, ROOT, Server, days_ago, fill_session

PACK = json.loads((ROOT / "server" / "pack" / "propaganda_session.json").read_text(encoding="utf-8"))

CROPS = {
    "id": "crop_test", "version": 1, "kind": "event",
    "label": {"vi": "Phát hiện, tiêu hủy cây có chứa chất ma túy", "en": "Drug crop eradication"},
    "choice_lists": {"species": [
        {"value": "poppy", "label": {"vi": "Cây thuốc phiện", "en": "Opium poppy"}},
        {"value": "cannabis", "label": {"vi": "Cây cần sa", "en": "Cannabis"}},
    ]},
    "fields": [
        {"name": "found_on", "type": "date", "required": True, "label": {"vi": "Ngày phát hiện"},
         "constraint": "value <= today", "constraint_message": {"vi": "Ngày phát hiện không được sau hôm nay"}},
        {"name": "species", "type": "single_choice", "choices": "species", "required": True, "label": {"vi": "Loài cây"}},
        {"name": "finds", "type": "repeat", "min": 1, "label": {"vi": "Các điểm phát hiện"}, "fields": [
            {"name": "plants", "type": "integer", "required": True, "min": 1, "label": {"vi": "Số cây"}},
            {"name": "location", "type": "geopoint", "label": {"vi": "Tọa độ"}},
        ]},
        {"name": "total_plants", "type": "calculated", "result_type": "integer", "label": {"vi": "Tổng số cây"},
         "calculation": "sum(finds.map(f, f.plants))"},
        {"name": "large", "type": "note", "label": {"vi": "Vụ lớn: báo cáo ngay"}, "relevant": "total_plants >= 3000"},
    ],
}


@pytest.fixture
def admin(server: Server):
    return server.token("quantri", "quantri-mat-khau")


def test_only_an_admin_publishes_and_bad_templates_are_refused_precisely(server: Server, admin):
    officer = server.token("canbo.muonggion", "canbo-mat-khau")
    status, body = server.publish(CROPS, officer)
    assert status == 403 and body["error"]["code"] == "forbidden"

    cyclic = copy.deepcopy(CROPS)
    cyclic["fields"] += [
        {"name": "a", "type": "calculated", "result_type": "integer", "label": {"vi": "a"}, "calculation": "b + 1"},
        {"name": "b", "type": "calculated", "result_type": "integer", "label": {"vi": "b"}, "calculation": "a + 1"},
    ]
    status, body = server.publish(cyclic, admin)
    assert status == 422 and body["error"]["code"] == "invalid_template"
    assert "a → b → a" in body["error"]["message"]

    unknown = copy.deepcopy(CROPS)
    unknown["fields"][0]["relevant"] = "species_typo == 'poppy'"
    status, body = server.publish(unknown, admin)
    assert status == 422 and '"species_typo"' in body["error"]["message"]

    status, body = server.publish({"id": "x"}, admin)
    assert status == 422 and body["error"]["code"] == "invalid_template"

    status, body = server.publish(CROPS, admin)
    assert (status, body) == (201, {"id": "crop_test", "version": 1, "new": True})
    status, body = server.publish(CROPS, admin)
    assert (status, body["new"]) == (200, False)
    changed = copy.deepcopy(CROPS)
    changed["label"]["vi"] = "Khác"
    status, body = server.publish(changed, admin)
    assert status == 400 and "publish a new version" in body["error"]["message"]


def test_repeat_rows_and_calculations_through_the_binding(server: Server, admin, device_path):
    assert server.publish(CROPS, admin)[0] == 201
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("crop_test", None)
    phone.set_field(record, "found_on", diaban.FieldValue.DATE(days_ago(20)))
    phone.set_field(record, "species", diaban.FieldValue.CHOICE("poppy"))

    view = phone.record(record)
    assert not view.can_submit
    assert {i.field for i in view.issues} == {"finds"}

    first = phone.add_row(record, "finds")
    second = phone.add_row(record, "finds")
    phone.set_field(record, f"finds/{first}/plants", diaban.FieldValue.INTEGER(2500))
    phone.set_field(record, f"finds/{first}/location", diaban.FieldValue.GEOPOINT(21.98, 103.12, 6.5))
    phone.set_field(record, f"finds/{second}/plants", diaban.FieldValue.INTEGER(700))
    with pytest.raises(diaban.DiabanError.UnknownField):
        phone.set_field(record, "plants", diaban.FieldValue.INTEGER(1))  # a row field needs its row
    with pytest.raises(diaban.DiabanError.InvalidValue):
        phone.set_field(record, f"finds/{second}/plants", diaban.FieldValue.INTEGER(0))

    view = phone.record(record)
    items = {i.name: i for i in view.items}
    assert items["total_plants"].display == "3200"
    assert "large" in items, "the note appears once the total reaches 3000"
    rows = items["finds"].rows
    assert [r.id for r in rows] == [first, second]
    assert rows[0].items[1].display == "21.980000, 103.120000"
    assert view.can_submit

    phone.remove_row(record, "finds", second)
    assert {i.name: i for i in phone.record(record).items}["total_plants"].display == "2500"
    phone.submit(record)
    assert phone.sync().accepted == [record]
    with sqlite3.connect(server.db) as db:
        values = json.loads(db.execute("SELECT values_json FROM records WHERE id = ?", (record,)).fetchone()[0])
    assert values["total_plants"] == 2500, "the server's projection includes calculated values"
    assert [row["plants"] for row in values["finds"]] == [2500]
    phone.close_store()


def test_a_record_keeps_its_template_version_and_new_records_use_the_latest(server: Server, admin, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    old = phone.create_record("propaganda_session", None)
    phone.set_field(old, "place", diaban.FieldValue.TEXT("Trường tiểu học"))

    v2 = copy.deepcopy(PACK)
    v2["version"] = 2
    v2["fields"].append({"name": "speaker", "type": "text", "required": True,
                         "label": {"vi": "Người trình bày", "en": "Speaker"}})
    assert server.publish(v2, admin)[0] == 201
    report = phone.sync()
    assert report.pulled_templates == 1
    assert [(t.id, t.version) for t in phone.templates() if t.id == "propaganda_session"] == [("propaganda_session", 2)]

    old_view = phone.record(old)
    assert old_view.template_version == 1
    assert "speaker" not in {i.name for i in old_view.items}, "the old record renders with version 1"
    new = phone.create_record("propaganda_session", None)
    new_view = phone.record(new)
    assert new_view.template_version == 2
    assert "speaker" in {i.name for i in new_view.items}

    # The phone still holds version 1 after closing: old records stay usable offline.
    phone.close_store()
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    assert phone.record(old).template_version == 1
    with sqlite3.connect(device_path) as db:
        versions = [v for (v,) in db.execute("SELECT version FROM templates WHERE id = 'propaganda_session' ORDER BY version")]
    assert versions == [1, 2]
    phone.close_store()



def test_the_server_refuses_a_submission_that_fails_validation_and_the_phone_sees_why(server: Server, tmp_path):
    a = diaban.Device.open(str(tmp_path / "a.sqlite"), KEY, server.url, "A")
    b = diaban.Device.open(str(tmp_path / "b.sqlite"), KEY, server.url, "B")
    a.login("canbo.muonggion", "canbo-mat-khau")
    b.login("canbo2.muonggion", "canbo-mat-khau")
    record = a.create_record("propaganda_session", None)
    fill_session(a, record)
    a.sync()
    b.sync()
    assert [r.id for r in b.records(None, None)] == [record]

    # A submits; B, not yet aware, clears a required answer. Merged, the submission is invalid.
    a.submit(record)
    assert a.sync().accepted == [record]
    b.clear_field(record, "place")
    report = b.sync()
    assert report.accepted == []
    [refusal] = report.rejected
    assert refusal.record_id == record and refusal.code == "invalid_submission"
    assert [i.field for i in refusal.issues] == ["place"]
    assert "Địa điểm" in refusal.issues[0].message

    view = b.record(record)
    assert view.rejection.code == "invalid_submission"
    assert view.unsent, "the refused change is kept on the phone"
    with sqlite3.connect(server.db) as db:
        values = json.loads(db.execute("SELECT values_json FROM records WHERE id = ?", (record,)).fetchone()[0])
    assert values["place"] == "Nhà văn hóa bản Nà Sản", "the server committed nothing of it"
    a.close_store()
    b.close_store()


MONTHLY = {
    "id": "monthly_test", "version": 1, "kind": "periodic_report",
    "label": {"vi": "Báo cáo tháng của xã", "en": "Commune monthly report"},
    "period": {"length": "month", "start_day": 15, "due_days_after_end": 2},
    "fields": [
        {"name": "sessions", "type": "integer", "min": 0, "required": True, "label": {"vi": "Số buổi tuyên truyền"}},
        {"name": "held_on", "type": "date", "label": {"vi": "Ngày tổ chức gần nhất"},
         "constraint": "value >= period_start && value <= period_end",
         "constraint_message": {"vi": "Ngày phải nằm trong kỳ báo cáo"}},
        {"name": "period_days", "type": "calculated", "result_type": "integer", "label": {"vi": "Số ngày của kỳ"},
         "calculation": "days_between(period_start, period_end) + 1"},
    ],
}


def test_a_periodic_report_names_its_period_and_expressions_see_its_bounds(server: Server, admin, device_path):
    assert server.publish(MONTHLY, admin)[0] == 201
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    with pytest.raises(diaban.DiabanError.InvalidPeriod):
        phone.create_record("monthly_test", None)
    with pytest.raises(diaban.DiabanError.InvalidPeriod):
        phone.create_record("monthly_test", "2026-Q4")
    with pytest.raises(diaban.DiabanError.InvalidPeriod):
        phone.create_record("propaganda_session", "2026-11")

    record = phone.create_record("monthly_test", "2026-11")  # 15/10/2026 – 14/11/2026
    phone.set_field(record, "sessions", diaban.FieldValue.INTEGER(3))
    view = phone.record(record)
    assert view.period == "2026-11"
    items = {i.name: i for i in view.items}
    assert items["period_days"].display == "31"
    for day, ok in [("2026-10-15", True), ("2026-11-14", True), ("2026-11-15", False), ("2026-10-14", False)]:
        phone.set_field(record, "held_on", diaban.FieldValue.DATE(day))
        errors = {i.name: i for i in phone.record(record).items}["held_on"].errors
        assert (errors == []) == ok, (day, errors)
    phone.set_field(record, "held_on", diaban.FieldValue.DATE("2026-11-01"))
    phone.submit(record)
    assert phone.sync().accepted == [record]
    phone.close_store()
