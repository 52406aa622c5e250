"""The README's run command: `diaban demo` seeds Sơn La and prints what to open and who to be.
It shows everything it promises on whatever day it starts: the test command runs this test on
a spread of pinned dates too (DIABAN_CLOCK, tests/pinned-dates.txt)."""

import re
import signal
import subprocess

import diaban
from conftest import DIABAN, KEY


def test_the_demo_prints_the_address_and_logins_and_serves_its_data(tmp_path, browser):
    proc = subprocess.Popen([str(DIABAN), "--db", str(tmp_path / "demo.sqlite"), "demo", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while not lines or "listening on" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, f"demo ended early: {lines}"
            lines.append(line)
        printed = "".join(lines)
        assert "kiemduyet" in printed and "kiemduyet-2026" in printed and "canbo.muonggion" in printed
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", lines[-1]).group(1)

        page = browser.new_page()
        page.goto(f"http://localhost:{port}/login")
        page.fill("#username", "kiemduyet")
        page.fill("#password", "kiemduyet-2026")
        page.click("button[type=submit]")
        page.wait_for_url(f"http://localhost:{port}/")

        # The home page says what to do, each line a link to its list.
        reports = {r.get_attribute("data-template"): r for r in page.locator("#reports tbody tr").all()}
        monthly = reports["commune_monthly_report"].locator("td.sent").inner_text()
        sent, communes = (int(n) for n in monthly.split(" ")[0:3:2])
        assert communes >= 8 and 0 <= sent <= communes, monthly
        waiting = page.locator("#waiting li a").all_inner_texts()
        assert any("Đã gửi" in w.capitalize() or "đã gửi" in w for w in waiting), waiting
        assert page.locator("#returned li a").count() > 0
        assert int(page.locator("#reminders-due a").inner_text().split(" ")[0]) > 0
        page.locator("#waiting li a").first.click()
        assert "state=" in page.url and page.locator("#records tbody tr").count() > 0
        for href in ["/", "/records", "/reminders"]:
            assert page.locator(f'header nav a[href="{href}"]').count() == 1, href
        page.goto(f"http://localhost:{port}/records")
        # The queue pages: a page of 50, the count of all, and links to the next and first pages.
        total = int(page.locator("#count strong").inner_text().replace(".", ""))
        assert total > 400, "about 200 people, reports, hotspots, inspections and sessions"
        first = page.locator("#records tbody tr a").evaluate_all("links => links.map(a => a.href)")
        assert len(first) == 50 and page.locator("#first-page").count() == 0
        page.click("#next-page")
        second = page.locator("#records tbody tr a").evaluate_all("links => links.map(a => a.href)")
        assert len(second) == 50 and not set(first) & set(second)
        page.click("#first-page")
        assert page.locator("#records tbody tr a").evaluate_all("links => links.map(a => a.href)") == first
        # Filters hold across pages, and each commune's records are there.
        for commune in ["Xã Mường Giôn (03694)", "Xã Sốp Cộp (04231)"]:
            page.goto(f"http://localhost:{port}/records?unit={commune[-6:-1]}")
            rows = page.locator("#records tbody tr").all_inner_texts()
            assert rows and all(commune in r for r in rows), commune
            if page.locator("#next-page").count():
                page.click("#next-page")
                assert f"unit={commune[-6:-1]}" in page.url
                assert all(commune in r for r in page.locator("#records tbody tr").all_inner_texts())

        # Twelve monthly reports per commune in every review state, on the grid.
        page.goto(f"http://localhost:{port}/grid/commune_monthly_report")
        states = {c.get_attribute("class") for c in page.locator("#grid tbody td[data-period]").all()}
        assert {"approved", "submitted", "signed_off", "returned", "draft", "late", "not_started"} <= states, states
        assert page.locator("#grid tbody tr").count() >= 8

        # An approved report: its indicators were computed from the records and still agree.
        page.goto(f"http://localhost:{port}/records?template=commune_monthly_report&state=approved&unit=03694")
        page.locator("#records tbody tr a").first.click()
        lines = page.locator("#indicators tbody tr")
        assert lines.count() >= 30
        people = page.locator('#indicators tr[data-field="people_total"] td').all_inner_texts()
        assert int(people[1]) > 0 and people[1] == people[2], people

        # A calculated status shows as its label, never as a code or a raw "none".
        page.goto(f"http://localhost:{port}/records?template=person_record")
        page.locator("#records tbody tr a").first.click()
        status = page.locator('#values tr[data-field="current_status"] td').inner_text().strip()
        assert status and not re.fullmatch(r"[a-z_]+", status), status

        # The reminders from the registry.
        page.goto(f"http://localhost:{port}/reminders")
        rules = {r.get_attribute("data-rule") for r in page.locator("#reminders tbody tr").all()}
        assert {"residence_check", "period_ending", "post_rehab_ending", "recheck_due"} <= rules, rules

        # Every review state, a reopened record among them.
        for state in ["draft", "submitted", "signed_off", "returned", "approved", "reopened"]:
            page.goto(f"http://localhost:{port}/records?state={state}")
            assert page.locator("#records tbody tr").count() > 0, state

        # The yearly classification per QĐ 28/2025.
        page.goto(f"http://localhost:{port}/records?template=commune_assessment")
        assert page.locator("#records tbody tr").count() == 8

        # The commune officer's phone gets the commune's records, its reminders and the
        # monthly report's figures computed on the phone.
        phone = diaban.Device.open(str(tmp_path / "phone.sqlite"), KEY, f"http://127.0.0.1:{port}", "phone")
        phone.login("canbo.muonggion", "canbo-2026")
        people = phone.records("person_record", None)
        assert len(people) >= 15
        rules = {r.rule for r in phone.reminders()}
        assert "residence_check" in rules, rules
        reminder = phone.reminders()[0]
        assert reminder.label and reminder.due and reminder.subject
        report = phone.records("commune_monthly_report", "approved")[0].id
        figures = {f.field: f.value for f in phone.indicators(report)}
        shown = {i.name: i.display for i in phone.record(report).items}
        assert figures["people_total"] > 0
        assert str(int(figures["people_total"])) == shown["people_total"], "the phone agrees with the report"
        phone.close_store()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
