//! The sync benchmark: prints tables of (1) bytes and round trips of our protocol against plain
//! per-document Automerge sync on the same workloads, (2) server throughput and latency for idle
//! and single-edit syncs from 50, 200 and 500 simulated devices, every edit durably committed
//! (SQLite, WAL, synchronous=FULL) before it is acknowledged, with the server's resident memory
//! once 10,000 records are stored and synced.
//!
//!     cargo bench -p diaban-server --bench sync_load
//!
//! DIABAN_BENCH_SECS (default 5) sets the seconds per run, DIABAN_BENCH_DEVICES (default
//! 50,200,500) the device counts. With DIABAN_TEST_PG set to a cluster's URL (`tests/pg.sh
//! start DIR` starts one and prints it), the throughput table is printed for PostgreSQL too.
//!
//! DIABAN_BENCH_AB=prog1,prog2,… compares server builds instead: back-to-back edit syncs from
//! 200 devices (or the first of DIABAN_BENCH_DEVICES) against each in turn, DIABAN_BENCH_ROUNDS
//! (default 6) times, so that the machine's drifting speed falls on every build alike.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use automerge::sync::{self as am_sync, SyncDoc};
use automerge::{ActorId, AutoCommit};
use common::sim::{Sim, seeded};
use common::{FaultyLink, KEY, PASSWORD, Server};
use diaban_core::protocol;
use diaban_core::record::{FieldPath, RecordDoc, RecordMeta};
use diaban_core::{Device, FieldValue};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        if let Ok(programs) = std::env::var("DIABAN_BENCH_AB") {
            return compare(&programs.split(',').map(str::to_owned).collect::<Vec<_>>()).await;
        }
        bytes_table().await;
        let ours = load_table("SQLite (WAL, synchronous=FULL)").await;
        // The same on PostgreSQL, when a cluster is given (tests/pg.sh start DIR prints its URL).
        if common::use_postgres() {
            load_table("PostgreSQL (one node, synchronous_commit=on)").await;
        }
        automerge_repo_table(&ours);
    });
}

fn meta(id: &str) -> RecordMeta {
    meta_in(id, "03694")
}

fn meta_in(id: &str, unit: &str) -> RecordMeta {
    common::meta(id, unit, "propaganda_session")
}

// ---------------------------------------------------------------------------------------
// 1. Bytes and round trips against plain per-document Automerge sync.

/// A record like the ones a phone writes: created, then two answers.
fn record_doc(i: usize, actor: &ActorId) -> AutoCommit {
    let mut doc = RecordDoc::create(&meta(&format!("r{i}")), actor.clone()).expect("create");
    doc.set_field(&FieldPath::top("place"), &FieldValue::Text(format!("Nhà văn hoá bản {i}")), 1_763_769_601)
        .expect("edit");
    doc.set_field(&FieldPath::top("participants"), &FieldValue::Integer(i as i64), 1_763_769_602).expect("edit");
    AutoCommit::load(&doc.save()).expect("load")
}

fn set_participants(doc: &mut AutoCommit, value: i64) {
    use automerge::{ROOT, ReadDoc, transaction::Transactable};
    let Ok(Some((_, fields))) = doc.get(ROOT, "fields") else { panic!("a record has fields") };
    doc.put(&fields, "participants", value).expect("put");
    doc.commit();
}

/// Automerge's sync protocol between `a` and `b` until both are quiet: (bytes, round trips).
fn automerge_sync(
    a: &mut AutoCommit,
    b: &mut AutoCommit,
    sa: &mut am_sync::State,
    sb: &mut am_sync::State,
) -> (usize, usize) {
    let (mut bytes, mut trips) = (0, 0);
    loop {
        let to_b = a.sync().generate_sync_message(sa);
        if let Some(m) = &to_b {
            bytes += m.clone().encode().len();
            b.sync().receive_sync_message(sb, m.clone()).expect("receive");
        }
        let to_a = b.sync().generate_sync_message(sb);
        if let Some(m) = &to_a {
            bytes += m.clone().encode().len();
            a.sync().receive_sync_message(sa, m.clone()).expect("receive");
        }
        if to_b.is_none() && to_a.is_none() {
            return (bytes, trips);
        }
        trips += 1;
    }
}

