"""Device accounts: a lost phone is revoked and cut off at its next sync; tokens expire and
refresh; repeated wrong passwords slow an account down, never lock its owner out."""

import json
import sqlite3
import time
import urllib.error
import urllib.request

import pytest

import diaban
from conftest import KEY, Server


def test_a_revoked_phone_is_cut_off_at_its_next_sync_and_keeps_its_data(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "Điện thoại bị mất")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    record = phone.create_record("propaganda_session", None)
    listing = server.admin("list-devices")
    assert "canbo.muonggion" in listing and "active" in listing
    assert "1 device(s) revoked" in server.admin("revoke-device", "--user", "canbo.muonggion")
    with pytest.raises(diaban.DiabanError.Unauthorized):
        phone.sync()
    assert [r.id for r in phone.records(None, None)] == [record], "nothing on the phone is lost"
    # The same phone cannot simply sign in again: its actor belongs to a revoked device.
    with pytest.raises(diaban.DiabanError.Server) as refused:
        phone.login("canbo.muonggion", "canbo-mat-khau")
    assert refused.value.code == "device_revoked"
    phone.close_store()


def test_tokens_expire_and_are_refreshed_before_they_do(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    phone.login("canbo.muonggion", "canbo-mat-khau")
    with sqlite3.connect(server.db) as db:
        old_hash = db.execute("SELECT token_hash FROM devices").fetchone()[0]
        # Three days left: a sync tells the phone, and the next one refreshes the token.
        db.execute("UPDATE devices SET token_expires_at = ?", (int(time.time()) + 3 * 86400,))
    phone.sync()
    phone.sync()
    with sqlite3.connect(server.db) as db:
        new_hash, expires = db.execute("SELECT token_hash, token_expires_at FROM devices").fetchone()
    assert new_hash != old_hash and expires > time.time() + 29 * 86400
    phone.sync()

    # Past its expiry a token is useless: sign in again.
    with sqlite3.connect(server.db) as db:
        db.execute("UPDATE devices SET token_expires_at = ?", (int(time.time()) - 1,))
    with pytest.raises(diaban.DiabanError.Unauthorized):
        phone.sync()
    phone.login("canbo.muonggion", "canbo-mat-khau")
    phone.sync()
    phone.close_store()


def test_repeated_wrong_passwords_slow_the_account_down_without_locking_its_owner_out(server: Server, device_path):
    phone = diaban.Device.open(device_path, KEY, server.url, "phone")
    for _ in range(5):
        with pytest.raises(diaban.DiabanError.InvalidCredentials):
            phone.login("canbo.muonggion", "doan-mo")
    # The sixth try must wait (a second at first, twice as long after each further failure).
    with pytest.raises(diaban.DiabanError.TooManyAttempts):
        phone.login("canbo.muonggion", "canbo-mat-khau")
    req = urllib.request.Request(server.url + "/api/v1/login", method="POST", headers={"content-type": "application/json"},
                                 data=json.dumps({"username": "canbo.muonggion", "password": "canbo-mat-khau",
                                                  "device_name": "x", "actor_id": "00112233445566778899aabbccddeeff"}).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    body = json.loads(refused.value.read())
    assert refused.value.code == 429 and body["error"]["code"] == "too_many_attempts"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    # Other users are not affected.
    assert server.token("canbo2.muonggion", "canbo-mat-khau")
    # Whoever typed the name cannot lock its owner out: after the wait, the owner signs in.
    time.sleep(1.2)
    phone.login("canbo.muonggion", "canbo-mat-khau")
    with sqlite3.connect(server.db) as db:
        failed = db.execute("SELECT detail FROM audit_log WHERE action = 'login_failed' AND username = 'canbo.muonggion'").fetchall()
    assert failed == [("device from 127.0.0.1",)] * 5
    phone.close_store()
