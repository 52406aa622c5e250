//! The sync protocol's bytes: a 3-byte frame header (`D`, `B`, protocol version) and the
//! message, postcard-encoded and DEFLATE-compressed. Both sides use these two functions, so a
//! message is read exactly as it was written; the version byte is the handshake (a server
//! answers 426 Upgrade Required to any version it does not speak).

use std::io::{Read, Write};

use flate2::Compression;
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

/// Frames, encodes and compresses a message.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    let encode = |e: &dyn std::fmt::Display| WireError::Encode(e.to_string());
    let plain = postcard::to_allocvec(message).map_err(|e| encode(&e))?;
    let mut out = Vec::with_capacity(plain.len() / 2 + 8);
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    let mut deflate = flate2::write::DeflateEncoder::new(out, Compression::default());
    deflate.write_all(&plain).map_err(|e| encode(&e))?;
    deflate.finish().map_err(|e| encode(&e))
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
    let mut plain = Vec::new();
    flate2::read::DeflateDecoder::new(&bytes[3..])
        .take(MAX_MESSAGE_BYTES + 1)
        .read_to_end(&mut plain)
        .map_err(|e| WireError::Corrupt(e.to_string()))?;
    if plain.len() as u64 > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge);
    }
    postcard::from_bytes(&plain).map_err(|e| WireError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
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