/// The phone's and the server's copies of 1,000 documents with their persisted sync states;
/// every run is a new connection (a phone reconnecting), as with the HTTP protocol.
struct Plain {
    phone: Vec<AutoCommit>,
    server: Vec<AutoCommit>,
    phone_state: Vec<am_sync::State>,
    server_state: Vec<am_sync::State>,
}

impl Plain {
    fn run(&mut self, docs: std::ops::Range<usize>) -> (usize, usize) {
        let reconnect = |s: &am_sync::State| am_sync::State::decode(&s.encode()).expect("state");
        let mut total = (0, 0);
        for i in docs {
            let mut sa = reconnect(&self.phone_state[i]);
            let mut sb = reconnect(&self.server_state[i]);
            let (b, t) = automerge_sync(&mut self.phone[i], &mut self.server[i], &mut sa, &mut sb);
            (self.phone_state[i], self.server_state[i]) = (sa, sb);
            total = (total.0 + b, total.1 + t);
        }
        total
    }
}

/// idle, one edit, 100 edits over 10 documents, first download: (bytes, round trips).
fn plain_automerge() -> Vec<(usize, usize)> {
    let actor = ActorId::random();
    let mut plain = Plain {
        phone: (0..1000).map(|i| record_doc(i, &actor)).collect(),
        server: (0..1000).map(|_| AutoCommit::new()).collect(),
        phone_state: (0..1000).map(|_| am_sync::State::new()).collect(),
        server_state: (0..1000).map(|_| am_sync::State::new()).collect(),
    };
    let upload = plain.run(0..1000);
    let idle = plain.run(0..1000);
    set_participants(&mut plain.phone[0], 57);
    let one = plain.run(0..1);
    for (n, doc) in plain.phone[1..11].iter_mut().enumerate() {
        for k in 0..10 {
            set_participants(doc, (n * 10 + k) as i64);
        }
    }
    let hundred = plain.run(1..11);
    // A new phone downloading everything is the upload the other way round.
    vec![idle, one, hundred, upload]
}

/// The same workloads through the real server and a real device store.
async fn ours() -> Vec<(usize, usize)> {
    let server = Server::start();
    let link = FaultyLink::new(&server.url);
    let mut a = Device::open(&server.dir.path().join("a.sqlite"), &KEY, &server.url, "a").await.expect("open");
    a.set_sync_link(link.clone());
    a.login("a", PASSWORD).await.expect("login");
    let mut ids = Vec::new();
    for i in 0..1000 {
        let id = a.create_record("propaganda_session", None).await.expect("create");
        a.set_field(&id, "place", FieldValue::Text(format!("Nhà văn hoá bản {i}"))).await.expect("edit");
        a.set_field(&id, "participants", FieldValue::Integer(i)).await.expect("edit");
        ids.push(id);
    }
    let measured = |link: &FaultyLink| {
        let e = link.exchanges();
        link.clear();
        (e.iter().map(|(u, d)| u + d).sum::<usize>(), e.len())
    };
    a.sync_records().await.expect("upload");
    link.clear();
    a.sync_records().await.expect("idle");
    let idle = measured(&link);
    a.set_field(&ids[0], "participants", FieldValue::Integer(57)).await.expect("edit");
    a.sync_records().await.expect("one");
    let one = measured(&link);
    for (n, id) in ids[1..11].iter().enumerate() {
        for k in 0..10 {
            a.set_field(id, "participants", FieldValue::Integer((n * 10 + k) as i64)).await.expect("edit");
        }
    }
    a.sync_records().await.expect("hundred");
    let hundred = measured(&link);
    let fresh = FaultyLink::new(&server.url);
    let mut b = Device::open(&server.dir.path().join("b.sqlite"), &KEY, &server.url, "b").await.expect("open");
    b.set_sync_link(fresh.clone());
    b.login("a2", PASSWORD).await.expect("login");
    let download = measured(&fresh);
    vec![idle, one, hundred, download]
}

