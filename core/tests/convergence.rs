//! Convergence of record documents (proptest).
//!
//! Five replicas of one record make random edits — fields, repeat rows (insert, delete, and
//! reorder through a row's `position` field), a tally counter, workflow events — while a
//! random network carries batches of their changes: batches start at random earlier points
//! (so changes arrive before their dependencies), are delivered out of order, delivered
//! twice, or dropped by partitions. Then the network heals and everything is delivered.
//!
//! Properties, after healing:
//! 1. **Convergence**: every replica has the same heads and the same values and events.
//! 2. **No edit lost**: for every field (top-level, or of a row that still exists), the set of
//!    values the document holds (the value plus any conflicting values) is exactly the set of
//!    writes to that field that no other write to the same field causally follows. A write is
//!    only ever replaced by a write made after seeing it.
//! 3. The tally is the sum of every increment; every appended event is present exactly once;
//!    the rows are exactly those added and not deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::{ActorId, ChangeHash};
use diaban_core::FieldValue;
use diaban_core::record::{Author, EventKind, FieldPath, RecordDoc, RecordMeta};
use proptest::prelude::*;
use serde_json::{Value as Json, json};

const REPLICAS: usize = 5;
const FIELDS: [&str; 3] = ["place", "participants", "notes"];
const ROW_FIELDS: [&str; 2] = ["plants", "position"];

#[derive(Clone, Debug)]
enum Op {
    Set { replica: usize, field: usize },
    Increment { replica: usize, by: i64 },
    AddRow { replica: usize },
    DeleteRow { replica: usize, pick: usize },
    SetRow { replica: usize, pick: usize, field: usize },
    Event { replica: usize },
    Send { from: usize, to: usize, since: usize },
    Deliver { pick: usize, duplicate: bool },
    Partition { a: usize, b: usize },
    Heal,
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPLICAS;
    prop_oneof![
        4 => (r.clone(), 0..FIELDS.len()).prop_map(|(replica, field)| Op::Set { replica, field }),
        2 => (r.clone(), 1..5i64).prop_map(|(replica, by)| Op::Increment { replica, by }),
        2 => r.clone().prop_map(|replica| Op::AddRow { replica }),
        1 => (r.clone(), any::<usize>()).prop_map(|(replica, pick)| Op::DeleteRow { replica, pick }),
        3 => (r.clone(), any::<usize>(), 0..ROW_FIELDS.len()).prop_map(|(replica, pick, field)| Op::SetRow { replica, pick, field }),
        1 => r.clone().prop_map(|replica| Op::Event { replica }),
        5 => (r.clone(), r.clone(), any::<usize>()).prop_map(|(from, to, since)| Op::Send { from, to, since }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, duplicate)| Op::Deliver { pick, duplicate }),
        1 => (r.clone(), r.clone()).prop_map(|(a, b)| Op::Partition { a, b }),
        1 => Just(Op::Heal),
    ]
}

/// What was written, and by which change.
#[derive(Default)]
struct Ledger {
    writes: HashMap<String, Vec<(Json, ChangeHash)>>,
    increments: i64,
    events: BTreeSet<String>,
    added_rows: BTreeSet<String>,
    deleted_rows: BTreeSet<String>,
}

struct Replica {
    doc: RecordDoc,
    /// Heads after each of this replica's steps: where a batch may start.
    past: Vec<Vec<ChangeHash>>,
}

fn meta() -> RecordMeta {
    RecordMeta {
        record_id: "r".into(),
        template_id: "t".into(),
        template_version: 1,
        unit_code: "03694".into(),
        created_by: "canbo0".into(),
        created_at: 1_763_769_600,
        device_id: "phone0".into(),
        period: None,
    }
}

