//! A bounded cache of loaded record documents: a commit to a record that was written a
//! moment ago starts from the document and state in memory instead of reading the record's
//! state and parsing its stored bytes again.
//!
//! An entry is what this process last committed of a record, put back once the commit is
//! durable. It may be stale: another server node, the admin command or a reviewer may have
//! written the record since. So a writer trusts it only behind the write's sequence guard (a
//! record no longer at the entry's sequence is not written, and is checked again against what
//! is stored), and reads the stored sequence before refusing a push on it. Taking removes the
//! entry. At most `capacity` documents are held; the least recently used go first.

use std::sync::Mutex;

use diaban_core::record::RecordDoc;
use hashlink::LruCache;

use crate::db::StoredState;

pub struct DocCache {
    entries: Mutex<LruCache<String, (StoredState, RecordDoc)>>,
}

impl DocCache {
    pub fn new(capacity: usize) -> DocCache {
        DocCache { entries: Mutex::new(LruCache::new(capacity)) }
    }

    /// The state and document of record `id` as this process last committed them, if held;
    /// the entry leaves the cache.
    pub fn take(&self, id: &str) -> Option<(StoredState, RecordDoc)> {
        self.entries.lock().ok()?.remove(id)
    }

    /// Keeps the state and document of record `id` as just committed.
    pub fn put(&self, id: String, state: StoredState, doc: RecordDoc) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(id, (state, doc));
        }
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
}
