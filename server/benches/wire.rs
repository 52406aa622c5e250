//! What a sync costs on the wire over HTTPS, and how long it takes on a 2G link: a real phone
//! (the core `Device`) talks to a release server on its own TLS (ECDSA P-256, a test authority
//! made now) through a proxy on loopback that counts every byte both ways (TLS records, HTTP
//! headers and all) and the round trips (a client flight answered by a server flight), and
//! that can shape the link like 2G: 50 kbit/s each way, 600 ms round trip, a stall now and then.
//!
//!     cargo bench -p diaban-server --bench wire
//!
//! Prints the wire table (bytes, round trips after the TCP handshake) and the 2G table (wall
//! time), for: a daily idle sync with a session to resume, the same with a full handshake (a
//! new install, or an app restarted: rustls cannot keep a ticket across processes), one edit,
//! 100 edits over 10 records, and the first download of a commune (200 people, 12 reports);
//! then a link cut in the middle of a first download, and what the resumed download re-sends.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{KEY, PASSWORD, Server};
use diaban_core::tls::TlsSettings;
use diaban_core::{Device, FieldValue};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

/// How the proxy shapes the link.
#[derive(Clone, Copy)]
struct Link {
    /// Bytes per second each way (0: unshaped).
    rate: u64,
    /// One-way delay.
    delay: Duration,
    /// Every this many bytes, the link stalls for a second (0: never).
    stall_every: u64,
}

const LOOPBACK: Link = Link { rate: 0, delay: Duration::ZERO, stall_every: 0 };
const TWO_G: Link = Link { rate: 50_000 / 8, delay: Duration::from_millis(300), stall_every: 200_000 };

/// What the proxy saw.
#[derive(Default)]
struct Counters {
    up: AtomicU64,
    down: AtomicU64,
    /// Client flights answered by the server: the last direction data moved in (0 none,
    /// 1 up, 2 down) and the number of up→down turns.
    last: AtomicUsize,
    turns: AtomicU64,
    /// The proxied connections' tasks, to cut them all.
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Counters {
    /// Cuts every connection open now, as a link that drops.
    fn cut(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.drain(..).for_each(|t| t.abort());
        }
    }

    fn take(&self) -> (u64, u64, u64) {
        let r = (
            self.up.swap(0, Ordering::SeqCst),
            self.down.swap(0, Ordering::SeqCst),
            self.turns.swap(0, Ordering::SeqCst),
        );
        self.last.store(0, Ordering::SeqCst);
        r
    }
}

/// A proxy on loopback to `target`: counts, shapes, and cuts on demand. Its port.
async fn proxy(target: u16, link: Link, counters: Arc<Counters>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(pipe(cr, sw, link, counters.clone(), true)).abort_handle();
            let down = tokio::spawn(pipe(sr, cw, link, counters.clone(), false)).abort_handle();
            if let Ok(mut tasks) = counters.tasks.lock() {
                tasks.extend([up, down]);
            }
        }
    });
    port
}

