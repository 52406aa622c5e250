//! The load test: 500 simulated phones for 60 s against a release server, with the traffic of
//! a province at work mixed (idle syncs, edits, first downloads of a commune, photo uploads,
//! watches), then the checks: no request failed, every acknowledged change is in the database
//! exactly once, and the server's memory went back down afterwards.
//!
//!     cargo bench -p diaban-server --bench load
//!     DIABAN_TEST_PG=$(bash tests/pg.sh start /tmp/pg) cargo bench -p diaban-server --bench load   # … and PostgreSQL
//!     DIABAN_LOAD_SECS=1800 cargo bench -p diaban-server --bench load                             # the soak
//!
//! DIABAN_LOAD_SECS (default 60) sets the run's length, DIABAN_LOAD_DEVICES (default 500) the
//! phones, five to a commune, with 10,000 records stored before the run. The memory curve
//! (the server's resident set, sampled every second) is printed once a minute, or ten times
//! in a shorter run.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use common::sim::{Sim, seeded};
use diaban_core::protocol::{self, PushRecord, SyncRequest, SyncResponse};
use diaban_core::record::{FieldPath, RecordDoc};
use diaban_core::{FieldValue, wire};
use sha2::Digest;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let secs = env_number("DIABAN_LOAD_SECS", 60.0);
        let devices = env_number("DIABAN_LOAD_DEVICES", 500.0) as usize;
        let mut failed = false;
        failed |= !run("SQLite (WAL, synchronous=FULL)", devices, secs).await;
        if common::use_postgres() {
            failed |= !run("PostgreSQL (one node, synchronous_commit=on)", devices, secs).await;
        }
        assert!(!failed, "the load test found failures (above)");
    });
}

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// What a phone does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Idle,
    Edit,
    FirstDownload,
    Upload,
    Watch,
}

impl Op {
    /// The mix of a province at work: mostly idle checks and edits, some watches, now and then
    /// a phone downloading its commune afresh or sending a photo.
    fn pick(roll: u64) -> Op {
        match roll % 100 {
            0..=44 => Op::Idle,
            45..=74 => Op::Edit,
            75..=77 => Op::FirstDownload,
            78..=82 => Op::Upload,
            _ => Op::Watch,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Idle => "idle sync",
            Op::Edit => "edit sync",
            Op::FirstDownload => "first download (100 records)",
            Op::Upload => "photo upload (150 KB, 3 chunks)",
            Op::Watch => "watch (long poll, 2 s)",
        }
    }
}

/// A phone's own tally: edits acknowledged, and every operation's latency or failure.
#[derive(Default)]
struct Tally {
    acked_edits: i64,
    latencies: BTreeMap<Op, Vec<Duration>>,
    failures: BTreeMap<Op, Vec<String>>,
}

