//! Logins in progress and patients' sessions (spec: `specs/patient-view.md` §2), in memory
//! only: a restart logs everyone out, and nothing about a patient reaches the disk. Both maps
//! are bounded; the oldest entry goes first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use knoop_privacy::patient::PatientKeys;
use zeroize::Zeroizing;

/// How long a login may take, and a session may last.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
pub const SESSION_TTL: Duration = Duration::from_secs(900);
/// Most logins in progress and sessions held.
const MAX_ENTRIES: usize = 10_000;

/// A login in progress, by its `state`.
pub struct Pending {
    pub nonce: String,
    pub verifier: Zeroizing<String>,
    pub lang: String,
    started: Instant,
}

/// A logged-in patient.
pub struct Session {
    /// The patient's derived keys (the BSN is gone).
    pub keys: PatientKeys,
    pub acr: Option<String>,
    pub auth_time: Option<i64>,
    pub lang: String,
    expires: Instant,
}

impl Session {
    pub fn new(
        keys: PatientKeys,
        acr: Option<String>,
        auth_time: Option<i64>,
        lang: String,
        ttl: Duration,
    ) -> Self {
        Session {
            keys,
            acr,
            auth_time,
            lang,
            expires: Instant::now() + ttl.min(SESSION_TTL),
        }
    }
}

#[derive(Default)]
pub struct Sessions {
    pending: Mutex<HashMap<String, Pending>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// Remembers a login under `state`.
    pub fn begin(&self, state: String, nonce: String, verifier: Zeroizing<String>, lang: String) {
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        p.retain(|_, l| l.started.elapsed() < LOGIN_TTL);
        if p.len() >= MAX_ENTRIES {
            if let Some(oldest) = p
                .iter()
                .min_by_key(|(_, l)| l.started)
                .map(|(k, _)| k.clone())
            {
                p.remove(&oldest);
            }
        }
        p.insert(
            state,
            Pending {
                nonce,
                verifier,
                lang,
                started: Instant::now(),
            },
        );
    }

    /// Takes the login of `state`, once.
    pub fn take(&self, state: &str) -> Option<Pending> {
        let mut p = self.pending.lock().ok()?;
        p.remove(state).filter(|l| l.started.elapsed() < LOGIN_TTL)
    }

    /// Starts a session; its id.
    pub fn start(&self, session: Session) -> String {
        let id = super::oidc::random_token(32);
        if let Ok(mut s) = self.sessions.lock() {
            let now = Instant::now();
            s.retain(|_, x| x.expires > now);
            if s.len() >= MAX_ENTRIES {
                if let Some(oldest) = s
                    .iter()
                    .min_by_key(|(_, x)| x.expires)
                    .map(|(k, _)| k.clone())
                {
                    s.remove(&oldest);
                }
            }
            s.insert(id.clone(), Arc::new(session));
        }
        id
    }

    /// The live session `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.sessions.lock().ok()?;
        s.get(id).filter(|x| x.expires > Instant::now()).cloned()
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        if let Ok(mut s) = self.sessions.lock() {
            s.remove(id);
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(b: u8) -> PatientKeys {
        PatientKeys {
            k_tag: Zeroizing::new([b; 32]),
            k_ent: Zeroizing::new([b; 32]),
            k_pat: Zeroizing::new([b; 32]),
            p: [b; 32],
        }
    }

    #[test]
    fn a_login_is_taken_once_and_a_session_ends() {
        let s = Sessions::default();
        s.begin(
            "st".into(),
            "n".into(),
            Zeroizing::new("v".into()),
            "nl".into(),
        );
        assert!(s.take("other").is_none());
        assert_eq!(s.take("st").map(|p| p.nonce), Some("n".to_owned()));
        assert!(s.take("st").is_none(), "a state is used once");
        let id = s.start(Session::new(keys(1), None, None, "nl".into(), SESSION_TTL));
        assert_eq!(id.len(), 43);
        assert_eq!(s.get(&id).map(|x| x.keys.p), Some([1; 32]));
        assert!(s.get("guess").is_none());
        s.end(&id);
        assert!(s.get(&id).is_none());
        let short = s.start(Session::new(
            keys(2),
            None,
            None,
            "en".into(),
            Duration::ZERO,
        ));
        assert!(s.get(&short).is_none(), "an expired session is gone");
    }
}
