//! Sign-in under attack, against a real `diaban` process: clients on many loopback addresses
//! (127.0.0.0/8) try passwords as an attacker would.

mod common;

use std::net::IpAddr;

use automerge::ActorId;
use diaban_core::protocol;

use common::{PASSWORD, Server};

/// One sign-in attempt from `from`: the status and the `Retry-After` seconds.
async fn attempt(server: &Server, from: [u8; 4], username: &str, password: &str) -> (u16, Option<u64>) {
    let http = common::http_builder().local_address(IpAddr::from(from)).build().expect("client");
    let body = serde_json::json!({"username": username, "password": password, "device_name": "x",
        "actor_id": ActorId::random().to_hex_string()});
    let response =
        http.post(format!("{}{}", server.url, protocol::LOGIN_PATH)).json(&body).send().await.expect("login");
    let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    (response.status().as_u16(), retry)
}

#[tokio::test]
async fn one_address_trying_many_usernames_is_slowed_down_and_others_are_not() {
    let server = Server::start();
    // Four tries at each account (under its own limit) and four at names that do not exist.
    for i in 0..20 {
        let name = ["a", "a2", "b", "r"].get(i % 5).map_or(format!("nobody{i}"), |n| (*n).to_owned());
        assert_eq!(attempt(&server, [127, 0, 0, 2], &name, "doan-mo").await.0, 401);
    }
    let (status, retry) = attempt(&server, [127, 0, 0, 2], "a", PASSWORD).await;
    assert_eq!(status, 429, "the address must wait, even with the right password");
    assert!(retry.is_some_and(|s| (1..=60).contains(&s)), "{retry:?}");
    assert_eq!(attempt(&server, [127, 0, 0, 3], "a", PASSWORD).await.0, 200, "another address signs in");
    // Failures of existing accounts are audited with the address; names that do not exist are
    // summed up in one line at most a minute.
    let audited = server
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'login_failed' AND detail = 'device from 127.0.0.2'")
        .await;
    assert_eq!(audited, 16);
    assert!(server.count("SELECT COUNT(*) FROM audit_log WHERE action = 'login_failed_unknown_users'").await <= 1);
}

#[tokio::test]
async fn spraying_one_password_from_many_addresses_leaves_only_trusted_addresses_trying() {
    let server = Server::start();
    // The province office signed in this morning.
    assert_eq!(attempt(&server, [127, 0, 1, 1], "r", PASSWORD).await.0, 200);
    for i in 0..60u8 {
        let (status, _) = attempt(&server, [127, 0, 2, i], &format!("user{i}"), "123456").await;
        assert_eq!(status, 401);
    }
    let (status, retry) = attempt(&server, [127, 0, 3, 1], "a", PASSWORD).await;
    assert_eq!(status, 429, "a new address waits out the minute");
    assert!(retry.is_some_and(|s| s <= 60));
    assert_eq!(attempt(&server, [127, 0, 1, 1], "a", PASSWORD).await.0, 200, "the trusted office does not");
}

#[tokio::test]
async fn many_wrong_passwords_never_lock_the_owner_out_for_more_than_a_minute() {
    let server = Server::start();
    // Seven failures from as many addresses: after five, each try waits twice as long.
    let mut failures = 0;
    for i in 0..20u8 {
        match attempt(&server, [127, 0, 4, i], "b", "doan-mo").await {
            (401, _) => failures += 1,
            (429, Some(wait)) => tokio::time::sleep(std::time::Duration::from_secs(wait)).await,
            other => panic!("{other:?}"),
        }
        if failures == 7 {
            break;
        }
    }
    assert_eq!(failures, 7);
    let (status, retry) = attempt(&server, [127, 0, 4, 9], "b", PASSWORD).await;
    assert_eq!(status, 429);
    let wait = retry.expect("Retry-After");
    assert!(wait <= 60, "{wait}");
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(attempt(&server, [127, 0, 4, 9], "b", PASSWORD).await.0, 200, "the owner signs in after the wait");
}
