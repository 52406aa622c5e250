//! A bounded cache of loaded record documents: a commit to a record that was written a
//! moment ago starts from the document and state in memory instead of reading the record's
//! state and parsing its stored bytes again.
//!
//! An entry is what this process last committed of a record, put back once the commit is
//! durable. It may be stale: another server node, the admin command or a reviewer may have
//! written the record since. So a writer trusts it only behind the write's sequence guard (a
//! record no longer at the entry's sequence is not written, and is checked again against what
//! is stored), and reads the stored sequence before refusing a push on it. Taking removes the
//! entry. At most `capacity` documents are held; the least recently used go first, and
//! entries left untouched for [`IDLE`] are dropped by [`DocCache::sweep`] (the server runs it
//! every half minute), so a server whose phones have gone quiet gives the memory back.

use std::sync::{Mutex, Weak};
use std::time::{Duration, Instant};

use diaban_core::record::RecordDoc;
use hashlink::LruCache;

use crate::store::StoredState;

/// How long an entry may sit unused before a sweep drops it: far longer than the gap between
/// one phone's exchanges in a sync, which is what the cache is for.
pub const IDLE: Duration = Duration::from_secs(60);

pub struct DocCache {
    entries: Mutex<LruCache<String, Entry>>,
}

struct Entry {
    put_at: Instant,
    state: StoredState,
    doc: RecordDoc,
}

impl DocCache {
    pub fn new(capacity: usize) -> DocCache {
        DocCache { entries: Mutex::new(LruCache::new(capacity)) }
    }

    /// The state and document of record `id` as this process last committed them, if held;
    /// the entry leaves the cache.
    pub fn take(&self, id: &str) -> Option<(StoredState, RecordDoc)> {
        self.entries.lock().ok()?.remove(id).map(|e| (e.state, e.doc))
    }

    /// Keeps the state and document of record `id` as just committed.
    pub fn put(&self, id: String, state: StoredState, doc: RecordDoc) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(id, Entry { put_at: Instant::now(), state, doc });
        }
    }

    /// Drops the entries put before `now - idle`: the least recently used come first, so the
    /// sweep stops at the first younger one.
    pub fn sweep(&self, now: Instant, idle: Duration) -> usize {
        let Ok(mut entries) = self.entries.lock() else { return 0 };
        let mut dropped = 0;
        while entries.iter().next().is_some_and(|(_, e)| now.saturating_duration_since(e.put_at) >= idle) {
            entries.remove_lru();
            dropped += 1;
        }
        dropped
    }

    /// Sweeps the cache every half [`IDLE`] for as long as it exists (a task of the runtime
    /// this is called in).
    pub fn sweep_while_alive(cache: Weak<DocCache>) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(IDLE / 2);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(cache) = cache.upgrade() else { return };
                cache.sweep(Instant::now(), IDLE);
            }
        });
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ActorId;

    fn doc(id: &str) -> RecordDoc {
        let meta = diaban_core::record::RecordMeta {
            record_id: id.into(),
            template_id: "t".into(),
            template_version: 1,
            unit_code: "01".into(),
            created_by: "a".into(),
            created_at: 1,
            device_id: "d".into(),
            period: None,
        };
        RecordDoc::create(&meta, ActorId::random()).expect("create")
    }

    fn state(seq: i64) -> StoredState {
        StoredState {
            seq,
            template_id: "t".into(),
            template_version: 1,
            unit_code: "01".into(),
            chunks: 0,
            attachments: 0,
            bytes: 0,
        }
    }

    #[test]
    fn an_entry_is_taken_once_with_the_state_it_was_put_with() {
        let cache = DocCache::new(2);
        cache.put("r1".into(), state(7), doc("r1"));
        let (held, _) = cache.take("r1").expect("held");
        assert_eq!(held.seq, 7);
        assert!(cache.take("r1").is_none(), "taken once");
    }

    #[test]
    fn the_least_recently_used_document_goes_first() {
        let cache = DocCache::new(2);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            cache.put(id.into(), state(i as i64), doc(id));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.take("a").is_none());
        assert!(cache.take("c").is_some());
    }

    #[test]
    fn a_sweep_drops_the_entries_left_unused_and_keeps_the_recent_ones() {
        let cache = DocCache::new(8);
        cache.put("old".into(), state(1), doc("old"));
        std::thread::sleep(Duration::from_millis(30));
        cache.put("new".into(), state(2), doc("new"));
        assert_eq!(cache.sweep(Instant::now(), Duration::from_millis(20)), 1);
        assert!(cache.take("old").is_none());
        assert!(cache.take("new").is_some());
        assert_eq!(cache.sweep(Instant::now() + Duration::from_secs(1), Duration::from_millis(20)), 0);
    }
}
