//! The digest a snapshot's `SHA256SUMS` and the rendered names are made of.

use sha2::{Digest as _, Sha256};

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
