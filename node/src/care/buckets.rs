//! Token buckets by key (an organisation, a patient service): the per-requester limits that
//! holders apply to the questions they answer (`specs/consent-localisation.md` §7,
//! `specs/patient-view.md` §3). Bounded: keys idle for a minute are forgotten once there are
//! many.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before idle ones are swept.
const SWEEP_ABOVE: usize = 10_000;

pub struct Buckets {
    rate: f64,
    burst: f64,
    state: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    /// `rate` tokens a second, at most `burst` saved up, per key.
    pub fn new(rate: f64, burst: f64) -> Self {
        Buckets {
            rate,
            burst,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token of `key`'s bucket; false when it is empty.
    pub fn take(&self, key: &str) -> bool {
        let Ok(mut b) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        if b.len() > SWEEP_ABOVE {
            b.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(60));
        }
        let (tokens, at) = b.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_refuses() {
        let b = Buckets::new(0.001, 3.0);
        assert!((0..3).all(|_| b.take("a")));
        assert!(!b.take("a"));
        assert!(b.take("b"), "each key has its own bucket");
    }
}
