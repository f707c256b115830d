//! A coherent cache of the public event reads: each published (non-draft) event's view as
//! JSON, and which events a listing page names with its count. Coherent means:
//!
//! - An instance that wrote a change never serves the old state afterwards: every write path
//!   here drops what it changed after its COMMIT and before it answers (`seats_changed`,
//!   `event_changed`).
//! - Other instances' changes arrive through the change feed (`live::feed`) and drop the same
//!   entries, within the feed's delivery time; while the feed is not connected the cache is
//!   not used at all, and when it reconnects everything is forgotten.
//! - A read that raced a change is not kept: a fill takes a ticket before it reads, and is
//!   kept only if nothing it covers changed after the ticket.
//!
//! A listing keeps only event ids, never seat counts: its views come from the view entries.
//! So a booking drops one view and no listing; only changes of what a listing filters or
//! sorts by (an event's creation, deletion, title, dates, status, ...) drop the listings.
//! Listings that depend on the clock are not cached (see `search`); of those filtered by seats
//! (`minSeats`) only their matches before that filter are (`Matches`): which of them have the
//! seats is read at every request.

mod bounded;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::value::RawValue;

use bounded::Bounded;

use crate::http::PageMeta;

/// What the cache holds at most (see `Bounded`): the JSON of the views, in bytes (a view is
/// about 600 bytes: some 27,000 views); the listings (a few hundred bytes each); the ids of
/// the matches of seat-filtered listings (`search::MAX_MATCHES` at most each). The views'
/// budget moved the server's memory less than the allocator's leftovers did: after the whole
/// features bench, 45–50 MB with 8, 16 or 32 MB of views (39 MB for the build before).
const VIEW_BYTES: usize = 16 << 20;
const LISTINGS: usize = 10_000;
const MATCH_IDS: usize = 1_000_000;
/// Change records kept; past it, fills that started before are refused (see `State::floor`).
const CHANGES_KEPT: usize = 50_000;

/// A page of a listing: the ids of its events in order, and its meta.
pub struct Listing {
    pub ids: Vec<i32>,
    pub meta: PageMeta,
}

/// Every event a listing filtered by seats may show, in its order, before the seat filter;
/// `None` when too many match to keep them.
pub struct Matches {
    pub ids: Option<Vec<i32>>,
}

/// Taken before a read, so that the read is kept only if nothing changed meanwhile.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

#[derive(Default)]
pub struct EventCache {
    /// False with a read replica: a fill from a replica that lags would be kept past the lag.
    enabled: bool,
    /// The change feed is connected: remote changes reach this cache.
    live: AtomicBool,
    state: Mutex<State>,
}

struct State {
    views: Bounded<i32, Arc<RawValue>>,
    lists: Bounded<String, Arc<Listing>>,
    matches: Bounded<String, Arc<Matches>>,
    /// Counts changes; a ticket is its value when the read began.
    clock: u64,
    /// The clock of each event's last change.
    changed: HashMap<i32, u64>,
    /// The clock of the last change that may move listings.
    lists_changed: u64,
    /// Fills with a ticket before this are refused (change records were forgotten then).
    floor: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            views: Bounded::new(VIEW_BYTES, |view| view.get().len()),
            lists: Bounded::new(LISTINGS, |_| 1),
            matches: Bounded::new(MATCH_IDS, |matches| {
                matches.ids.as_ref().map_or(1, Vec::len)
            }),
            clock: 0,
            changed: HashMap::new(),
            lists_changed: 0,
            floor: 0,
        }
    }
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn forget_all(&mut self) {
        let now = self.tick();
        self.views.clear();
        self.lists.clear();
        self.matches.clear();
        self.changed.clear();
        self.floor = now;
        self.lists_changed = now;
    }

    fn drop_view(&mut self, id: i32, now: u64) {
        self.views.remove(&id);
        if self.changed.len() >= CHANGES_KEPT {
            self.changed.clear();
            self.floor = now;
        }
        self.changed.insert(id, now);
    }

    /// Nothing that may move listings changed since `ticket`.
    fn lists_fresh(&self, ticket: Ticket) -> bool {
        ticket.0 >= self.floor && self.lists_changed <= ticket.0
    }

    fn fresh(&self, ticket: Ticket, id: i32) -> bool {
        ticket.0 >= self.floor && self.changed.get(&id).is_none_or(|at| *at <= ticket.0)
    }
}

