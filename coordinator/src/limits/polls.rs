//! [`PollSlots`]: how many long polls each worker id has in flight, capped.
//!
//! A worker needs one long poll at a time (two while a reply is lost on
//! the way back and it asks again); a caller that opens more only ties up
//! the server. A poll over the cap is answered at once with 429
//! `too_many_requests`, before it touches the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::ApiError;

/// Long polls in flight, per worker id.
#[derive(Debug)]
pub struct PollSlots {
    max: u32,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// One long poll's place; freed when dropped (the poll ended, or its
/// client went away and the handler was dropped).
#[derive(Debug)]
pub struct PollSlot {
    worker_id: String,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

impl PollSlots {
    /// At most `max` polls per worker id.
    pub fn new(max: u32) -> Self {
        PollSlots {
            max: max.max(1),
            in_flight: Arc::default(),
        }
    }

    /// A place for one more poll of `worker_id`, or 429 when it has `max`.
    pub fn take(&self, worker_id: &str) -> Result<PollSlot, ApiError> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(worker_id.to_string()).or_insert(0);
        if *count >= self.max {
            return Err(ApiError::too_many_requests(format!(
                "worker {worker_id} already has {} lease requests waiting (the most this coordinator holds per worker, \
                 serve --max-polls-per-worker); wait for one to end before asking again",
                self.max
            )));
        }
        *count += 1;
        Ok(PollSlot {
            worker_id: worker_id.to_string(),
            in_flight: Arc::clone(&self.in_flight),
        })
    }

    /// Polls of `worker_id` in flight now.
    pub fn count(&self, worker_id: &str) -> u32 {
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        in_flight.get(worker_id).copied().unwrap_or(0)
    }
}

impl Drop for PollSlot {
    fn drop(&mut self) {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(&self.worker_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.worker_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_holds_at_most_max_polls_and_dropping_one_frees_it() {
        let slots = PollSlots::new(2);
        let a = slots.take("w").unwrap();
        let _b = slots.take("w").unwrap();
        let error = slots.take("w").unwrap_err();
        assert_eq!(error.code, pictor_protocol::api::ErrorCode::TooManyRequests);
        assert!(
            error.message.contains("worker w already has 2"),
            "{}",
            error.message
        );
        let _other = slots.take("v").unwrap();
        drop(a);
        assert_eq!(slots.count("w"), 1);
        let _c = slots.take("w").unwrap();
        drop(_c);
        drop(_b);
        assert_eq!(slots.count("w"), 0);
        assert!(slots.in_flight.lock().unwrap().get("w").is_none());
    }
}
