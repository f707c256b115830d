//! The expensive part of an event's statistics (aggregates over all its bookings), kept per
//! event under a key that every change of them changes: the event row's `xmin` (every booking,
//! hold, confirm, cancel and expiry rewrites that row, in the same transaction), its ticket
//! types as they are, and the UTC date (sales are "the last 90 days"). The key is read from the
//! database on every call, so any instance sees another's change at once: the cache can make
//! an answer faster, never older. Check-ins rewrite no event row; they are counted on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::model::{DaySales, StatusCounts, TypeStats};

/// Events whose figures are kept; past it, the oldest half is forgotten.
const CAPACITY: usize = 1_024;

/// What the aggregates over an event's bookings came to.
#[derive(Clone)]
pub struct Aggregates {
    pub seats_confirmed: i64,
    pub seats_held: i64,
    pub revenue_cents: i64,
    pub bookings: StatusCounts,
    /// Tickets of CONFIRMED bookings.
    pub tickets: i64,
    /// Check-ins of bookings that are no longer CONFIRMED (cancelled after the door).
    pub void_check_ins: i64,
    pub ticket_types: Vec<TypeStats>,
    pub sales_by_day: Vec<DaySales>,
}

/// An event's aggregates with their key and when they were kept (a tick of `clock`).
type Entry = (String, u64, Arc<Aggregates>);

#[derive(Default)]
pub struct StatsCache {
    entries: Mutex<HashMap<i32, Entry>>,
    clock: std::sync::atomic::AtomicU64,
}

impl StatsCache {
    pub fn get(&self, event_id: i32, key: &str) -> Option<Arc<Aggregates>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&event_id)
            .filter(|(stored, _, _)| stored == key)
            .map(|(_, _, aggregates)| aggregates.clone())
    }

    pub fn put(&self, event_id: i32, key: String, aggregates: Arc<Aggregates>) {
        let tick = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(&event_id) {
            let mut ages: Vec<u64> = entries.values().map(|(_, at, _)| *at).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            entries.retain(|_, (_, at, _)| *at > cut);
        }
        entries.insert(event_id, (key, tick, aggregates));
    }
}
