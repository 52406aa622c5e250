//! What sync costs on the wire, asserted exactly (bodies and round trips are deterministic):
//! the targets of a 2G link. A real server process, real device stores, protocol 3.

mod common;

use std::sync::Arc;

use common::{FaultyLink, KEY, PASSWORD, Server};
use diaban_core::{Device, FieldValue};

/// A phone whose sync exchanges all go through `link` (the login's own sync included).
async fn phone(server: &Server, user: &str, name: &str, link: &Arc<FaultyLink>) -> Device {
    let path = server.dir.path().join(format!("{name}.sqlite"));
    let mut device = Device::open(&path, &KEY, &server.url, name).await.expect("open store");
    device.set_sync_link(link.clone());
    let _ = device.login(user, PASSWORD).await;
    device
}

/// About 2 KB of Vietnamese-looking text, different for every `seed`.
fn notes(seed: u64) -> String {
    const SYLLABLES: [&str; 16] = [
        "bản", "xã", "người", "tuyên", "truyền", "ma", "túy", "cai", "nghiện", "quản", "lý", "cư", "trú", "kiểm",
        "tra", "điểm",
    ];
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut out = String::new();
    while out.len() < 1900 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        out.push_str(SYLLABLES[(x >> 60) as usize]);
        out.push_str(if (x >> 20).is_multiple_of(7) { ". " } else { " " });
    }
    out
}

fn total(exchanges: &[(usize, usize)]) -> usize {
    exchanges.iter().map(|(up, down)| up + down).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_meets_the_2g_byte_and_round_trip_targets() {
    let server = Server::start();
    let link = FaultyLink::new(&server.url);
    let a = phone(&server, "a", "a", &link).await;
    let mut ids = Vec::new();
    for i in 0..1000u64 {
        let id = a.create_record("propaganda_session", None).await.expect("create");
        a.set_field(&id, "place", FieldValue::Text(format!("Nhà văn hoá bản {i}"))).await.expect("place");
        a.set_field(&id, "notes", FieldValue::Text(notes(i))).await.expect("notes");
        ids.push(id);
    }
    let first = a.sync_records().await.expect("push 1000 records");
    assert_eq!(first.accepted.len(), 1000);
    assert!(link.exchanges().iter().all(|(up, _)| *up <= 1024 * 1024), "pushes are paged too");

    // Idle: a phone holding 1,000 records learns that nothing changed.
    link.clear();
    let idle = a.sync_records().await.expect("idle sync");
    let bytes = total(&link.exchanges());
    println!("idle check, 1,000 records: {} round trip(s), {bytes} bytes", idle.round_trips);
    assert_eq!(idle.round_trips, 1);
    assert!(bytes <= 512, "idle check: {bytes} bytes");

    // One field edited on one record.
    a.set_field(&ids[0], "participants", FieldValue::Integer(57)).await.expect("edit");
    link.clear();
    let one = a.sync_records().await.expect("one edit");
    let bytes = total(&link.exchanges());
    println!("one field edited: {} round trip(s), {bytes} bytes", one.round_trips);
    assert_eq!((one.round_trips, one.accepted.len()), (1, 1));
    assert!(bytes <= 400, "one edit: {bytes} bytes");

    // 100 offline edits over 10 records.
    for (n, id) in ids[1..11].iter().enumerate() {
        for k in 0..10 {
            a.set_field(id, "participants", FieldValue::Integer((n * 10 + k) as i64)).await.expect("edit");
        }
    }
    link.clear();
    let hundred = a.sync_records().await.expect("100 edits");
    let bytes = total(&link.exchanges());
    println!("100 edits over 10 records: {} round trip(s), {bytes} bytes", hundred.round_trips);
    assert!(hundred.round_trips <= 2);
    assert_eq!(hundred.accepted.len(), 10);
    assert!(bytes <= 4096, "100 edits: {bytes} bytes");

    // First download of the 1,000 records by a colleague's new phone (the login syncs).
    let sum_saved = server.saved_documents().await;
    let fresh = FaultyLink::new(&server.url);
    let b = phone(&server, "a2", "b", &fresh).await;
    let pages = fresh.exchanges();
    let down: usize = pages.iter().map(|(_, d)| d).sum();
    println!(
        "first download, 1,000 records: {} pages, {down} bytes down, {:.3} × the saved documents ({sum_saved} bytes)",
        pages.len(),
        down as f64 / sum_saved as f64
    );
    assert_eq!(b.records(None, None).await.expect("records").len(), 1000);
    assert!(pages.len() >= 2, "the download is paged");
    assert!(pages.iter().all(|(_, d)| *d <= 1024 * 1024), "every page is at most 1 MB: {pages:?}");
    assert!((down as f64) <= 1.1 * sum_saved as f64, "{down} bytes for {sum_saved} bytes of documents");

    // A colleague's edit reaches a phone that holds the record as that one change, not the
    // whole ~2 KB document again.
    a.set_field(&ids[500], "participants", FieldValue::Integer(31)).await.expect("edit");
    a.sync_records().await.expect("push the edit");
    fresh.clear();
    let pulled = b.sync_records().await.expect("pull the edit");
    let bytes = total(&fresh.exchanges());
    println!("a colleague's edit pulled: {} round trip(s), {bytes} bytes", pulled.round_trips);
    assert_eq!((pulled.round_trips, pulled.pulled_records), (1, 1));
    assert!(bytes <= 400, "one pulled edit: {bytes} bytes");
    let view = b.record(&ids[500]).await.expect("record");
    assert_eq!(view.items.iter().find(|i| i.name == "participants").map(|i| i.display.as_str()), Some("31"));
    assert!(!view.unsent);

    // Resumable after a cut at any point: the answer to page k is lost; the next sync
    // carries on from the last page the phone committed, re-sending only the lost page.
    for (cut, (_, lost_page)) in pages.iter().enumerate() {
        let link = FaultyLink::new(&server.url);
        link.plan((0..cut).map(|_| None).chain([Some(common::Fault::DropResponse)]));
        let phone_cut = phone(&server, "a2", &format!("cut{cut}"), &link).await;
        phone_cut.sync_records().await.expect("the sync after the cut completes");
        let resent: usize = link.exchanges().iter().map(|(_, d)| d).sum();
        assert_eq!(phone_cut.records(None, None).await.expect("records").len(), 1000, "cut at page {cut}");
        assert!(resent <= down + lost_page + 64, "cut at page {cut}: {resent} bytes down in all, uncut {down}");
    }
}
