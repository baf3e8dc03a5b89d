//! On-disk encoding of queue files: a small header, then the payload,
//! optionally gzip-compressed and/or sealed with AES-256-GCM.
//!
//! ```text
//! plain:      "WQUE" version(1) flags(1) 0 0 | payload (gzip'ed if FLAG_GZIP)
//! encrypted:  "WQUE" version(1) flags(1) 0 0 | nonce(12) | AES-256-GCM(payload) + tag(16)
//! ```
//! The associated data of the AEAD is the 8-byte header followed by the
//! file's logical name (`message:<msgid>` / `envelope:<evpid>`), so neither
//! the flags nor the file's identity can be changed without detection: a
//! message file copied over another message fails authentication.
//!
//! Nonces are 96 random bits per file; with one key that is safe for far
//! more files than a mail queue writes (the usual 2^32 bound).
//!
//! When a key is configured, unencrypted files are refused: otherwise
//! someone able to write the spool but not read the key could inject
//! envelopes in the clear.

use std::io::{Read, Write};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use super::error::QueueError;

const MAGIC: &[u8; 4] = b"WQUE";
const VERSION: u8 = 1;
const FLAG_GZIP: u8 = 0x01;
const FLAG_AEAD: u8 = 0x02;
const HEADER_LEN: usize = 8;
const NONCE_LEN: usize = 12;

/// Turns the `queue encryption KEY` string into a 256-bit key.
///
/// 64 hex digits are taken as the raw key. Anything else is hashed with
/// SHA-256 under a fixed domain-separation prefix. This is deliberately
/// not a slow password KDF (no such crate is in the build and OpenSMTPD
/// itself uses its key string raw): the key is read by the daemon at every
/// start and should be a high-entropy secret, e.g. `openssl rand -hex 32`.
pub fn key_from_passphrase(s: &str) -> [u8; 32] {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            // Both bytes are ASCII hex digits, checked above.
            let hi = (chunk[0] as char).to_digit(16).unwrap_or(0) as u8;
            let lo = (chunk[1] as char).to_digit(16).unwrap_or(0) as u8;
            key[i] = (hi << 4) | lo;
        }
        return key;
    }
    let mut h = Sha256::new();
    h.update(b"wasmtpd queue key v1\0");
    h.update(s.as_bytes());
    h.finalize().into()
}

/// Encoder/decoder configured from the queue options.
#[derive(Clone)]
pub(crate) struct Codec {
    compress: bool,
    cipher: Option<Aes256Gcm>,
}

impl Codec {
    pub(crate) fn new(compress: bool, key: Option<[u8; 32]>) -> Codec {
        Codec {
            compress,
            cipher: key.map(|k| Aes256Gcm::new(&k.into())),
        }
    }

    /// Encodes `plain` for the file whose logical name is `name`.
    pub(crate) fn encode(&self, name: &str, plain: &[u8]) -> Result<Vec<u8>, QueueError> {
        let mut flags = 0u8;
        if self.compress {
            flags |= FLAG_GZIP;
        }
        if self.cipher.is_some() {
            flags |= FLAG_AEAD;
        }
        let header = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, flags, 0, 0];
        let compressed;
        let payload: &[u8] = if self.compress {
            let mut enc =
                GzEncoder::new(Vec::with_capacity(plain.len() / 2), Compression::default());
            compressed = enc
                .write_all(plain)
                .and_then(|_| enc.finish())
                .map_err(|e| QueueError::io("gzip", name, e))?;
            &compressed
        } else {
            plain
        };
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + payload.len() + 16);
        out.extend_from_slice(&header);
        match &self.cipher {
            None => out.extend_from_slice(payload),
            Some(cipher) => {
                let nonce: [u8; NONCE_LEN] = rand::random();
                let aad = associated_data(&header, name);
                let sealed = cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: payload,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| QueueError::Crypto(format!("encrypting {name} failed")))?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
        }
        Ok(out)
    }

    /// Decodes a file written by [`Codec::encode`] under the same `name`.
    /// The error is a human-readable reason, for `QueueError::Corrupt`.
    pub(crate) fn decode(&self, name: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        if data.len() < HEADER_LEN {
            return Err(format!("truncated ({} bytes)", data.len()));
        }
        let (header, body) = data.split_at(HEADER_LEN);
        if &header[..4] != MAGIC {
            return Err("bad magic".into());
        }
        if header[4] != VERSION {
            return Err(format!("unknown version {}", header[4]));
        }
        let flags = header[5];
        if flags & !(FLAG_GZIP | FLAG_AEAD) != 0 || header[6] != 0 || header[7] != 0 {
            return Err(format!("unknown flags {flags:#04x}"));
        }
        let opened;
        let payload: &[u8] = match (&self.cipher, flags & FLAG_AEAD != 0) {
            (None, true) => return Err("encrypted but no queue encryption key is set".into()),
            (Some(_), false) => return Err("not encrypted but queue encryption is enabled".into()),
            (None, false) => body,
            (Some(cipher), true) => {
                if body.len() < NONCE_LEN + 16 {
                    return Err("truncated ciphertext".into());
                }
                let (nonce, sealed) = body.split_at(NONCE_LEN);
                let aad = associated_data(header, name);
                opened = cipher
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| "authentication failed (tampered or wrong key)".to_string())?;
                &opened
            }
        };
        if flags & FLAG_GZIP != 0 {
            let mut out = Vec::with_capacity(payload.len() * 2);
            GzDecoder::new(payload)
                .read_to_end(&mut out)
                .map_err(|e| format!("bad gzip data: {e}"))?;
            Ok(out)
        } else {
            Ok(payload.to_vec())
        }
    }
}

