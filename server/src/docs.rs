//! A bounded cache of loaded record documents: a commit to a record that was written a
//! moment ago starts from the document in memory instead of parsing its stored bytes again.
//!
//! An entry is good for exactly one change-log sequence. A writer reads the record's current
//! sequence inside its write transaction and takes the entry only if it matches, so a write by
//! another server node, the admin command or a rolled-back batch is never served stale. Taking
//! removes the entry; the writer puts the document back once its commit is durable. At most
//! `capacity` documents are held; the least recently used go first.

use std::sync::Mutex;

use diaban_core::record::RecordDoc;
use hashlink::LruCache;

pub struct DocCache {
    entries: Mutex<LruCache<String, (i64, RecordDoc)>>,
}

impl DocCache {
    pub fn new(capacity: usize) -> DocCache {
        DocCache { entries: Mutex::new(LruCache::new(capacity)) }
    }

    /// The document of record `id` as of sequence `seq`, if held; the entry leaves the cache.
    pub fn take(&self, id: &str, seq: i64) -> Option<RecordDoc> {
        let mut entries = self.entries.lock().ok()?;
        match entries.remove(id) {
            Some((held, doc)) if held == seq => Some(doc),
            _ => None,
        }
    }

    /// Keeps the document of record `id` as committed at sequence `seq`.
    pub fn put(&self, id: String, seq: i64, doc: RecordDoc) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(id, (seq, doc));
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

    #[test]
    fn an_entry_serves_only_its_own_sequence_and_only_once() {
        let cache = DocCache::new(2);
        cache.put("r1".into(), 7, doc("r1"));
        assert!(cache.take("r1", 8).is_none(), "another sequence: stale, dropped");
        assert!(cache.take("r1", 7).is_none(), "the stale entry is gone");
        cache.put("r1".into(), 9, doc("r1"));
        assert!(cache.take("r1", 9).is_some());
        assert!(cache.take("r1", 9).is_none(), "taken once");
    }

    #[test]
    fn the_least_recently_used_document_goes_first() {
        let cache = DocCache::new(2);
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            cache.put(id.into(), i as i64, doc(id));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.take("a", 0).is_none());
        assert!(cache.take("c", 2).is_some());
    }
}
