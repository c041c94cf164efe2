//! The hash chain of the admin audit log.

use sha2::{Digest, Sha256};

use crate::model::{AuditEntry, Millis};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry: SHA-256 over the previous hash and every field,
/// each length-prefixed so that no two field lists hash alike.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    timestamp: Millis,
    actor: &str,
    action: &str,
    target: &str,
    details: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev_hash.as_bytes(),
        &seq.to_be_bytes(),
        &timestamp.to_be_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        target.as_bytes(),
        details.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// An entry's sequence number is not one more than the previous one (an entry was dropped or inserted).
    #[error("audit entry {seq}: expected sequence number {expected}")]
    Gap {
        /// The sequence number found.
        seq: i64,
        /// The one expected.
        expected: i64,
    },
    /// An entry does not point at the previous entry's hash.
    #[error("audit entry {seq}: prev_hash does not match the previous entry")]
    Link {
        /// The entry.
        seq: i64,
    },
    /// An entry's fields do not hash to its stored hash (it was edited).
    #[error("audit entry {seq}: contents do not match its hash")]
    Tampered {
        /// The entry.
        seq: i64,
    },
}

/// Checks a chain read in sequence order, from its first entry. Returns the
/// number of entries checked.
pub fn verify_chain<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> Result<u64, ChainError> {
    let mut prev = GENESIS.to_owned();
    let mut n = 0;
    for (expected, e) in (1..).zip(entries) {
        if e.seq != expected {
            return Err(ChainError::Gap { seq: e.seq, expected });
        }
        if e.prev_hash != prev {
            return Err(ChainError::Link { seq: e.seq });
        }
        let h = entry_hash(&e.prev_hash, e.seq, e.timestamp, &e.actor, &e.action, &e.target, &e.details);
        if h != e.hash {
            return Err(ChainError::Tampered { seq: e.seq });
        }
        prev = h;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_owned(), |e| e.hash.clone());
            let hash = entry_hash(&prev, seq, 1000 + seq, "admin", "key.create", "k1", "{}");
            out.push(AuditEntry {
                seq,
                timestamp: 1000 + seq,
                actor: "admin".into(),
                action: "key.create".into(),
                target: "k1".into(),
                details: "{}".into(),
                prev_hash: prev,
                hash,
            });
        }
        out
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify_chain(&chain(5)), Ok(5));
        assert_eq!(verify_chain(&[]), Ok(0));
    }

    #[test]
    fn edited_entry_is_found() {
        let mut c = chain(4);
        c[2].target = "k2".into();
        assert_eq!(verify_chain(&c), Err(ChainError::Tampered { seq: 3 }));
    }

    #[test]
    fn dropped_entry_is_found() {
        let mut c = chain(4);
        c.remove(1);
        assert_eq!(verify_chain(&c), Err(ChainError::Gap { seq: 3, expected: 2 }));
    }

    #[test]
    fn rehashed_entry_breaks_the_next_link() {
        let mut c = chain(4);
        c[1].actor = "mallory".into();
        c[1].hash = entry_hash(&c[1].prev_hash, 2, c[1].timestamp, "mallory", "key.create", "k1", "{}");
        assert_eq!(verify_chain(&c), Err(ChainError::Link { seq: 3 }));
    }

    #[test]
    fn field_boundaries_matter() {
        assert_ne!(entry_hash(GENESIS, 1, 0, "ab", "c", "", ""), entry_hash(GENESIS, 1, 0, "a", "bc", "", ""));
    }
}
