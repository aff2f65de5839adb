//! The file format: a versioned header, then XChaCha20-Poly1305 over the whole serialized
//! credential with the header as associated data (so a header swapped or edited fails too).
//!
//! ```text
//! "TSCR" | version 1 | key kind (1 keyring, 2 key file, 3 passphrase)
//!        | [passphrase only: Argon2id m_cost, t_cost, p_cost (u32 LE each), salt (16)]
//!        | nonce (24, random) | ciphertext + tag (16)
//! ```

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"TSCR";
const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 24;
pub const SALT_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

pub type SecretKey = Zeroizing<[u8; KEY_LEN]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Keyring = 1,
    KeyFile = 2,
    Passphrase = 3,
}

impl KeyKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Keyring),
            2 => Some(Self::KeyFile),
            3 => Some(Self::Passphrase),
            _ => None,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Keyring => "a key in the OS keyring",
            Self::KeyFile => "a key file",
            Self::Passphrase => "a passphrase",
        }
    }
}

/// Argon2id parameters and salt of a passphrase-derived key, stored in the header so that a
/// later version can raise the costs and still read old files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    pub salt: [u8; SALT_LEN],
}

impl KdfParams {
    /// OWASP's Argon2id baseline (19 MiB, 2 passes, 1 lane), with a fresh salt.
    pub fn fresh() -> Self {
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt);
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
            salt,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: KeyKind,
    pub kdf: Option<KdfParams>,
}

impl Header {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + 28);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.kind as u8);
        if let Some(kdf) = &self.kdf {
            out.extend_from_slice(&kdf.m_cost_kib.to_le_bytes());
            out.extend_from_slice(&kdf.t_cost.to_le_bytes());
            out.extend_from_slice(&kdf.p_cost.to_le_bytes());
            out.extend_from_slice(&kdf.salt);
        }
        out
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum FormatError {
    NotOurs,
    Truncated,
    Version(u8),
    UnknownKeyKind(u8),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotOurs => f.write_str("no Tessera header"),
            Self::Truncated => f.write_str("truncated"),
            Self::Version(v) => write!(f, "format version {v}"),
            Self::UnknownKeyKind(k) => write!(f, "unknown key kind {k}"),
        }
    }
}

/// A parsed file: its header and where the authenticated parts are.
#[derive(Debug)]
pub struct Sealed<'a> {
    pub header: Header,
    aad: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

pub fn parse(bytes: &[u8]) -> Result<Sealed<'_>, FormatError> {
    // Patterns and `get` instead of indexing: the bytes come from a file anyone may have
    // written, and a short one must be an error, never a panic.
    let (version, kind) = match bytes {
        [m0, m1, m2, m3, version, kind, ..] if [*m0, *m1, *m2, *m3] == *MAGIC => (*version, *kind),
        _ if bytes.len() < 6 && MAGIC.starts_with(bytes) => return Err(FormatError::Truncated),
        _ => return Err(FormatError::NotOurs),
    };
    if version != VERSION {
        return Err(FormatError::Version(version));
    }
    let kind = KeyKind::from_byte(kind).ok_or(FormatError::UnknownKeyKind(kind))?;
    let mut at = 6;
    let kdf = if kind == KeyKind::Passphrase {
        let raw = bytes
            .get(at..at + 12 + SALT_LEN)
            .ok_or(FormatError::Truncated)?;
        let (costs, salt) = raw
            .split_first_chunk::<12>()
            .ok_or(FormatError::Truncated)?;
        let [m0, m1, m2, m3, t0, t1, t2, t3, p0, p1, p2, p3] = *costs;
        let salt: [u8; SALT_LEN] = salt.try_into().map_err(|_| FormatError::Truncated)?;
        at += 12 + SALT_LEN;
        Some(KdfParams {
            m_cost_kib: u32::from_le_bytes([m0, m1, m2, m3]),
            t_cost: u32::from_le_bytes([t0, t1, t2, t3]),
            p_cost: u32::from_le_bytes([p0, p1, p2, p3]),
            salt,
        })
    } else {
        None
    };
    let nonce = bytes
        .get(at..at + NONCE_LEN)
        .ok_or(FormatError::Truncated)?;
    let (aad, ciphertext) = bytes
        .split_at_checked(at + NONCE_LEN)
        .ok_or(FormatError::Truncated)?;
    if ciphertext.len() < 16 {
        return Err(FormatError::Truncated);
    }
    Ok(Sealed {
        header: Header { kind, kdf },
        aad,
        nonce,
        ciphertext,
    })
}

impl Sealed<'_> {
    /// The plaintext, or `None` when authentication fails (wrong key or altered bytes).
    pub fn open(&self, key: &SecretKey) -> Option<Zeroizing<Vec<u8>>> {
        let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        cipher
            .decrypt(
                XNonce::from_slice(self.nonce),
                Payload {
                    msg: self.ciphertext,
                    aad: self.aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// Encrypts `plaintext` under `key` with a fresh random nonce.
pub fn seal(header: &Header, key: &SecretKey, plaintext: &[u8]) -> Vec<u8> {
    let mut out = header.encode();
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    out.extend_from_slice(&nonce);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &out,
            },
        )
        // Only fails for plaintexts beyond 256 GiB.
        .unwrap_or_default();
    out.extend_from_slice(&ciphertext);
    out
}

/// Keys, nonces and salts come from the OS CSPRNG, never from an injected source: a
/// predictable nonce would break the cipher, and tests check properties, not bytes.
pub fn fill_random(buf: &mut [u8]) {
    rand::rngs::OsRng.fill_bytes(buf);
}

pub fn random_key() -> SecretKey {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    fill_random(key.as_mut());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SecretKey {
        Zeroizing::new([b; KEY_LEN])
    }

    #[test]
    fn round_trips_and_uses_a_new_nonce_each_time() {
        let header = Header {
            kind: KeyKind::KeyFile,
            kdf: None,
        };
        let a = seal(&header, &key(1), b"secret payload");
        let b = seal(&header, &key(1), b"secret payload");
        assert_ne!(a, b);
        let parsed = parse(&a).unwrap();
        assert_eq!(parsed.header, header);
        assert_eq!(&parsed.open(&key(1)).unwrap()[..], b"secret payload");
        assert!(parsed.open(&key(2)).is_none());
    }

    #[test]
    fn a_tampered_header_or_body_fails_authentication() {
        let header = Header {
            kind: KeyKind::Passphrase,
            kdf: Some(KdfParams::fresh()),
        };
        let sealed = seal(&header, &key(7), b"payload");
        for i in [6, 10, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            let opened = parse(&bad).ok().and_then(|p| p.open(&key(7)));
            assert!(opened.is_none(), "byte {i}");
        }
    }

    #[test]
    fn foreign_and_future_files_are_recognised() {
        assert_eq!(
            parse(b"{\"access_token\":1}").unwrap_err(),
            FormatError::NotOurs
        );
        assert_eq!(parse(b"TSC").unwrap_err(), FormatError::Truncated);
        assert_eq!(parse(b"TSCR\x09\x02").unwrap_err(), FormatError::Version(9));
        assert_eq!(
            parse(b"TSCR\x01\x02short").unwrap_err(),
            FormatError::Truncated
        );
    }
}
