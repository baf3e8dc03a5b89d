//! The one file a commit writes: a message's content and its envelopes as
//! at commit time, so a commit costs a single file fsync.
//!
//! ```text
//! "WQB1" | u32 BE length L | u64 BE length C | envelope set (L bytes) | content (C bytes)
//! ```
//! The lengths make a bundle self-validating: a file whose size is not
//! 16 + L + C was cut short by a crash while it was written (it was never
//! acknowledged) and is deleted at start.
//! The envelope set and the content are each a `codec` file (own header,
//! own compression/encryption, own identity in the associated data), so the
//! envelopes can be read at startup without reading or decrypting the
//! content. The length prefix is not authenticated; changing it only makes
//! one of the two parts fail to decode, or the bundle look incomplete.

use std::io::Read;

use super::codec::Codec;
use super::disk::{content_aad_name, envelopes_aad_name};
use super::error::QueueError;
use crate::envelope::{Envelope, MsgId};

const MAGIC: &[u8; 4] = b"WQB1";
pub(crate) const PREFIX_LEN: usize = 16;

/// Encodes the bundle of a new message.
pub(crate) fn encode(
    codec: &Codec,
    msgid: MsgId,
    content: &[u8],
    envelopes: &[Envelope],
) -> Result<Vec<u8>, QueueError> {
    let set = encode_set(codec, msgid, envelopes)?;
    let body = codec.encode(&content_aad_name(msgid), content)?;
    let len = u32::try_from(set.len())
        .map_err(|_| QueueError::Invalid(format!("message {msgid}: envelope set too large")))?;
    let mut out = Vec::with_capacity(PREFIX_LEN + set.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    out.extend_from_slice(&set);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Encodes an envelope set (for the bundle or a `.env` file).
pub(crate) fn encode_set(
    codec: &Codec,
    msgid: MsgId,
    envelopes: &[Envelope],
) -> Result<Vec<u8>, QueueError> {
    let json = serde_json::to_vec(envelopes)
        .map_err(|e| QueueError::Invalid(format!("message {msgid}: {e}")))?;
    codec.encode(&envelopes_aad_name(msgid), &json)
}

/// Decodes an envelope set and checks every envelope belongs to `msgid`
/// exactly once. The error is a reason for `QueueError::Corrupt`.
pub(crate) fn decode_set(
    codec: &Codec,
    msgid: MsgId,
    data: &[u8],
) -> Result<Vec<Envelope>, String> {
    let json = codec.decode(&envelopes_aad_name(msgid), data)?;
    let set: Vec<Envelope> =
        serde_json::from_slice(&json).map_err(|e| format!("bad envelope JSON: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    for e in &set {
        if e.msgid() != msgid {
            return Err(format!("holds envelope {} of another message", e.id));
        }
        if !seen.insert(e.id) {
            return Err(format!("holds envelope {} twice", e.id));
        }
    }
    Ok(set)
}

/// What the first bytes of a bundle say about it.
pub(crate) enum Shape {
    /// Prefix and size agree: the envelope set is `set_len` bytes.
    Complete { set_len: usize },
    /// Shorter than announced: a write cut short by a crash.
    Incomplete,
}

/// Checks a bundle of `file_len` bytes from its first bytes. Bad magic
/// is corruption, not a crash: the magic is the first thing written.
pub(crate) fn shape(head: &[u8], file_len: u64) -> Result<Shape, String> {
    let Some(prefix) = head.get(..PREFIX_LEN) else {
        return Ok(Shape::Incomplete);
    };
    if &prefix[..4] != MAGIC {
        return Err("bad bundle magic".into());
    }
    let mut l = [0u8; 4];
    l.copy_from_slice(&prefix[4..8]);
    let mut c = [0u8; 8];
    c.copy_from_slice(&prefix[8..16]);
    let set_len = u32::from_be_bytes(l) as u64;
    let expected = (PREFIX_LEN as u64)
        .checked_add(set_len)
        .and_then(|n| n.checked_add(u64::from_be_bytes(c)));
    match expected {
        // Shorter than announced: a write cut short by a crash, never
        // acknowledged.
        Some(n) if file_len < n => return Ok(Shape::Incomplete),
        Some(n) if file_len == n => {}
        // Longer, or a prefix no write produces: damage, not a crash.
        // Kept aside for inspection rather than deleted.
        _ => return Err("bundle longer than its prefix announces".into()),
    }
    Ok(Shape::Complete {
        set_len: set_len as usize,
    })
}

/// Reads the envelope set at the start of a bundle (`None`: incomplete).
pub(crate) fn read_set_part(
    f: &mut (impl Read + ?Sized),
    file_len: u64,
) -> Result<Option<Vec<u8>>, String> {
    let mut head = Vec::with_capacity(PREFIX_LEN);
    f.take(PREFIX_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("unreadable: {e}"))?;
    let set_len = match shape(&head, file_len)? {
        Shape::Incomplete => return Ok(None),
        Shape::Complete { set_len } => set_len,
    };
    let mut set = Vec::with_capacity(set_len);
    f.take(set_len as u64)
        .read_to_end(&mut set)
        .map_err(|e| format!("unreadable: {e}"))?;
    if set.len() != set_len {
        return Ok(None);
    }
    Ok(Some(set))
}

/// The content part of a whole bundle.
pub(crate) fn content_part(data: &[u8]) -> Result<&[u8], String> {
    match shape(data, data.len() as u64)? {
        Shape::Incomplete => Err("incomplete bundle".into()),
        Shape::Complete { set_len } => data
            .get(PREFIX_LEN + set_len..)
            .ok_or_else(|| "incomplete bundle".to_string()),
    }
}