async fn exchange(sim: &mut Sim, request: &SyncRequest) -> Result<SyncResponse, String> {
    let body = wire::encode(request).map_err(|e| e.to_string())?;
    let answer = sim
        .http
        .post(format!("{}{}", sim.url, protocol::SYNC_PATH))
        .bearer_auth(&sim.token)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if answer.status() != 200 {
        return Err(format!("sync answered {}", answer.status()));
    }
    wire::decode(&answer.bytes().await.map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

/// One operation of `op` by `sim`.
async fn perform(sim: &mut Sim, op: Op, tally: &mut Tally, n: u64) -> Result<(), String> {
    match op {
        Op::Idle => {
            let r =
                exchange(sim, &SyncRequest { cursor: sim.cursor, synced: sim.cursor, reach: sim.reach, push: vec![] })
                    .await?;
            sim.cursor = r.cursor;
        }
        Op::Edit => {
            sim.edits += 1;
            sim.doc
                .set_field(&FieldPath::top("participants"), &FieldValue::Integer(sim.edits), 1_763_769_700 + sim.edits)
                .map_err(|e| e.to_string())?;
            let heads = sim.doc.heads();
            let push = PushRecord {
                record_id: sim.record_id.clone(),
                changes: sim.doc.bundle_since(&sim.acked).map_err(|e| e.to_string())?,
                heads: heads.iter().map(|h| h.0).collect(),
            };
            let r = exchange(
                sim,
                &SyncRequest { cursor: sim.cursor, synced: sim.cursor, reach: sim.reach, push: vec![push] },
            )
            .await?;
            if r.accepted != vec![sim.record_id.clone()] {
                return Err(format!("edit not accepted: {:?}", r.rejected));
            }
            sim.acked = heads;
            sim.cursor = r.cursor;
            tally.acked_edits += 1;
        }
        Op::FirstDownload => {
            // As a phone that lost its store: everything of its commune, page by page, sending
            // back the account-and-scope token the first page brings (as the phone does; a
            // page without it says the device's scope is unknown, and the download restarts).
            let (mut cursor, mut records, mut reach) = (0, 0, 0);
            for page in 1.. {
                let r = exchange(sim, &SyncRequest { cursor, synced: 0, reach, push: vec![] }).await?;
                records += r.records.len();
                cursor = r.cursor;
                reach = r.reach.as_ref().map_or(reach, |r| r.token);
                if !r.more {
                    break;
                }
                if page == 1000 {
                    return Err(format!("the first download did not end after {page} pages"));
                }
            }
            if records < 100 {
                return Err(format!("the first download brought {records} records"));
            }
        }
        Op::Upload => {
            // Random bytes, so that every photo is new (seeded by the phone's actor and its
            // operation count): 150 KB in 64 KiB chunks.
            let actor = sim.actor.to_bytes();
            let mut seed =
                u64::from_le_bytes(actor[..8].try_into().unwrap_or([1; 8])) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let photo: Vec<u8> = (0..150_000)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let sha = hex::encode(sha2::Sha256::digest(&photo));
            for (i, chunk) in photo.chunks(protocol::CHUNK_BYTES).enumerate() {
                let url = format!(
                    "{}{}/{sha}?offset={}&size={}&content_type=image/jpeg",
                    sim.url,
                    protocol::ATTACHMENTS_PATH,
                    i * protocol::CHUNK_BYTES,
                    photo.len()
                );
                let answer = sim
                    .http
                    .put(url)
                    .bearer_auth(&sim.token)
                    .body(chunk.to_vec())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if answer.status() != 200 {
                    return Err(format!("upload answered {}", answer.status()));
                }
            }
        }
        Op::Watch => {
            let url = format!("{}{}?cursor={}&wait=2&reach={}", sim.url, protocol::WATCH_PATH, sim.cursor, sim.reach);
            let answer = sim.http.get(url).bearer_auth(&sim.token).send().await.map_err(|e| e.to_string())?;
            if answer.status() != 200 {
                return Err(format!("watch answered {}", answer.status()));
            }
        }
    }
    Ok(())
}

/// The server's anonymous resident memory (heap and stacks, not the database file's pages that
/// SQLite maps in) every second while `running`: (seconds since start, KiB).
fn sample_memory(server: &Server, running: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<(f64, u64)>> {
    let pid = server.pid();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut samples = Vec::new();
        while running.load(Ordering::Relaxed) {
            samples.push((started.elapsed().as_secs_f64(), pid.map_or(0, |p| common::rss_kib_of(p, "RssAnon"))));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        samples
    })
}

/// Runs the load on one backend and prints its tables; false if anything failed.
async fn run(backend: &str, devices: usize, secs: f64) -> bool {
    // A phone closes its connection a few seconds after its sync, as the app does when it goes
    // back to sleep: the memory measured after the load is the server's, not its open sockets'.
    let http = common::http_builder()
        .pool_max_idle_per_host(devices * 2)
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let (server, sims) = seeded(&http, devices).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let anon = |server: &Server| server.pid().map_or(0, |p| common::rss_kib_of(p, "RssAnon"));
    let (before, before_rss) = (anon(&server), server.rss_kib());
    let running = Arc::new(AtomicBool::new(true));
    let sampler = sample_memory(&server, running.clone());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = sims
        .into_iter()
        .enumerate()
        .map(|(i, mut sim)| {
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut roll = 0x5014_2026_u64 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut n = 0u64;
                // Spread the starts over the first second.
                tokio::time::sleep(Duration::from_millis((i as u64 * 1000) / devices.max(1) as u64)).await;
                while Instant::now() < deadline {
                    roll = roll.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let op = Op::pick(roll >> 33);
                    n += 1;
                    let begun = Instant::now();
                    match perform(&mut sim, op, &mut tally, n).await {
                        Ok(()) => tally.latencies.entry(op).or_default().push(begun.elapsed()),
                        Err(e) => tally.failures.entry(op).or_default().push(e),
                    }
                    // A phone's pause between syncs: 0.5–1.5 s.
                    tokio::time::sleep(Duration::from_millis(500 + (roll >> 20) % 1000)).await;
                }
                (sim, tally)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("a phone's task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Afterwards, idle: memory should fall back once the document cache's idle entries have
    // been swept (they may wait up to one and a half IDLE).
    let quiet = diaban_server::store::docs::IDLE * 3 / 2 + Duration::from_secs(5);
    tokio::time::sleep(quiet).await;
    running.store(false, Ordering::Relaxed);
    let curve = sampler.await.expect("sampler");
    let (after, after_rss) = (anon(&server), server.rss_kib());
    let peak = curve.iter().map(|(_, kib)| *kib).max().unwrap_or(after);

    println!("\n## Load: {devices} phones for {secs:.0} s, {backend}\n");
    println!("| operation | done | per s | p50 ms | p99 ms | failed |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut all = Vec::new();
    let mut failures = 0;
    for op in [Op::Idle, Op::Edit, Op::FirstDownload, Op::Upload, Op::Watch] {
        let mut lat: Vec<Duration> =
            results.iter().flat_map(|(_, t)| t.latencies.get(&op).cloned().unwrap_or_default()).collect();
        let failed: Vec<String> =
            results.iter().flat_map(|(_, t)| t.failures.get(&op).cloned().unwrap_or_default()).collect();
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or_default()
        };
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} |",
            op.name(),
            lat.len(),
            lat.len() as f64 / elapsed,
            pct(0.5).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
            failed.len()
        );
        if let Some(first) = failed.first() {
            println!("|   first failure: {first} | | | | | |");
        }
        failures += failed.len();
        all.extend(lat);
    }
    all.sort();
    let p99 =
        all.get(((all.len() as f64 * 0.99) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default();
    println!(
        "| **all** | {} | {:.0} | | {:.1} | {failures} |",
        all.len(),
        all.len() as f64 / elapsed,
        p99.as_secs_f64() * 1000.0
    );

    let (lost, duplicated) = check_exactly_once(&server, &results).await;
    println!(
        "\nAcknowledged edits: {}; lost {lost}, committed more than once {duplicated}.",
        results.iter().map(|(_, t)| t.acked_edits).sum::<i64>()
    );
    println!(
        "Server memory (anonymous RSS): before {:.0} MiB, peak {:.0} MiB, {} s after {:.0} MiB (whole RSS, with the database's mapped pages: {:.0} → {:.0} MiB).",
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        quiet.as_secs(),
        after as f64 / 1024.0,
        before_rss as f64 / 1024.0,
        after_rss as f64 / 1024.0
    );
    print_curve(&curve);
    // Memory back down: within a quarter of the peak's growth above the start.
    let settled = after <= before + (peak.saturating_sub(before)) / 4 + 16 * 1024;
    if !settled {
        println!("MEMORY did not go back down");
    }
    failures == 0 && lost == 0 && duplicated == 0 && settled
}

/// Every phone's record as stored: its changes are exactly the ones the phone made and had
/// acknowledged (nothing lost), and the change log holds one commit per acknowledged push
/// (nothing committed twice): (lost, duplicated).
async fn check_exactly_once(server: &Server, results: &[(Sim, Tally)]) -> (usize, usize) {
    let (mut lost, mut duplicated) = (0, 0);
    for (sim, tally) in results {
        let Some(bytes) = server.stored_document(&sim.record_id).await else {
            lost += 1;
            continue;
        };
        let mut stored = RecordDoc::load(&bytes, None).expect("a stored document");
        let mut doc = sim.doc.clone_doc();
        let acked_count = doc.changes_since(&[]).len() - doc.changes_since(&sim.acked).len();
        let stored_changes = stored.changes_since(&[]).len();
        if !stored.missing_deps(&sim.acked).is_empty() || stored_changes < acked_count {
            lost += 1;
        }
        let commits = server.commits_of(&sim.record_id).await;
        // One commit at creation (the seeding), one per acknowledged edit.
        if commits > 1 + tally.acked_edits {
            duplicated += 1;
        }
        if commits < 1 + tally.acked_edits {
            lost += 1;
        }
    }
    (lost, duplicated)
}

fn print_curve(curve: &[(f64, u64)]) {
    let Some(&(end, _)) = curve.last() else { return };
    let step = if end > 600.0 { 60.0 } else { (end / 10.0).max(1.0) };
    let mut next = 0.0;
    let points: Vec<String> = curve
        .iter()
        .filter(|(t, _)| {
            let take = *t >= next;
            if take {
                next = t + step;
            }
            take
        })
        .map(|(t, kib)| format!("{t:.0} s: {:.0} MiB", *kib as f64 / 1024.0))
        .collect();
    println!("Memory curve: {}.", points.join(", "));
}
