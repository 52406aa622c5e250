"""Restricted templates (tips from informants): only users granted them receive the template
and its records, on the phone and on the web, and every read is audited."""

import sqlite3

import pytest

import diaban
from conftest import KEY, Server, signed_in

TIP = {
    "id": "tip_report", "version": 1, "kind": "event", "sensitivity": "restricted",
    "label": {"vi": "Tin báo, tố giác về ma túy", "en": "Drug tip-off"},
    "fields": [
        {"name": "received_on", "type": "date", "label": {"vi": "Ngày nhận tin"}},
        {"name": "content", "type": "text", "label": {"vi": "Nội dung tin báo"}},
        {"name": "informant", "type": "text", "sensitivity": "restricted", "label": {"vi": "Người báo tin"}},
    ],
}


def test_only_granted_users_see_restricted_records_and_reads_are_audited(server: Server, tmp_path, browser):
    admin = server.token("quantri", "quantri-mat-khau")
    assert server.publish(TIP, admin)[0] == 201
    server.admin("grant-template", "--user", "canbo.muonggion", "--template", "tip_report")

    granted = diaban.Device.open(str(tmp_path / "a.sqlite"), KEY, server.url, "A")
    other = diaban.Device.open(str(tmp_path / "b.sqlite"), KEY, server.url, "B")
    granted.login("canbo.muonggion", "canbo-mat-khau")
    other.login("canbo2.muonggion", "canbo-mat-khau")
    assert "tip_report" in [t.id for t in granted.templates()]
    assert "tip_report" not in [t.id for t in other.templates()], "the template itself is not sent"

    tip = granted.create_record("tip_report", None)
    granted.set_field(tip, "informant", diaban.FieldValue.TEXT("Giàng A Páo"))
    assert granted.sync().accepted == [tip]
    other.sync()
    assert other.records(None, None) == [], "a colleague in the same commune never receives it"

    # A reviewer without the grant does not see it; with it, sees it and the read is logged.
    page = signed_in(browser, server)
    assert "Tin báo" not in page.inner_text("main")
    response = page.goto(f"{server.url}/records/{tip}")
    assert response.status == 404
    # Nor through the roll-up or the export, which answer as for a template that does not exist.
    assert page.goto(f"{server.url}/rollup/tip_report").status == 404
    assert page.request.get(f"{server.url}/export/tip_report.csv").status == 404
    server.admin("grant-template", "--user", "kiemduyet.sonla", "--template", "tip_report")
    page.goto(f"{server.url}/records/{tip}")
    assert "Giàng A Páo" in page.inner_text("main")
    with sqlite3.connect(server.db) as db:
        reads = db.execute("SELECT username, detail FROM audit_log WHERE action = 'read_restricted'").fetchall()
    assert reads == [("kiemduyet.sonla", tip)]
    granted.close_store()
    other.close_store()
