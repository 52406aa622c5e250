//! The sync protocol's bytes: a 3-byte frame header (`D`, `B`, protocol version) and the
//! message, postcard-encoded and DEFLATE-compressed. Both sides use these two functions, so a
//! message is read exactly as it was written; the version byte is the handshake (a server
//! answers 426 Upgrade Required to any version it does not speak).

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::protocol::PROTOCOL_VERSION;

const MAGIC: [u8; 2] = *b"DB";
/// A message never inflates beyond this: a small body cannot make the reader allocate
/// gigabytes.
pub const MAX_MESSAGE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("not a Địa bàn sync message")]
    NotSync,
    #[error("sync protocol version {0}; this side speaks version {PROTOCOL_VERSION}")]
    Version(u8),
    #[error("the sync message is damaged: {0}")]
    Corrupt(String),
    #[error("the sync message inflates beyond {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    #[error("the sync message cannot be encoded: {0}")]
    Encode(String),
}

/// Messages shorter than this (most sync answers: an acknowledgement, a colleague's edit) are
/// compressed at the fastest level: a third of the default level's time, a few bytes more.
/// Longer ones (pushed batches, downloads) at the default level, where bytes count on 2G.
const FAST_BELOW: usize = 2048;

// DEFLATE states per thread, reset for each message: setting one up costs more than
// compressing a small sync message (its tables are hundreds of kilobytes).
thread_local! {
    static FAST: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Frames, encodes and compresses a message.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let encode = |e: &dyn std::fmt::Display| WireError::Encode(e.to_string());
    let plain = postcard::to_allocvec(message).map_err(|e| encode(&e))?;
    let mut out = Vec::with_capacity(plain.len() / 2 + 64);
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    let state = if plain.len() < FAST_BELOW { &FAST } else { &DEFLATE };
    state.with_borrow_mut(|deflate| {
        deflate.reset();
        loop {
            let consumed = deflate.total_in() as usize;
            match deflate.compress_vec(&plain[consumed..], &mut out, FlushCompress::Finish).map_err(|e| encode(&e))? {
                Status::StreamEnd => return Ok(out),
                // Out of room: grow and go on.
                Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
            }
        }
    })
}

/// The version a message was written with, if it is a sync message at all.
pub fn version(bytes: &[u8]) -> Result<u8, WireError> {
    match bytes {
        [a, b, version, ..] if [*a, *b] == MAGIC => Ok(*version),
        _ => Err(WireError::NotSync),
    }
}

/// Checks the frame and version, inflates (bounded) and decodes a message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let version = version(bytes)?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version(version));
    }
    let compressed = &bytes[3..];
    let plain = INFLATE.with_borrow_mut(|inflate| {
        inflate.reset(false);
        let mut plain = Vec::with_capacity((compressed.len() * 4).clamp(256, 1 << 20));
        loop {
            if plain.len() == plain.capacity() {
                // Grown only while under the limit: a small bomb cannot allocate gigabytes.
                let room = (MAX_MESSAGE_BYTES as usize + 1).saturating_sub(plain.len());
                if room == 0 {
                    return Err(WireError::TooLarge);
                }
                plain.reserve(plain.capacity().clamp(1, room));
            }
            let (read, written) = (inflate.total_in(), inflate.total_out());
            let status = inflate
                .decompress_vec(&compressed[read as usize..], &mut plain, FlushDecompress::Finish)
                .map_err(|e| WireError::Corrupt(e.to_string()))?;
            if plain.len() as u64 > MAX_MESSAGE_BYTES {
                return Err(WireError::TooLarge);
            }
            let stuck = inflate.total_in() == read && inflate.total_out() == written;
            match status {
                Status::StreamEnd => return Ok(plain),
                _ if stuck && plain.len() < plain.capacity() => {
                    return Err(WireError::Corrupt("the message ends too early".into()));
                }
                _ => {}
            }
        }
    })?;
    postcard::from_bytes(&plain).map_err(|e| WireError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::protocol::{PushRecord, SyncRequest};

    #[test]
    fn a_message_reads_back_as_written() {
        let request = SyncRequest {
            cursor: 41,
            synced: 40,
            reach: u64::MAX,
            push: vec![PushRecord { record_id: "r1".into(), changes: vec![1, 2, 3], heads: vec![[7; 32]] }],
        };
        let bytes = encode(&request).unwrap();
        assert_eq!(&bytes[..3], b"DB\x04");
        let back: SyncRequest = decode(&bytes).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn other_versions_and_garbage_are_refused_with_a_reason() {
        let mut bytes = encode(&SyncRequest { cursor: 0, synced: 0, reach: 0, push: Vec::new() }).unwrap();
        bytes[2] = 1;
        assert_eq!(decode::<SyncRequest>(&bytes), Err(WireError::Version(1)));
        assert_eq!(decode::<SyncRequest>(b"{\"cursor\":0}"), Err(WireError::NotSync));
        let garbage = [&b"DB"[..], &[PROTOCOL_VERSION], b"garbage"].concat();
        assert!(matches!(decode::<SyncRequest>(&garbage), Err(WireError::Corrupt(_))));
        let whole = encode(&SyncRequest { cursor: 7, synced: 7, reach: 9, push: Vec::new() }).unwrap();
        let cut = &whole[..whole.len() - 2];
        assert!(matches!(decode::<SyncRequest>(cut), Err(WireError::Corrupt(_))), "a message cut short");
    }

    #[test]
    fn the_reused_compression_state_gives_each_message_alone() {
        let big = SyncRequest {
            cursor: 1,
            synced: 1,
            reach: 1,
            push: vec![PushRecord {
                record_id: "r".repeat(100),
                changes: (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
                heads: vec![[1; 32]],
            }],
        };
        let small = SyncRequest { cursor: 2, synced: 2, reach: 2, push: Vec::new() };
        let first = encode(&small).unwrap();
        assert_eq!(decode::<SyncRequest>(&encode(&big).unwrap()).unwrap(), big);
        assert_eq!(encode(&small).unwrap(), first, "nothing of the big message carries over");
        assert_eq!(decode::<SyncRequest>(&first).unwrap(), small);
    }

    #[test]
    fn a_compression_bomb_is_refused() {
        let huge = vec![0u8; (MAX_MESSAGE_BYTES + 10) as usize];
        let mut deflate = flate2::write::DeflateEncoder::new(vec![b'D', b'B', PROTOCOL_VERSION], Compression::best());
        deflate.write_all(&huge).unwrap();
        let bomb = deflate.finish().unwrap();
        assert!(bomb.len() < 200_000);
        assert_eq!(decode::<SyncRequest>(&bomb), Err(WireError::TooLarge));
    }
}
