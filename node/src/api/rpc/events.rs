//! `GET /v1/events`: server-sent events (HTML Living Standard, "Server-sent events"), one
//! `transaction` event per stored transaction, in the order the node stored them, each with
//! its local sequence number as the event `id`. A client that reconnects with `Last-Event-ID`
//! gets what it missed from the store before the live events, and one that falls behind the
//! live stream is caught up from the store the same way: no transaction is skipped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures::Stream;
use knoop_gossip::{Hash32, Source, Stored, Transaction};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::api::rpc::state::RpcState;

/// Transactions read from the store per catch-up step.
const CATCH_UP_PAGE: usize = 256;

pub fn routes() -> Router<Arc<RpcState>> {
    Router::new().route("/v1/events", get(events))
}

/// The event of the transaction stored as `seq`; `local` (submitted through this node) is
/// known for live events only.
fn event(seq: u64, id: &Hash32, tx: Option<&Transaction>, local: Option<bool>) -> Event {
    let mut data = json!({
        "id": id,
        "seq": seq,
        "content_type": tx.map(|t| t.header().cty.clone()),
        "sigt": tx.map(|t| t.header().sigt),
    });
    if let Some(l) = local {
        data["local"] = json!(l);
    }
    Event::default()
        .event("transaction")
        .id(seq.to_string())
        .json_data(data)
        .unwrap_or_default()
}

/// Where one client's stream stands.
struct Cursor {
    st: Arc<RpcState>,
    rx: tokio::sync::broadcast::Receiver<Stored>,
    /// The sequence number of the last event sent.
    sent: u64,
    ready: VecDeque<Event>,
}

impl Cursor {
    /// Queues the stored transactions after `sent` up to `until` (inclusive; `None`: all),
    /// read from the store.
    fn catch_up(&mut self, until: Option<u64>) {
        let store = self.st.log.store();
        loop {
            let page = match store.list_after(self.sent, CATCH_UP_PAGE) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "event stream: cannot read the store");
                    return;
                }
            };
            let n = page.len();
            for (seq, id) in page {
                if until.is_some_and(|u| seq > u) {
                    return;
                }
                let tx = store
                    .get_tx(&id)
                    .ok()
                    .flatten()
                    .and_then(|s| Transaction::parse(&s.envelope, None).ok());
                self.ready.push_back(event(seq, &id, tx.as_ref(), None));
                self.sent = seq;
            }
            if n < CATCH_UP_PAGE {
                return;
            }
        }
    }

    /// The next event: queued ones first, then the live stream (a gap, after lagging behind or
    /// between the store and the stream, is filled from the store).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            match self.rx.recv().await {
                Ok(s) => {
                    let id = s.tx.id();
                    let seq = match self.st.log.store().get_tx(&id) {
                        Ok(Some(stored)) => stored.seq,
                        _ => continue,
                    };
                    if seq <= self.sent {
                        continue;
                    }
                    self.catch_up(Some(seq - 1));
                    self.ready.push_back(event(
                        seq,
                        &id,
                        Some(&s.tx),
                        Some(s.source == Source::Local),
                    ));
                    self.sent = seq;
                }
                Err(RecvError::Lagged(_)) => self.catch_up(None),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

async fn events(
    State(st): State<Arc<RpcState>>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribe before reading where the store stands, so nothing falls between the two.
    let rx = st.log.subscribe();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let now = st.log.store().last_seq().unwrap_or(0);
    let mut cursor = Cursor {
        st: st.clone(),
        rx,
        sent: resume.unwrap_or(now).min(now),
        ready: VecDeque::new(),
    };
    if resume.is_some() {
        cursor.catch_up(Some(now));
    }
    let stream =
        futures::stream::unfold(
            cursor,
            |mut c| async move { c.next().await.map(|e| (Ok(e), c)) },
        );
    let mut stop = st.stop.clone();
    let stream = futures::StreamExt::take_until(stream, async move {
        let _ = stop.wait_for(|v| *v).await;
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