fn rows_of(doc: &RecordDoc) -> Vec<String> {
    match doc.values().get("finds") {
        Some(Json::Array(rows)) => rows.iter().filter_map(|r| r["_id"].as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut origin = RecordDoc::create(&meta(), ActorId::random()).expect("create");
    origin.prepare(&FieldPath::top(""), &["tally"], &["finds"], 1).expect("counter and group");
    let saved = origin.save();
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| {
            let mut doc = RecordDoc::load(&saved, Some(ActorId::random())).expect("load");
            doc.set_author(Author { user: format!("canbo{i}"), device: format!("phone{i}") });
            let heads = doc.heads();
            Replica { doc, past: vec![heads] }
        })
        .collect();
    let mut ledger = Ledger::default();
    let mut in_flight: Vec<(usize, Vec<Vec<u8>>)> = Vec::new();
    let mut blocked: HashSet<(usize, usize)> = HashSet::new();
    let mut serial = 0u64;
    let mut now = 1_763_769_700;

    for op in ops {
        serial += 1;
        now += 1;
        match op {
            Op::Set { replica, field } => {
                let value = json!(format!("{}-{serial}", FIELDS[field]));
                let doc = &mut replicas[replica].doc;
                doc.set_field(
                    &FieldPath::top(FIELDS[field]),
                    &FieldValue::Text(value.as_str().unwrap_or_default().into()),
                    now,
                )
                .expect("set");
                ledger.writes.entry(FIELDS[field].into()).or_default().push((value, doc.heads()[0]));
            }
            Op::Increment { replica, by } => {
                replicas[replica].doc.increment(&FieldPath::top("tally"), by, now).expect("increment");
                ledger.increments += by;
            }
            Op::AddRow { replica } => {
                let row = replicas[replica].doc.add_row(&FieldPath::top("finds"), now).expect("add row");
                ledger.added_rows.insert(row);
            }
            Op::DeleteRow { replica, pick } => {
                let doc = &mut replicas[replica].doc;
                let rows = rows_of(doc);
                if rows.is_empty() {
                    continue;
                }
                let row = rows[pick % rows.len()].clone();
                doc.remove_row(&FieldPath::top("finds"), &row, now).expect("remove row");
                ledger.deleted_rows.insert(row);
            }
            Op::SetRow { replica, pick, field } => {
                let doc = &mut replicas[replica].doc;
                let rows = rows_of(doc);
                if rows.is_empty() {
                    continue;
                }
                let row = rows[pick % rows.len()].clone();
                let path = FieldPath { rows: vec![("finds".into(), row.clone())], name: ROW_FIELDS[field].into() };
                doc.set_field(&path, &FieldValue::Integer(serial as i64), now).expect("set row field");
                ledger
                    .writes
                    .entry(format!("finds/{row}/{}", ROW_FIELDS[field]))
                    .or_default()
                    .push((json!(serial), doc.heads()[0]));
            }
            Op::Event { replica } => {
                let comment = format!("ghi chú {serial}");
                replicas[replica].doc.append_event(EventKind::Comment, "canbo", Some(&comment), now).expect("event");
                ledger.events.insert(comment);
            }
            Op::Send { from, to, since } => {
                if from == to || blocked.contains(&(from.min(to), from.max(to))) {
                    continue;
                }
                let sender = &mut replicas[from];
                let start = sender.past[since % sender.past.len()].clone();
                in_flight.push((to, sender.doc.changes_since(&start)));
            }
            Op::Deliver { pick, duplicate } => {
                if in_flight.is_empty() {
                    continue;
                }
                let i = pick % in_flight.len();
                let (to, batch) = if duplicate { in_flight[i].clone() } else { in_flight.swap_remove(i) };
                let changes = RecordDoc::decode_changes(&batch).expect("decode");
                replicas[to].doc.apply_changes(changes).expect("apply");
            }
            Op::Partition { a, b } => {
                blocked.insert((a.min(b), a.max(b)));
            }
            Op::Heal => blocked.clear(),
        }
        for r in &mut replicas {
            let heads = r.doc.heads();
            r.past.push(heads);
        }
    }

    // Heal: every replica sends everything to every other, twice over.
    for _ in 0..2 {
        let all: Vec<Vec<Vec<u8>>> = replicas.iter_mut().map(|r| r.doc.changes_since(&[])).collect();
        for (i, r) in replicas.iter_mut().enumerate() {
            for (j, batch) in all.iter().enumerate() {
                if i != j {
                    r.doc.apply_changes(RecordDoc::decode_changes(batch).expect("decode")).expect("apply");
                }
            }
        }
    }

    // 1. Convergence.
    let first_heads = {
        let mut h = replicas[0].doc.heads();
        h.sort();
        h
    };
    let first_values = replicas[0].doc.values();
    let first_events = replicas[0].doc.events();
    for r in &mut replicas[1..] {
        let mut h = r.doc.heads();
        h.sort();
        prop_assert_eq!(&h, &first_heads);
        prop_assert_eq!(&r.doc.values(), &first_values);
        prop_assert_eq!(&r.doc.events(), &first_events);
    }

    // 2. No edit lost: present values == writes not causally followed by another write.
    let doc = &mut replicas[0].doc;
    let ancestors = ancestry(doc);
    let conflicts = doc.conflicts();
    let live_rows: BTreeSet<String> = rows_of(doc).into_iter().collect();
    for (path, writes) in &ledger.writes {
        // Writes to a deleted row went with it.
        if let Some(row) = path.strip_prefix("finds/").and_then(|p| p.split('/').next())
            && !live_rows.contains(row)
        {
            continue;
        }
        let expected: BTreeSet<String> = writes
            .iter()
            .filter(|(_, h)| !writes.iter().any(|(_, later)| later != h && ancestors[later].contains(h)))
            .map(|(v, _)| v.to_string())
            .collect();
        let present: BTreeSet<String> = match conflicts.get(path) {
            Some(values) => values.iter().map(|c| c.value.to_string()).collect(),
            None => value_at(&first_values, path).map(|v| v.to_string()).into_iter().collect(),
        };
        prop_assert_eq!(present, expected, "field {}", path);
    }

    // 3. Tally, events, rows.
    prop_assert_eq!(first_values.get("tally").and_then(Json::as_i64), Some(ledger.increments));
    let comments: Vec<String> = first_events.iter().filter_map(|e| e.comment.clone()).collect();
    prop_assert_eq!(comments.len(), ledger.events.len());
    prop_assert_eq!(comments.into_iter().collect::<BTreeSet<_>>(), ledger.events);
    let expected_rows: BTreeSet<String> = ledger.added_rows.difference(&ledger.deleted_rows).cloned().collect();
    prop_assert_eq!(live_rows, expected_rows);
    Ok(())
}

fn value_at<'a>(values: &'a BTreeMap<String, Json>, path: &str) -> Option<&'a Json> {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [name] => values.get(*name),
        [group, row, name] => values.get(*group)?.as_array()?.iter().find(|r| r["_id"] == *row)?.get(*name),
        _ => None,
    }
}

/// For every change, the set of changes it causally follows (its transitive dependencies).
fn ancestry(doc: &mut RecordDoc) -> HashMap<ChangeHash, HashSet<ChangeHash>> {
    let deps = doc.dependencies();
    let mut out: HashMap<ChangeHash, HashSet<ChangeHash>> = HashMap::new();
    // Changes come in causal order, so each change's dependencies are already resolved.
    for (hash, direct) in &deps {
        let mut all = HashSet::new();
        for d in direct {
            all.insert(*d);
            all.extend(out.get(d).cloned().unwrap_or_default());
        }
        out.insert(*hash, all);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_lose_no_edit_that_was_not_overwritten(ops in proptest::collection::vec(op(), 20..90)) {
        run(ops)?;
    }
}