fn associated_data(header: &[u8], name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + name.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_codecs() -> Vec<Codec> {
        let key = Some([7u8; 32]);
        vec![
            Codec::new(false, None),
            Codec::new(true, None),
            Codec::new(false, key),
            Codec::new(true, key),
        ]
    }

    #[test]
    fn round_trips_in_every_mode() {
        let text = b"Subject: hi\r\n\r\nhello hello hello hello\r\n".repeat(50);
        for c in all_codecs() {
            let enc = c.encode("message:0000abcd", &text).unwrap();
            assert_eq!(c.decode("message:0000abcd", &enc).unwrap(), text);
        }
        // compression actually compresses
        let enc = Codec::new(true, None).encode("m", &text).unwrap();
        assert!(enc.len() < text.len() / 4);
    }

    #[test]
    fn flipped_byte_or_flag_is_detected_when_encrypted() {
        let c = Codec::new(true, Some([1u8; 32]));
        let enc = c.encode("envelope:1", b"{\"a\":1}").unwrap();
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x01;
            assert!(c.decode("envelope:1", &bad).is_err(), "byte {i}");
        }
        // moved to another identity
        assert!(c.decode("envelope:2", &enc).is_err());
    }

    #[test]
    fn wrong_key_and_missing_key_are_refused() {
        let enc = Codec::new(false, Some([1u8; 32]))
            .encode("n", b"x")
            .unwrap();
        assert!(Codec::new(false, Some([2u8; 32]))
            .decode("n", &enc)
            .is_err());
        assert!(Codec::new(false, None).decode("n", &enc).is_err());
        let plain = Codec::new(false, None).encode("n", b"x").unwrap();
        assert!(Codec::new(false, Some([2u8; 32]))
            .decode("n", &plain)
            .is_err());
    }

    #[test]
    fn passphrase_hex_is_raw_and_other_strings_are_hashed() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let k = key_from_passphrase(hex);
        assert_eq!(k[0], 0x00);
        assert_eq!(k[1], 0x11);
        assert_eq!(k[31], 0xff);
        let a = key_from_passphrase("correct horse battery staple");
        assert_eq!(a, key_from_passphrase("correct horse battery staple"));
        assert_ne!(a, key_from_passphrase("correct horse battery stapl"));
    }

    #[test]
    fn garbage_headers_are_refused() {
        let c = Codec::new(false, None);
        assert!(c.decode("n", b"").is_err());
        assert!(c.decode("n", b"WQUE").is_err());
        assert!(c.decode("n", b"XQUE\x01\x00\x00\x00abc").is_err());
        assert!(c.decode("n", b"WQUE\x02\x00\x00\x00abc").is_err());
        assert!(c.decode("n", b"WQUE\x01\x80\x00\x00abc").is_err());
        assert!(c.decode("n", b"WQUE\x01\x01\x00\x00not gzip").is_err());
    }
}
