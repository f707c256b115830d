//! The event of each booking this instance made lately, so that a confirm or a cancel of it
//! finds its event's lane without a round trip first. A booking never moves to another event,
//! so an entry never goes stale (a booking deleted since is simply not found by its lane); a
//! booking made elsewhere, or long ago, is looked up in the database.

use std::collections::HashMap;
use std::mem;
use std::sync::{Mutex, PoisonError};

use uuid::Uuid;

/// Entries per generation: two generations (about 3 MB) cover the last 32,768 to 65,536
/// bookings, minutes of a busy sale, which is when a hold is confirmed or a booking cancelled.
const GENERATION: usize = 32_768;

#[derive(Default)]
pub struct RecentBookings(Mutex<Generations>);

#[derive(Default)]
struct Generations {
    current: HashMap<Uuid, i32>,
    previous: HashMap<Uuid, i32>,
}

impl RecentBookings {
    pub fn remember(&self, reference: Uuid, event_id: i32) {
        let mut generations = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if generations.current.len() >= GENERATION {
            let full = mem::take(&mut generations.current);
            generations.previous = full;
        }
        generations.current.insert(reference, event_id);
    }

    pub fn event_of(&self, reference: Uuid) -> Option<i32> {
        let generations = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        generations
            .current
            .get(&reference)
            .or_else(|| generations.previous.get(&reference))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_generation_and_forgets_older_ones() {
        let recent = RecentBookings::default();
        let first = Uuid::new_v4();
        recent.remember(first, 7);
        assert_eq!(recent.event_of(first), Some(7));
        for _ in 0..GENERATION {
            recent.remember(Uuid::new_v4(), 8);
        }
        // `first` is in the previous generation now: still known.
        assert_eq!(recent.event_of(first), Some(7));
        for _ in 0..GENERATION {
            recent.remember(Uuid::new_v4(), 9);
        }
        assert_eq!(recent.event_of(first), None);
        assert_eq!(recent.event_of(Uuid::new_v4()), None);
    }
}
