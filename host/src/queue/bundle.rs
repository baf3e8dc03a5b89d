//! The one file a commit writes: a message's content and its envelopes as
//! at commit time, so a commit costs a single file fsync.
//!
//! ```text
//! "WQB1" | u32 big-endian length L | envelope set (L bytes) | content
//! ```
//! The envelope set and the content are each a `codec` file (own header,
//! own compression/encryption, own identity in the associated data), so the
//! envelopes can be read at startup without reading or decrypting the
//! content. The length prefix is not authenticated; changing it only makes
//! one of the two parts fail to decode.

use std::io::Read;

use super::codec::Codec;
use super::disk::{content_aad_name, envelopes_aad_name};
use super::error::QueueError;
use crate::envelope::{Envelope, MsgId};

const MAGIC: &[u8; 4] = b"WQB1";
const PREFIX_LEN: usize = 8;

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

/// Reads just the envelope set at the start of a bundle.
pub(crate) fn read_set_part(r: &mut impl Read) -> Result<Vec<u8>, String> {
    let mut prefix = [0u8; PREFIX_LEN];
    r.read_exact(&mut prefix)
        .map_err(|e| format!("truncated bundle header: {e}"))?;
    let len = parse_prefix(&prefix)?;
    let mut set = Vec::new();
    r.take(len as u64)
        .read_to_end(&mut set)
        .map_err(|e| format!("unreadable: {e}"))?;
    if set.len() != len {
        return Err("truncated envelope set".into());
    }
    Ok(set)
}

/// The content part of a whole bundle.
pub(crate) fn content_part(data: &[u8]) -> Result<&[u8], String> {
    let prefix = data.get(..PREFIX_LEN).ok_or("truncated bundle header")?;
    let len = parse_prefix(prefix)?;
    data.get(PREFIX_LEN + len..)
        .ok_or_else(|| "truncated bundle".to_string())
}

fn parse_prefix(prefix: &[u8]) -> Result<usize, String> {
    if &prefix[..4] != MAGIC {
        return Err("bad bundle magic".into());
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&prefix[4..8]);
    Ok(u32::from_be_bytes(len) as usize)
}
