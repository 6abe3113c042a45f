//! Serving private blobs over `/knoop/private/1`: a blob goes only to a member node that proves
//! the fetch token; anyone else gets the same miss as for a blob that is not here.

use super::*;

impl Private {
    /// Answers `/knoop/private/1` (spec §6): only a member node holding the fetch token gets
    /// the blob; every other request, whatever this node holds, gets the same miss.
    pub fn answer(&self, peer: &PeerId, request: &[u8]) -> Vec<u8> {
        let encode = |r: &BlobResponse| cbor4ii::serde::to_vec(Vec::new(), r).unwrap_or_default();
        let Ok(req) = cbor4ii::serde::from_slice::<BlobRequest>(request) else {
            return encode(&BlobResponse::Refused("bad_request".into()));
        };
        let parsed = (
            <[u8; 32]>::try_from(req.tx.as_slice()),
            <[u8; 32]>::try_from(req.token.as_slice()),
        );
        let (Ok(tx), Ok(token)) = parsed else {
            return encode(&BlobResponse::Refused("bad_request".into()));
        };
        match self.serve(peer, &knoop_gossip::Hash32(tx), &token) {
            Some(blob) => encode(&BlobResponse::Blob(blob)),
            None => MISS.to_vec(),
        }
    }

    pub(super) fn serve(&self, peer: &PeerId, tx: &TxId, token: &[u8; 32]) -> Option<Vec<u8>> {
        let operator = self.dids.did_of_peer(&peer.to_string())?;
        let (_, d) = self.descriptor_of(tx)?;
        if !fetch_token_matches(token, &d.fth) {
            return None;
        }
        let blob = self.store.get_private(&blob_key(&d.blob_hash)).ok()??;
        info!(%tx, requester = %operator, "private blob served");
        Some(blob)
    }
}