impl EventCache {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            ..Self::default()
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ticket for a read that may be kept; `None` while the cache is not in use.
    pub fn ticket(&self) -> Option<Ticket> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        Some(Ticket(self.state().clock))
    }

    /// What `read` finds, while the cache is in use.
    fn kept<T>(&self, read: impl FnOnce(&State) -> Option<T>) -> Option<T> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        read(&self.state())
    }

    pub fn view(&self, id: i32) -> Option<Arc<RawValue>> {
        self.kept(|state| state.views.get(&id).cloned())
    }

    /// Keeps a public view read under `ticket`, unless its event changed since.
    pub fn keep_view(&self, ticket: Ticket, id: i32, view: Arc<RawValue>) {
        let mut state = self.state();
        if !state.fresh(ticket, id) {
            return;
        }
        state.views.insert(id, view);
    }

    pub fn listing(&self, key: &str) -> Option<Arc<Listing>> {
        self.kept(|state| state.lists.get(key).cloned())
    }

    /// Keeps a listing read under `ticket`, unless a change that may move listings came since.
    pub fn keep_listing(&self, ticket: Ticket, key: String, listing: Arc<Listing>) {
        let mut state = self.state();
        if state.lists_fresh(ticket) {
            state.lists.insert(key, listing);
        }
    }

    pub fn matches(&self, key: &str) -> Option<Arc<Matches>> {
        self.kept(|state| state.matches.get(key).cloned())
    }

    /// Keeps matches read under `ticket`, unless a change that may move listings came since.
    pub fn keep_matches(&self, ticket: Ticket, key: String, matches: Arc<Matches>) {
        let mut state = self.state();
        if state.lists_fresh(ticket) {
            state.matches.insert(key, matches);
        }
    }

    /// The seats, types or bookings of these events changed (a booking, a ticket type): their
    /// views go, listings stay.
    pub fn seats_changed(&self, ids: impl IntoIterator<Item = i32>) {
        let mut state = self.state();
        let now = state.tick();
        for id in ids {
            state.drop_view(id, now);
        }
    }

    /// Anything else about an event changed (or it was created or deleted): its view and
    /// every listing go.
    pub fn event_changed(&self, id: i32) {
        let mut state = self.state();
        let now = state.tick();
        state.drop_view(id, now);
        state.lists.clear();
        state.matches.clear();
        state.lists_changed = now;
    }

    /// Changes may have been missed: start over.
    pub fn forget_all(&self) {
        self.state().forget_all();
    }

    /// Whether remote changes reach the cache (the change feed is connected). Either way
    /// everything kept so far is forgotten.
    pub fn set_live(&self, live: bool) {
        let mut state = self.state();
        state.forget_all();
        self.live.store(live && self.enabled, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Arc<RawValue> {
        Arc::from(RawValue::from_string(text.to_string()).unwrap())
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = EventCache::new(true);
        assert!(cache.ticket().is_none(), "unused until the feed is live");
        cache.set_live(true);
        let before = cache.ticket().unwrap();
        cache.seats_changed([7]);
        cache.keep_view(before, 7, json("{\"old\":true}"));
        assert!(cache.view(7).is_none());
        let after = cache.ticket().unwrap();
        cache.keep_view(after, 7, json("{\"new\":true}"));
        assert_eq!(cache.view(7).unwrap().get(), "{\"new\":true}");
        // Another event's change leaves it alone; its own drops it.
        cache.seats_changed([8]);
        assert!(cache.view(7).is_some());
        cache.seats_changed([7]);
        assert!(cache.view(7).is_none());
    }

    #[test]
    fn seat_changes_keep_listings_other_changes_drop_them() {
        let cache = EventCache::new(true);
        cache.set_live(true);
        let listing = || {
            Arc::new(Listing {
                ids: vec![1, 2],
                meta: PageMeta {
                    total: 2,
                    page: 1,
                    limit: 10,
                    total_pages: 1,
                    total_exact: Some(true),
                },
            })
        };
        let matches = || {
            Arc::new(Matches {
                ids: Some(vec![1, 2]),
            })
        };
        let ticket = cache.ticket().unwrap();
        cache.keep_listing(ticket, "all".into(), listing());
        cache.keep_matches(ticket, "all".into(), matches());
        cache.seats_changed([1]);
        assert!(cache.listing("all").is_some() && cache.matches("all").is_some());
        cache.event_changed(2);
        assert!(cache.listing("all").is_none() && cache.matches("all").is_none());
        cache.keep_matches(ticket, "all".into(), matches());
        assert!(
            cache.matches("all").is_none(),
            "matches read before the change"
        );
        cache.keep_listing(ticket, "all".into(), listing());
        assert!(cache.listing("all").is_none(), "read before the change");
        let ticket = cache.ticket().unwrap();
        cache.keep_listing(ticket, "all".into(), listing());
        cache.set_live(false);
        assert!(cache.listing("all").is_none() && cache.ticket().is_none());
    }
}
