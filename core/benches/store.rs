//! The device store with 1,000 records: open it, list by template and state, persist one
//! field edit, render one record; and the resident memory once every record has been listed
//! and rendered. Targets: open < 200 ms, list < 20 ms, edit < 5 ms, memory < 50 MB.
//! Run: `cargo bench -p diaban-core --bench store`.

use std::path::Path;

use automerge::ActorId;
use criterion::{Criterion, criterion_group, criterion_main};
use diaban_core::device::{ACCOUNT_KEY, Device};
use diaban_core::form::Form;
use diaban_core::record::{FieldPath, RecordMeta};
use diaban_core::store::Store;
use diaban_core::sync::index;
use diaban_core::{FieldValue, Template};

const KEY: [u8; 32] = [9; 32];
const RECORDS: usize = 1000;
const TEMPLATE: &str = include_str!("../../server/pack/propaganda_session.json");

async fn seed(path: &Path) {
    let store = Store::open(path, &KEY).await.expect("store");
    let template: Template = serde_json::from_str(TEMPLATE).expect("template");
    store.put_template(&template).await.expect("template saved");
    let account = r#"{"username":"canbo","display_name":"Cán bộ","role":"field_officer","unit_code":"03694","unit_name":"Xã Mường Giôn"}"#;
    store.set_setting(ACCOUNT_KEY, account).await.expect("account");
    let form = Form::compile(template).expect("form");
    for i in 0..RECORDS {
        let meta = RecordMeta {
            record_id: format!("record-{i:04}"),
            template_id: "propaganda_session".into(),
            template_version: 1,
            unit_code: "03694".into(),
            created_by: "canbo".into(),
            created_at: 1_763_769_600 + i as i64,
            device_id: "bench".into(),
            period: None,
        };
        let mut doc = form.new_record(&meta, ActorId::random(), 1_763_769_600).expect("record");
        let values = [
            ("session_date", FieldValue::Date("2026-11-20".into())),
            ("place", FieldValue::Text(format!("Nhà văn hóa bản số {i}"))),
            ("audience_group", FieldValue::Choice("youth".into())),
            ("participants", FieldValue::Integer(i as i64)),
            ("notes", FieldValue::Text("Tuyên truyền về tác hại của ma túy tổng hợp cho thanh niên trong bản".into())),
        ];
        for (name, value) in &values {
            doc.set_field(&FieldPath::top(name), value, 1_763_769_600).expect("edit");
        }
        if i % 3 == 0 {
            doc.append_event(diaban_core::record::EventKind::Submit, "canbo", None, 1_763_769_601).expect("submit");
        }
        store.put_record(&index(doc, None, Vec::new(), 1_763_769_600 + i as i64).expect("index")).await.expect("write");
    }
    store.close().await;
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("phone.sqlite");
    rt.block_on(seed(&path));

    c.bench_function("open a store of 1,000 records", |b| {
        b.iter(|| {
            rt.block_on(async {
                let device = Device::open(&path, &KEY, "http://127.0.0.1:9", "bench").await.expect("open");
                device.close().await;
            })
        })
    });

    let device = rt.block_on(Device::open(&path, &KEY, "http://127.0.0.1:9", "bench")).expect("open");
    let drafts = rt.block_on(device.records(Some("propaganda_session"), Some("draft"))).expect("list");
    assert_eq!(drafts.len(), RECORDS - RECORDS.div_ceil(3));
    c.bench_function("list 1,000 records by template and state", |b| {
        b.iter(|| rt.block_on(device.records(Some("propaganda_session"), Some("draft"))).expect("list"))
    });

    // Edits go round the draft records, so each record gets a realistic handful of edits
    // rather than one record collecting thousands.
    let mut n = 0;
    c.bench_function("one field edit persisted", |b| {
        b.iter(|| {
            n += 1;
            let target = &drafts[n % drafts.len()].id;
            rt.block_on(device.set_field(target, "participants", FieldValue::Integer(n as i64))).expect("edit")
        })
    });

    let mut m = 0;
    c.bench_function("render one record (render model)", |b| {
        b.iter(|| {
            m += 1;
            rt.block_on(device.record(&drafts[m % drafts.len()].id)).expect("render")
        })
    });

    let before = resident_mib();
    for r in rt.block_on(device.records(None, None)).expect("list all") {
        rt.block_on(device.record(&r.id)).expect("render");
    }
    println!(
        "\nresident memory with the 1,000-record store open, every record listed and rendered once: {:.1} MiB (before rendering all: {:.1} MiB)\n",
        resident_mib(),
        before
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