async fn bytes_table() {
    let plain = plain_automerge();
    let ours = ours().await;
    println!(
        "\nBytes (request + answer bodies) and round trips: Địa bàn protocol {} vs plain per-document Automerge sync",
        protocol::PROTOCOL_VERSION
    );
    println!(
        "| workload | ours: bytes | ours: round trips | Automerge: bytes | Automerge: round trips | Automerge / ours |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let names =
        ["idle check, 1,000 records", "one field edited", "100 edits over 10 records", "first download, 1,000 records"];
    for ((name, (ob, ot)), (ab, at)) in names.iter().zip(ours).zip(plain) {
        println!("| {name} | {ob} | {ot} | {ab} | {at} | {:.1}× |", ab as f64 / ob.max(1) as f64);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Throughput and latency with many devices.

/// One sync of `op` by a simulated phone.
async fn run(sim: &mut Sim, op: Op) {
    match op {
        Op::Idle => {
            sim.exchange(Vec::new()).await;
        }
        Op::Edit => {
            sim.edits += 1;
            sim.doc
                .set_field(&FieldPath::top("participants"), &FieldValue::Integer(sim.edits), 1_763_769_700)
                .expect("edit");
            sim.push_own().await;
        }
    }
}

#[derive(Clone, Copy)]
enum Op {
    Idle,
    Edit,
}

/// How the devices offer their syncs: back to back (each starts its next sync when its last
/// is answered: the most the server manages), or together at a fixed rate per second, each at
/// its own even interval (latency then counts from when a sync was due, so a server that falls
/// behind shows it).
#[derive(Clone, Copy)]
enum Pace {
    BackToBack,
    Rate(f64),
}

struct Run {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// Milliseconds of CPU per sync: the server's, and the simulated devices' (this process).
    server_cpu: f64,
    devices_cpu: f64,
}

/// Every device runs `op` for `secs` at `pace`.
async fn load(server: &Server, sims: Vec<Sim>, op: Op, secs: f64, pace: Pace) -> (Vec<Sim>, Run) {
    let (server_cpu, devices_cpu) = (server.cpu_secs(), common::cpu_secs(std::process::id()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let count = sims.len();
    let tasks: Vec<_> = sims
        .into_iter()
        .enumerate()
        .map(|(i, mut sim)| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let interval = match pace {
                    Pace::BackToBack => Duration::ZERO,
                    Pace::Rate(rate) => Duration::from_secs_f64(count as f64 / rate),
                };
                let mut due = started + interval.mul_f64(i as f64 / count as f64);
                while due < deadline {
                    tokio::time::sleep_until(due.into()).await;
                    let begun = Instant::now();
                    run(&mut sim, op).await;
                    let done = Instant::now();
                    latencies.push(match pace {
                        Pace::BackToBack => done - begun,
                        Pace::Rate(_) => done - due,
                    });
                    due = match pace {
                        Pace::BackToBack => done,
                        Pace::Rate(_) => due + interval,
                    };
                }
                (sim, latencies)
            })
        })
        .collect();
    let (mut sims, mut all) = (Vec::new(), Vec::new());
    for task in tasks {
        let (sim, latencies) = task.await.expect("device task");
        sims.push(sim);
        all.extend(latencies);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied();
    let syncs = all.len().max(1) as f64;
    let run = Run {
        per_sec: all.len() as f64 / elapsed,
        p50: pct(0.50).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
        server_cpu: (server.cpu_secs() - server_cpu) / syncs * 1000.0,
        devices_cpu: (common::cpu_secs(std::process::id()) - devices_cpu) / syncs * 1000.0,
    };
    (sims, run)
}

/// Seconds per run: DIABAN_BENCH_SECS, 5 by default.
fn run_secs() -> f64 {
    std::env::var("DIABAN_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The targets the paced runs offer: idle and single-edit syncs per second.
const IDLE_RATES: [f64; 1] = [2000.0];
/// 1,500/s is the target; 500/s is still far above what 200 communes' phones send (an officer
/// syncs a few times a day), and shows the latency below saturation.
const EDIT_RATES: [f64; 2] = [500.0, 1500.0];

/// Our back-to-back edit runs: (devices, syncs per second, p50, p99, server RSS in MiB).
type EditRuns = Vec<(usize, f64, Duration, Duration, f64)>;

async fn load_table(backend: &str) -> EditRuns {
    let mut edits = Vec::new();
    let secs = run_secs();
    let http = common::http_builder().pool_max_idle_per_host(600).build().expect("client");
    println!("\nServer on {backend}; an edit is committed before it is answered; {secs} s per run.");
    println!(
        "Back to back: each device syncs again as soon as it is answered. Paced: the devices together offer idle syncs at {IDLE_RATES:?} and edit syncs at {EDIT_RATES:?} per second, latency counted from when each sync was due."
    );
    println!("CPU per sync: the server's, and the simulated devices' (the bench process, on the same 2 cores).");
    println!(
        "| devices | records stored | sync | back to back: syncs/s | p50 | p99 | server CPU/sync | devices CPU/sync | paced: offered/s | syncs/s | p50 | p99 | server RSS |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let counts: Vec<usize> = std::env::var("DIABAN_BENCH_DEVICES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![50, 200, 500]);
    for devices in counts {
        let (server, mut sims) = seeded(&http, devices).await;
        let stored = server.count("SELECT COUNT(*) FROM records").await;
        for (name, op, rates) in [("idle", Op::Idle, &IDLE_RATES[..]), ("edit", Op::Edit, &EDIT_RATES[..])] {
            let (back, flat) = load(&server, sims, op, secs, Pace::BackToBack).await;
            sims = back;
            for (i, rate) in rates.iter().enumerate() {
                let (back, paced) = load(&server, sims, op, secs, Pace::Rate(*rate)).await;
                sims = back;
                // The back-to-back figures once per load, on its first row.
                let flat_cells = if i == 0 {
                    format!(
                        "{:.0} | {:.1} ms | {:.1} ms | {:.2} ms | {:.2} ms",
                        flat.per_sec,
                        ms(flat.p50),
                        ms(flat.p99),
                        flat.server_cpu,
                        flat.devices_cpu
                    )
                } else {
                    " | | | | ".into()
                };
                println!(
                    "| {devices} | {stored} | {name} | {flat_cells} | {rate:.0} | {:.0} | {:.1} ms | {:.1} ms | {:.0} MiB |",
                    paced.per_sec,
                    ms(paced.p50),
                    ms(paced.p99),
                    server.rss_kib() as f64 / 1024.0
                );
            }
            if name == "edit" {
                edits.push((devices, flat.per_sec, flat.p50, flat.p99, server.rss_kib() as f64 / 1024.0));
            }
        }
    }
    edits
}

/// Back-to-back edit syncs against each server program in turn, round after round; the median
/// of each. Each program's database is seeded by this build's server, then served by the
/// program: the builds compared must know this build's schema.
async fn compare(programs: &[String]) {
    let secs = run_secs();
    let rounds: usize = std::env::var("DIABAN_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6).max(1);
    let devices = std::env::var("DIABAN_BENCH_DEVICES")
        .ok()
        .and_then(|s| s.split(',').next().and_then(|n| n.trim().parse().ok()))
        .unwrap_or(200);
    let http = common::http_builder().pool_max_idle_per_host(600).build().expect("client");
    let mut setups = Vec::new();
    for program in programs {
        let (mut server, sims) = seeded(&http, devices).await;
        server.kill();
        server.program = program.into();
        server.run();
        setups.push((server, sims, Vec::new()));
    }
    println!("Edit syncs back to back, {devices} devices, {secs} s per run: syncs/s (server CPU per sync)");
    println!("| round | {} |", programs.join(" | "));
    println!("|---:|{}", "---:|".repeat(programs.len()));
    for round in 1..=rounds {
        let mut cells = Vec::new();
        for (server, sims, runs) in setups.iter_mut() {
            let (back, run) = load(server, std::mem::take(sims), Op::Edit, secs, Pace::BackToBack).await;
            *sims = back;
            cells.push(format!("{:.0} ({:.2} ms)", run.per_sec, run.server_cpu));
            runs.push((run.per_sec, run.server_cpu));
        }
        println!("| {round} | {} |", cells.join(" | "));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<String> = setups
        .iter()
        .map(|(_, _, runs)| {
            let rate = median(runs.iter().map(|r| r.0).collect());
            let cpu = median(runs.iter().map(|r| r.1).collect());
            format!("{rate:.0} ({cpu:.2} ms)")
        })
        .collect();
    println!("| median | {} |", medians.join(" | "));
    // Each build's server CPU per sync against the first's in the same round: the fairest
    // figure when the machine's speed drifts from round to round.
    let first: Vec<f64> = setups[0].2.iter().map(|r| r.1).collect();
    let ratios: Vec<String> = setups
        .iter()
        .map(|(_, _, runs)| {
            let ratio = median(runs.iter().zip(&first).map(|(r, f)| r.1 / f).collect());
            format!("{ratio:.3}")
        })
        .collect();
    println!("| CPU per sync / first's, median of rounds | {} |", ratios.join(" | "));
}

// ---------------------------------------------------------------------------------------
// 3. The automerge-repo sync server (npm) on the same edit workload, when node and npm are here.

fn automerge_repo_table(ours: &EditRuns) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/automerge-repo");
    let npm_ok = dir.join("node_modules").exists()
        || std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
    if !npm_ok {
        println!("\nskipped: the automerge-repo comparison needs node and npm (npm install in {})", dir.display());
        return;
    }
    let secs = run_secs().to_string();
    // With 10,000 documents stored by 50 clients, the automerge-repo server exits with an
    // unhandled "withTimeout: timed out after 60000ms" (Node 20, 2.5.6); 2,000 it holds.
    let records = std::env::var("DIABAN_BENCH_AMR_RECORDS").unwrap_or_else(|_| "2000".into());
    println!(
        "\nThe automerge-repo sync server (npm 2.5.6, Node {}) on the same single-field edit workload: each device its own WebSocket and {records} / devices documents (DIABAN_BENCH_AMR_RECORDS), edits back to back round robin over them, an edit done when the server's sync reply carries its heads. It checks no rights.",
        std::process::Command::new("node")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default(),
    );
    println!(
        "| devices | automerge-repo: edit syncs/s | p50 | p99 | devices CPU/sync | server RSS | ours: edit syncs/s | p50 | p99 | server RSS | ours / automerge-repo |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (devices, our_rate, our50, our99, our_rss) in ours {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
        let storage = tempfile::tempdir().expect("tempdir");
        let mut server = std::process::Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .arg(storage.path())
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node server.mjs");
        let mut ready = String::new();
        if let Some(out) = server.stdout.take() {
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut ready);
        }
        if ready.trim() != "ready" {
            let _ = server.kill();
            println!("| {devices} | failed: the automerge-repo server did not start |");
            continue;
        }
        // The load generator reconnects forever if the server goes away: give it ten minutes.
        let mut load = std::process::Command::new("node")
            .args(["load.mjs", &format!("ws://127.0.0.1:{port}"), &devices.to_string(), &records, &secs])
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("node load.mjs");
        let deadline = Instant::now() + Duration::from_secs(600);
        while load.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = load.kill();
        let load = load.wait_with_output().expect("load output");
        let rss = std::fs::read_to_string(format!("/proc/{}/status", server.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
            / 1024.0;
        let _ = server.kill();
        let _ = server.wait();
        let Ok(run) = serde_json::from_slice::<serde_json::Value>(&load.stdout) else {
            println!("| {devices} | failed: {} |", String::from_utf8_lossy(&load.stderr).lines().last().unwrap_or(""));
            continue;
        };
        let number = |k: &str| run[k].as_f64().unwrap_or(0.0);
        println!(
            "| {devices} | {:.0} | {:.1} ms | {:.1} ms | {:.2} ms | {rss:.0} MiB | {our_rate:.0} | {:.1} ms | {:.1} ms | {our_rss:.0} MiB | {:.1}× |",
            number("edits_per_sec"),
            number("p50_ms"),
            number("p99_ms"),
            number("devices_cpu_ms_per_edit"),
            ms(*our50),
            ms(*our99),
            our_rate / number("edits_per_sec").max(0.001)
        );
    }
}
