"""Bad input gets a clear, typed error and changes nothing: at the device API and at the
server's HTTP API (4xx with a JSON error body)."""

import json
import sqlite3

import pytest

import diaban
from conftest import KEY, Server


def record_count(server: Server) -> int:
    with sqlite3.connect(server.db) as db:
        return db.execute("SELECT COUNT(*) FROM records").fetchone()[0]


def test_wrong_password_is_a_typed_error_and_stores_no_token(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    with pytest.raises(diaban.DiabanError.InvalidCredentials):
        phone.login("canbo.muonggion", "sai-mat-khau")
    with pytest.raises(diaban.DiabanError.NotLoggedIn):
        phone.sync()
    phone.close_store()


def test_unreachable_server_is_a_typed_error_and_keeps_the_record(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record_id = phone.create_record("propaganda_session", None)
    phone.set_field(record_id, "place", diaban.FieldValue.TEXT("Trạm y tế xã"))
    server.stop()
    with pytest.raises(diaban.DiabanError.Unreachable):
        phone.sync()
    assert [r.id for r in phone.records(None, None)] == [record_id]
    assert phone.record(record_id).unsent
    phone.close_store()


def test_unknown_template_and_bad_values_are_typed_errors(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    with pytest.raises(diaban.DiabanError.UnknownTemplate):
        phone.create_record("khong_ton_tai", None)
    record_id = phone.create_record("propaganda_session", None)
    with pytest.raises(diaban.DiabanError.InvalidValue):
        phone.set_field(record_id, "audience_group", diaban.FieldValue.CHOICE("aliens"))
    with pytest.raises(diaban.DiabanError.InvalidValue):
        phone.set_field(record_id, "participants", diaban.FieldValue.TEXT("nhiều"))
    with pytest.raises(diaban.DiabanError.InvalidValue):
        phone.set_field(record_id, "participants", diaban.FieldValue.INTEGER(-3))
    with pytest.raises(diaban.DiabanError.UnknownRecord):
        phone.record("00000000-0000-0000-0000-000000000000")
    # A cross-field constraint is shown on the form and blocks submission.
    phone.set_field(record_id, "participants", diaban.FieldValue.INTEGER(10))
    phone.set_field(record_id, "participants_female", diaban.FieldValue.INTEGER(12))
    female = {i.name: i for i in phone.record(record_id).items}["participants_female"]
    assert female.errors == ["Số nữ không được lớn hơn tổng số người tham dự"]
    # A record with required answers missing cannot be submitted, and says which.
    with pytest.raises(diaban.DiabanError.Incomplete) as failed:
        phone.submit(record_id)
    assert {i.field for i in failed.value.issues} == {"session_date", "place", "audience_group", "participants_female"}
    assert phone.record(record_id).state == "draft"
    phone.close_store()


def test_server_answers_malformed_requests_with_json_4xx_and_changes_nothing(server: Server):
    status, body = server.post("/api/v1/login", b"{not json")
    assert status == 400 and body["error"]["code"] == "bad_request"

    login = {"username": "canbo.muonggion", "password": "sai", "device_name": "x",
             "actor_id": "00112233445566778899aabbccddeeff"}
    status, body = server.post("/api/v1/login", json.dumps(login).encode())
    assert status == 401 and body["error"]["code"] == "invalid_credentials"

    status, body = server.post("/api/v2/sync", b"DB\x04")
    assert status == 401 and body["error"]["code"] == "unauthorized"

    login["password"] = "canbo-mat-khau"
    status, body = server.post("/api/v1/login", json.dumps(login).encode())
    assert status == 200
    auth = {"authorization": "Bearer " + body["token"]}

    status, body = server.get("/api/v1/templates/khong_ton_tai", auth)
    assert status == 404 and body["error"]["code"] == "unknown_template"

    # Sync is binary (docs/sync-protocol.md): JSON or damaged frames are refused.
    status, body = server.post("/api/v2/sync", b'{"cursor":0,"push":[]}', auth)
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = server.post("/api/v2/sync", b"DB\x04\x00\x01garbage", auth)
    assert status == 400 and body["error"]["code"] == "bad_request"

    # Apps of protocol 1 (JSON, /api/v1/sync) or any other version are asked to update.
    status, body = server.post("/api/v1/sync", b'{"protocol":1,"cursor":0,"push":[]}', auth)
    assert status == 426 and body["error"]["code"] == "upgrade_required"
    status, body = server.post("/api/v2/sync", b"DB\x07", auth)
    assert status == 426 and "cập nhật" in body["error"]["message"]
    # Protocol 2 (before incremental pulls) too.
    status, body = server.post("/api/v2/sync", b"DB\x02\x00\x01", auth)
    assert status == 426 and body["error"]["code"] == "upgrade_required"
    assert record_count(server) == 0


def test_the_publish_command_refuses_a_bad_template_with_the_reason(server: Server, tmp_path):
    import subprocess
    from conftest import DIABAN
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "id": "bad", "version": 1, "kind": "event", "label": {"vi": "Sai"},
        "fields": [{"name": "a", "type": "single_choice", "choices": "missing", "label": {"vi": "A"}}],
    }), encoding="utf-8")
    out = subprocess.run([str(DIABAN), "--db", str(server.db), "admin", "publish-template", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert 'field "a" refers to choice list "missing", which does not exist' in out.stderr
