//! The audit log's hash chain: one chain per tenant plus a global one.
//!
//! Each entry's hash covers the previous entry's hash and every field of the entry, so an
//! edited entry breaks its own hash, a deleted entry breaks the sequence or the next entry's
//! `prev_hash`, and a truncated tail disagrees with the chain head.

use candor_crypto::sha256_parts;
use candor_types::{TenantId, Timestamp};
use serde::Serialize;

use crate::AuditEntry;

/// The chain an entry belongs to: the tenant's id, or `global` for deployment-wide entries.
pub fn chain_name(tenant: Option<TenantId>) -> String {
    match tenant {
        Some(t) => t.to_string(),
        None => "global".to_owned(),
    }
}

/// The hash of an entry, given the previous entry's hash.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    prev_hash: &[u8],
    chain: &str,
    seq: i64,
    at: Timestamp,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: &str,
) -> [u8; 32] {
    sha256_parts(&[
        b"candor-audit-v1",
        prev_hash,
        chain.as_bytes(),
        &seq.to_be_bytes(),
        &at.0.to_be_bytes(),
        actor.as_bytes(),
        action.as_bytes(),
        target.map(str::as_bytes).unwrap_or(b"\0none"),
        details.as_bytes(),
    ])
}

/// Where and why a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit chain `{chain}` is broken at entry {seq}: {reason}")]
pub struct AuditBreak {
    pub chain: String,
    pub seq: i64,
    pub reason: String,
}

/// Checks a chain fed in pages: call with each page in order, then with the head.
#[derive(Debug)]
pub struct ChainVerifier {
    chain: String,
    last_seq: i64,
    last_hash: Vec<u8>,
}

/// Verifies entries in order; see [`ChainVerifier`].
pub fn verify_chain(chain: &str) -> ChainVerifier {
    ChainVerifier {
        chain: chain.to_owned(),
        last_seq: 0,
        last_hash: vec![0u8; 32],
    }
}

impl ChainVerifier {
    fn broken(&self, seq: i64, reason: impl Into<String>) -> AuditBreak {
        AuditBreak {
            chain: self.chain.clone(),
            seq,
            reason: reason.into(),
        }
    }

    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    pub fn feed(&mut self, e: &AuditEntry) -> Result<(), AuditBreak> {
        let expected = self.last_seq + 1;
        if e.seq != expected {
            return Err(self.broken(
                expected,
                format!(
                    "entry {expected} is missing (next stored entry is {})",
                    e.seq
                ),
            ));
        }
        if e.prev_hash != self.last_hash {
            return Err(self.broken(e.seq, "previous-hash link does not match the entry before"));
        }
        let h = entry_hash(
            &e.prev_hash,
            &self.chain,
            e.seq,
            e.at,
            &e.actor,
            &e.action,
            e.target.as_deref(),
            &e.details,
        );
        if h[..] != e.hash[..] {
            return Err(self.broken(e.seq, "content does not match its hash (entry was edited)"));
        }
        self.last_seq = e.seq;
        self.last_hash = e.hash.clone();
        Ok(())
    }

    /// Compares the end of the chain with the recorded head (catches a deleted tail).
    pub fn finish(self, head_seq: i64, head_hash: &[u8]) -> Result<i64, AuditBreak> {
        if head_seq != self.last_seq || (head_seq > 0 && head_hash != self.last_hash) {
            return Err(self.broken(
                self.last_seq + 1,
                format!(
                    "chain ends at entry {} but its head records entry {head_seq}",
                    self.last_seq
                ),
            ));
        }
        Ok(self.last_seq)
    }
}
