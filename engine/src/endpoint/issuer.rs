//! The connection ID issuer the endpoint gives each connection: the first ID is the one the
//! router registered, later ones carry the worker index in the router's QUIC-LB format and the
//! reset token of the endpoint's static key.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::{CidFormat, ResetKey};
use crate::cid::{ConnectionId, ResetToken};
use crate::connection::CidGenerator;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct CidIssuer {
    first: Option<(ConnectionId, ResetToken)>,
    format: CidFormat,
    worker: u8,
    reset_key: ResetKey,
    rng: ChaCha20Rng,
}

impl CidIssuer {
    pub(crate) fn new(
        first: (ConnectionId, ResetToken),
        format: CidFormat,
        worker: u8,
        reset_key: ResetKey,
        seed: u64,
    ) -> Self {
        Self {
            first: Some(first),
            format,
            worker,
            reset_key,
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }
}

impl CidGenerator for CidIssuer {
    fn cid_len(&self) -> usize {
        self.format.len()
    }

    fn generate(&mut self) -> (ConnectionId, ResetToken) {
        if let Some(f) = self.first.take() {
            return f;
        }
        let cid = self.format.generate(self.worker, &mut self.rng);
        let token = self.reset_key.token(&cid);
        (cid, token)
    }
}
