//! Crash safety of the device store: a writer process is killed with SIGKILL at random
//! moments, 100 times. Every time, the store must open, and every write the writer was told
//! had succeeded ("acknowledged") must be there.
//!
//! The writer is this same test binary, re-run with an environment variable set.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use automerge::ActorId;
use diaban_core::FieldValue;
use diaban_core::record::{FieldPath, RecordDoc, RecordMeta};
use diaban_core::store::Store;
use diaban_core::sync::index;

const CHILD: &str = "DIABAN_CRASH_CHILD_STORE";
const START: &str = "DIABAN_CRASH_CHILD_START";
const KEY: [u8; 32] = [42; 32];
const RECORDS: u64 = 40;

fn record_id(n: u64) -> String {
    format!("r{}", n % RECORDS)
}

async fn count_of(store: &Store, id: &str) -> Option<i64> {
    let stored = store.record(id).await.expect("record reads")?;
    let doc = RecordDoc::load(&stored.doc, None).expect("document loads");
    doc.values().get("count").and_then(|v| v.as_i64())
}

/// Writes forever: operation n sets `count = n` on record r(n mod 40), creating it if needed,
/// and prints `ack n` once the store has returned.
#[tokio::test]
async fn crash_writer_child() {
    let (Ok(path), Ok(start)) = (std::env::var(CHILD), std::env::var(START)) else { return };
    let store = Store::open(Path::new(&path), &KEY).await.expect("child opens the store");
    let actor = ActorId::random();
    let mut out = std::io::stdout().lock();
    for n in start.parse::<u64>().expect("start")..u64::MAX {
        let id = record_id(n);
        let mut doc = match store.record(&id).await.expect("read") {
            Some(stored) => RecordDoc::load(&stored.doc, Some(actor.clone())).expect("load"),
            None => RecordDoc::create(
                &RecordMeta {
                    record_id: id.clone(),
                    template_id: "propaganda_session".into(),
                    template_version: 1,
                    unit_code: "03694".into(),
                    created_by: "canbo".into(),
                    created_at: 1_763_769_600,
                    device_id: "crash".into(),
                    period: None,
                },
                actor.clone(),
            )
            .expect("create"),
        };
        doc.set_field(&FieldPath::top("count"), &FieldValue::Integer(n as i64), 1_763_769_600).expect("edit");
        store.put_record(&index(doc, None, Vec::new(), 0).expect("index")).await.expect("write");
        writeln!(out, "ack {n}").expect("stdout");
        out.flush().expect("flush");
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_at_random_moments() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("phone.sqlite");
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut next = 0u64;
    let mut kills_mid_write = 0;
    for round in 0..100 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1", "-q"])
            .env(CHILD, &path)
            .env(START, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start writer");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()))
                .collect::<Vec<u64>>()
        });
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(5 + (seed >> 33) % 80));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let acks = reader.join().expect("reader");
        // A round with no acknowledgement was killed while starting or opening the store.
        if !acks.is_empty() {
            kills_mid_write += 1;
        }
        for n in &acks {
            acked.insert(record_id(*n), *n as i64);
        }
        next = acks.last().map_or(next, |n| n + 1);

        // The store opens, and holds every acknowledged write (or a later one).
        let store =
            Store::open(&path, &KEY).await.unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        for (id, n) in &acked {
            let count = count_of(&store, id).await;
            assert!(count.is_some_and(|c| c >= *n), "round {round}: {id} lost acknowledged write {n} (has {count:?})");
        }
        store.close().await;
    }
    assert!(acked.len() as u64 == RECORDS, "every record was written: {}", acked.len());
    // Timing varies with machine load; these only check that the kills were not all before
    // the first write.
    assert!(kills_mid_write >= 25, "many kills landed while writing ({kills_mid_write})");
    assert!(next > 100, "enough acknowledged writes to mean something ({next})");
}