/// One direction of a proxied connection: what is read is delayed, paced and counted.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    counters: Arc<Counters>,
    up: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent_since_stall = 0u64;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let (mine, theirs) = if up { (1, 2) } else { (2, 1) };
        if !up && counters.last.swap(mine, Ordering::SeqCst) == theirs {
            counters.turns.fetch_add(1, Ordering::SeqCst);
        } else if up {
            counters.last.store(mine, Ordering::SeqCst);
        }
        (if up { &counters.up } else { &counters.down }).fetch_add(n as u64, Ordering::SeqCst);
        if link.rate > 0 {
            tokio::time::sleep(link.delay + Duration::from_secs_f64(n as f64 / link.rate as f64)).await;
            sent_since_stall += n as u64;
            if link.stall_every > 0 && sent_since_stall >= link.stall_every {
                sent_since_stall = 0;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A test authority, and a server certificate for localhost it signed (PEM files in `dir`).
fn authority(dir: &std::path::Path) -> (String, String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "Địa bàn bench CA");
    let ca =
        CertifiedIssuer::self_signed(params, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key")).expect("CA");
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let cert =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("params").signed_by(&key, &ca).expect("cert");
    let (c, k) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&c, cert.pem()).expect("write");
    std::fs::write(&k, key.serialize_pem()).expect("write");
    (c.to_string_lossy().into_owned(), k.to_string_lossy().into_owned(), ca.pem())
}

/// One measured workload: bytes up and down, round trips, seconds.
struct Measure {
    name: &'static str,
    up: u64,
    down: u64,
    trips: u64,
    secs: f64,
}

async fn phone(server: &Server, port: u16, roots: &str, name: &str, user: Option<&str>) -> Device {
    let url = format!("https://localhost:{port}");
    let path = server.dir.path().join(format!("{name}.sqlite"));
    let mut device = Device::open(&path, &KEY, &url, name).await.expect("open");
    device.set_tls(&TlsSettings { pins: Vec::new(), extra_roots_pem: Some(roots.to_owned()) }).expect("tls");
    if let Some(user) = user {
        device.login(user, PASSWORD).await.expect("login");
    }
    device
}

/// Runs `work` and what crossed the proxy meanwhile.
async fn measure<F: std::future::Future<Output = ()>>(counters: &Counters, name: &'static str, work: F) -> Measure {
    counters.take();
    let started = Instant::now();
    work.await;
    let secs = started.elapsed().as_secs_f64();
    let (up, down, trips) = counters.take();
    Measure { name, up, down, trips, secs }
}

/// The workloads, through a proxy shaped like `link`.
async fn workloads(server: &Server, roots: &str, link: Link, tag: &str) -> Vec<Measure> {
    let target: u16 = server.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let counters = Arc::new(Counters::default());
    let port = proxy(target, link, counters.clone()).await;
    let mut out = Vec::new();
    // The first download of a commune by a new phone: sign in, then sync everything.
    let officer = phone(server, port, roots, &format!("officer-{tag}"), None).await;
    out.push(
        measure(&counters, "first download of a commune (sign-in and sync)", async {
            officer.login("a", PASSWORD).await.expect("login");
            officer.sync().await.expect("download");
        })
        .await,
    );
    out.push(
        measure(&counters, "idle sync on the open connection", async {
            officer.sync().await.expect("idle");
        })
        .await,
    );
    // The link dropped overnight: the next sync resumes the TLS session (the app still runs).
    counters.cut();
    out.push(
        measure(&counters, "daily idle sync, session resumed", async {
            officer.sync().await.expect("idle");
        })
        .await,
    );
    // The app was restarted (or newly installed): rustls keeps no ticket across processes.
    counters.cut();
    let path = server.dir.path().join(format!("officer-{tag}.sqlite"));
    let mut restarted =
        Device::open(&path, &KEY, &format!("https://localhost:{port}"), "restarted").await.expect("open");
    restarted.set_tls(&TlsSettings { pins: Vec::new(), extra_roots_pem: Some(roots.to_owned()) }).expect("tls");
    out.push(
        measure(&counters, "daily idle sync, full handshake (app restarted)", async {
            restarted.sync().await.expect("idle");
        })
        .await,
    );
    officer.close().await;
    let ids: Vec<String> =
        restarted.records(Some("person_record"), None).await.expect("list").into_iter().map(|r| r.id).collect();
    restarted.set_field(&ids[0], "occupation", FieldValue::Text("Làm nương".into())).await.expect("edit");
    out.push(
        measure(&counters, "one edit", async {
            restarted.sync().await.expect("edit");
        })
        .await,
    );
    for (n, id) in ids.iter().take(10).enumerate() {
        for k in 0..10 {
            let value = FieldValue::Text(format!("Bản {n}-{k}"));
            restarted.set_field(id, "occupation", value).await.expect("edit");
        }
    }
    out.push(
        measure(&counters, "100 edits over 10 records", async {
            restarted.sync().await.expect("edits");
        })
        .await,
    );
    restarted.close().await;
    // A link cut in the middle of a first download (on the shaped link, where there is time
    // to cut it): the next sync goes on from the last page the phone stored.
    let interrupted = phone(server, port, roots, &format!("cut-{tag}"), None).await;
    if link.rate > 0 {
        let (cutter, whole) = (counters.clone(), out[0].down);
        counters.take();
        let watcher = tokio::spawn(async move {
            while cutter.down.load(Ordering::SeqCst) < whole / 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cutter.cut();
        });
        let first = interrupted.login("a2", PASSWORD).await;
        watcher.abort();
        let (_, before_cut, _) = counters.take();
        // Signed in already (the token is kept before the sync): the next sync goes on.
        let mut resumed = measure(&counters, "download resumed after a cut half way", async {
            interrupted.sync().await.expect("resume");
        })
        .await;
        println!(
            "{tag}: the link was cut after {before_cut} bytes of a {whole}-byte first download ({}); the resumed sync took {} bytes down.",
            if first.is_err() { "the sign-in's sync failed there" } else { "the sign-in's sync had finished" },
            resumed.down
        );
        resumed.name = "download resumed after a cut half way";
        out.push(resumed);
    }
    interrupted.close().await;
    out
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, roots) = authority(dir.path());
    let server = Server::with_options(
        &[("a", "03694", "field_officer"), ("a2", "03694", "field_officer")],
        &["--tls-cert", &cert, "--tls-key", &key],
    );
    // The commune: 200 people under management and 12 monthly reports, written by a seeding
    // phone straight to the server.
    let target: u16 = server.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
    let seeder = phone(&server, target, &roots, "seeder", Some("a")).await;
    for i in 0..200 {
        let id = seeder.create_record("person_record", None).await.expect("create");
        for (field, value) in [
            ("full_name", FieldValue::Text(format!("Lò Văn Người {i}"))),
            ("sex", FieldValue::Choice(if i % 5 == 0 { "female" } else { "male" }.into())),
            ("birth_date", FieldValue::Date(format!("19{:02}-0{}-1{}", 60 + i % 40, 1 + i % 9, i % 10))),
            ("residence_kind", FieldValue::Choice("permanent".into())),
            ("address", FieldValue::Text(format!("Bản Nà Sản, tổ {}", i % 12))),
            ("ethnicity", FieldValue::Text("Thái".into())),
        ] {
            seeder.set_field(&id, field, value).await.expect("answer");
        }
        for month in 1..=6 {
            let check = seeder.add_row(&id, "checks").await.expect("check");
            seeder
                .set_field(&id, &format!("checks/{check}/check_date"), FieldValue::Date(format!("2026-{month:02}-05")))
                .await
                .expect("date");
            seeder
                .set_field(&id, &format!("checks/{check}/found_at_home"), FieldValue::Boolean(month % 4 != 0))
                .await
                .expect("home");
        }
        let row = seeder.add_row(&id, "periods").await.expect("row");
        for (field, value) in [
            ("status", FieldValue::Choice("user_managed".into())),
            ("start_date", FieldValue::Date("2026-03-01".into())),
            ("duration_months", FieldValue::Integer(12)),
            ("decision_no", FieldValue::Text(format!("{}/QĐ-UBND", 10 + i))),
        ] {
            seeder.set_field(&id, &format!("periods/{row}/{field}"), value).await.expect("period");
        }
    }
    for m in 1..=12 {
        let id = seeder.create_record("commune_monthly_report", Some(&format!("2026-{m:02}"))).await.expect("report");
        for (field, value) in [("drug_cases", 1), ("offenders", 2), ("art256a_cases", 0)] {
            seeder.set_field(&id, field, FieldValue::Integer(value)).await.expect("figure");
        }
        let text = "Tình hình tội phạm và tệ nạn ma túy trên địa bàn cơ bản được kiểm soát.".repeat(4);
        seeder.set_field(&id, "assessment", FieldValue::Text(text)).await.expect("assessment");
    }
    seeder.sync().await.expect("seed");
    seeder.close().await;

    let wire = workloads(&server, &roots, LOOPBACK, "loopback").await;
    println!(
        "\n## The wire over HTTPS (TLS 1.3, ECDSA P-256, X25519): bytes both ways with TLS records and HTTP headers\n"
    );
    println!("| workload | bytes up | bytes down | total | round trips |");
    println!("|---|---:|---:|---:|---:|");
    for m in &wire {
        println!("| {} | {} | {} | {} | {} |", m.name, m.up, m.down, m.up + m.down, m.trips);
    }
    let slow = workloads(&server, &roots, TWO_G, "2G").await;
    println!("\n## On a 2G link (50 kbit/s each way, 600 ms round trip, a 1 s stall every 200 KB)\n");
    println!("| workload | seconds | bytes | round trips |");
    println!("|---|---:|---:|---:|");
    for m in &slow {
        println!("| {} | {:.1} | {} | {} |", m.name, m.secs, m.up + m.down, m.trips);
    }
}
