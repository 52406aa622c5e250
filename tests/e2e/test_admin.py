"""Admin pages: create a user, publish a template (with a precise refusal first), grant a
restricted template, import units, revoke a lost phone — and a reviewer of another province
cannot reach a record by guessing its id."""

import json

import pytest

import diaban
from conftest import KEY, Server, signed_in


def test_an_admin_manages_users_templates_units_grants_and_devices(server: Server, device_path, browser):
    phone = diaban.Device.open(device_path, KEY, server.url, "Điện thoại bị mất")
    phone.login("canbo.muonggion", "canbo-mat-khau")

    reviewer = signed_in(browser, server)
    assert reviewer.goto(server.url + "/admin").status == 403, "reviewers are not admins"

    page = signed_in(browser, server, "quantri", "quantri-mat-khau")
    page.click("text=Quản trị")
    page.wait_for_url("**/admin")

    page.fill("#u-username", "canbo.moi")
    page.fill("#u-name", "Quàng Thị Mới")
    page.fill("#u-password", "mat-khau-moi-1")
    page.select_option("#u-role", "field_officer")
    page.fill("#u-unit", "04231")
    page.click("#new-user button")
    assert "canbo.moi ✓" in page.inner_text("#outcome")
    assert "Quàng Thị Mới" in page.inner_text("#users")

    bad = {"id": "xau", "version": 1, "kind": "event", "label": {"vi": "Xấu"},
           "fields": [{"name": "a", "type": "integer", "label": {"vi": "A"}, "relevant": "b > 1"}]}
    page.fill("#t-json", json.dumps(bad))
    page.click("#publish button")
    assert 'uses "b", which is not a field visible there' in page.inner_text("#outcome")
    good = {"id": "tin_bao", "version": 1, "kind": "event", "sensitivity": "restricted", "label": {"vi": "Tin báo"},
            "fields": [{"name": "noi_dung", "type": "text", "label": {"vi": "Nội dung"}}]}
    page.fill("#t-json", json.dumps(good))
    page.click("#publish button")
    assert "tin_bao v1 ✓" in page.inner_text("#outcome")
    assert "tin_bao" in page.inner_text("#templates")

    page.fill("#g-user", "canbo.muonggion")
    page.fill("#g-template", "tin_bao")
    page.click("#grant button")
    assert "canbo.muonggion → tin_bao" in page.inner_text("#outcome")
    phone.sync()
    assert "tin_bao" in [t.id for t in phone.templates()]

    page.fill("#units-csv", "code,name,level,parent_code,valid_from,valid_to,predecessors\n04240,Xã Mường Lèo,commune,14,2025-07-01,,\n")
    page.click("#units button")
    assert "1 ✓" in page.inner_text("#outcome")

    page.click('#devices tr:has-text("Điện thoại bị mất") button')
    assert "wipe ordered" in page.inner_text("#outcome")
    # The deactivated phone hands in what it had, then is told to wipe its store.
    with pytest.raises(diaban.DiabanError.Wiped):
        phone.sync()

    # The audit log says what was done and by whom, as labels; a filter narrows it.
    page.goto(server.url + "/admin")
    page.click("#audit-link")
    actions = page.locator("#audit tbody tr td:nth-child(3)").all_inner_texts()
    assert {"Tạo tài khoản", "Ban hành biểu mẫu", "Cấp quyền biểu mẫu mật", "Nhập danh mục đơn vị"} <= set(actions), actions
    page.fill("#a-action", "grant_template")
    page.click("#audit-filter button")
    assert page.locator("#audit tbody tr").all_inner_texts() and all(
        "Cấp quyền biểu mẫu mật" in row for row in page.locator("#audit tbody tr").all_inner_texts())
    assert reviewer.goto(server.url + "/admin/audit").status == 403


def test_a_reviewer_of_another_province_cannot_open_a_record_by_its_id(server: Server, device_path, browser):
    server.admin("create-unit", "--code", "11", "--name", "Tỉnh Điện Biên", "--level", "province")
    server.admin("create-user", "--username", "kiemduyet.dienbien", "--password", "kiemduyet-mat-khau",
                 "--role", "reviewer", "--unit", "11")
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)
    phone.sync()

    page = signed_in(browser, server, "kiemduyet.dienbien", "kiemduyet-mat-khau")
    assert page.locator("#records").count() == 0
    assert page.goto(f"{server.url}/records/{record}").status == 404
    export = page.request.get(f"{server.url}/export/propaganda_session.csv")
    assert export.status == 200
    assert len(export.text().strip().splitlines()) == 1, "the export holds the header and no record of Sơn La"
    phone.close_store()
