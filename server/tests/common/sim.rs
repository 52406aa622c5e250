//! A simulated phone for benchmarks and load tests: it speaks the sync protocol directly (no
//! store), keeps one record of its own in memory, what the server acknowledged of it, and its
//! cursor; and a province seeded with such phones.
#![allow(dead_code)]

use automerge::{ActorId, ChangeHash};
use diaban_core::protocol::{PushRecord, SyncRequest, SyncResponse};
use diaban_core::record::RecordDoc;

use super::{PASSWORD, Server};

/// A simulated phone speaking the protocol directly (no store): its token, its own record in
/// memory, what the server acknowledged of it, and its cursor.
pub struct Sim {
    pub unit: String,
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub actor: ActorId,
    /// The device as the server registered it.
    pub identity: super::Identity,
    pub doc: RecordDoc,
    pub record_id: String,
    pub acked: Vec<ChangeHash>,
    pub cursor: i64,
    /// The account-and-scope token last received.
    pub reach: u64,
    pub edits: i64,
}

impl Sim {
    /// Device `n`, signed in as the officer of commune `unit` (user `cb{unit}`).
    pub async fn new(url: &str, http: &reqwest::Client, n: usize, unit: &str) -> Sim {
        let actor = ActorId::random();
        let identity = super::register(http, url, &format!("cb{unit}"), &format!("sim {n}"), &actor).await;
        let record_id = format!("sim-{n}-{}", actor.to_hex_string());
        let doc = identity.new_record(&record_id, unit, "propaganda_session");
        Sim {
            unit: unit.into(),
            http: http.clone(),
            url: url.into(),
            token: identity.token.clone(),
            actor,
            identity,
            doc,
            record_id,
            acked: Vec::new(),
            cursor: 0,
            reach: 0,
            edits: 0,
        }
    }

    pub async fn exchange(&mut self, push: Vec<PushRecord>) -> SyncResponse {
        let request = SyncRequest { cursor: self.cursor, synced: self.cursor, reach: self.reach, push };
        let response = super::post_sync(&self.http, &self.url, &self.token, &request).await;
        self.cursor = response.cursor;
        if let Some(reach) = &response.reach {
            self.reach = reach.token;
        }
        response
    }

    /// Pushes a whole extra record of this device's (seeding).
    pub async fn push_new(&mut self, id: &str) {
        let mut doc = self.identity.new_record(id, &self.unit, "propaganda_session");
        let heads = doc.heads();
        let push = PushRecord {
            record_id: id.into(),
            changes: doc.bundle_since(&[]).expect("bundle"),
            heads: heads.iter().map(|h| h.0).collect(),
        };
        assert_eq!(self.exchange(vec![push]).await.accepted, vec![id.to_owned()]);
    }

    /// Sends this device's own record's changes since the last acknowledgement.
    pub async fn push_own(&mut self) {
        let heads = self.doc.heads();
        let push = PushRecord {
            record_id: self.record_id.clone(),
            changes: self.doc.bundle_since(&self.acked).expect("bundle"),
            heads: heads.iter().map(|h| h.0).collect(),
        };
        let response = self.exchange(vec![push]).await;
        assert_eq!(response.accepted, vec![self.record_id.clone()], "{:?}", response.rejected);
        self.acked = heads;
    }

    pub async fn catch_up(&mut self) {
        while self.exchange(Vec::new()).await.more {}
    }
}

/// A server with `devices` simulated phones, five to a commune, and 10,000 records stored, every
/// one synced by its device.
pub async fn seeded(http: &reqwest::Client, devices: usize) -> (Server, Vec<Sim>) {
    // Five phones per commune, as in a real commune's team.
    let communes: Vec<String> = (0..devices.div_ceil(5)).map(|c| format!("9{c:04}")).collect();
    let server = Server::with_users(&[]);
    for unit in &communes {
        super::diaban(
            &server.db,
            &[
                "admin",
                "create-unit",
                "--code",
                unit,
                "--name",
                &format!("Xã {unit}"),
                "--level",
                "commune",
                "--parent",
                "14",
            ],
        );
        super::diaban(
            &server.db,
            &[
                "admin",
                "create-user",
                "--username",
                &format!("cb{unit}"),
                "--password",
                PASSWORD,
                "--role",
                "field_officer",
                "--unit",
                unit,
            ],
        );
    }
    let mut sims = Vec::new();
    for n in 0..devices {
        sims.push(Sim::new(&server.url, http, n, &communes[n / 5]).await);
    }
    // Seed 10,000 records in all, every one synced by its device.
    let extra = 10_000 / devices - 1;
    for sim in sims.iter_mut() {
        sim.push_own().await;
        for k in 0..extra {
            let id = format!("{}-{k}", sim.record_id);
            sim.push_new(&id).await;
        }
    }
    for sim in sims.iter_mut() {
        sim.catch_up().await;
    }
    (server, sims)
}
