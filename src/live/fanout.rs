//! Waking thousands of streams without stalling everything else. A message to every stream of
//! a hot event wakes each stream's task, and tokio runs woken tasks in order: 5,000 woken at
//! once put every booking task woken meanwhile behind 5,000 socket writes (the LIVE bench's
//! bookings ran at 40 % of their rate without streams). So streams are split into groups that
//! are woken one after another, with a yield in between: bookings run between two groups.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{broadcast, watch};

use super::shared::{Shared, Snapshot};

/// At most this many groups: about 40 streams each at 5,000 streams.
const GROUPS: usize = 128;
/// Messages an `/events/live` group keeps for a slow stream before it skips ahead.
const PUBLISHED_BACKLOG: usize = 256;

/// The snapshots of one watched event. Groups are made as streams arrive, up to `GROUPS`: an
/// event with one stream has one group.
pub struct EventFanout {
    groups: Mutex<Vec<Arc<watch::Sender<Snapshot>>>>,
    next: AtomicUsize,
}

impl EventFanout {
    pub fn new(current: Snapshot) -> Self {
        Self {
            groups: Mutex::new(vec![Arc::new(watch::channel(current).0)]),
            next: AtomicUsize::new(0),
        }
    }

    fn groups(&self) -> Vec<Arc<watch::Sender<Snapshot>>> {
        self.groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        let group = self.next.fetch_add(1, Ordering::Relaxed) % GROUPS;
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = groups.get(group) {
            return existing.subscribe();
        }
        // A new group starts from the latest snapshot, which every send gives group 0 first.
        let current = groups[0].borrow().clone();
        let (sender, receiver) = watch::channel(current);
        groups.push(Arc::new(sender));
        receiver
    }

    pub fn watchers(&self) -> usize {
        self.groups().iter().map(|g| g.receiver_count()).sum()
    }

    /// Resolves when every group that exists now has lost its streams.
    pub async fn unwatched(&self) {
        let groups = self.groups();
        futures_util::future::join_all(groups.iter().map(|g| g.closed())).await;
    }

    /// Every group gets `snapshot`, group 0 first; each group with streams is followed by a
    /// yield. A group made meanwhile (from group 0's older value) gets it too: the loop ends
    /// only when a last look finds no group it has not sent to, and any group made after that
    /// starts from group 0's value, already this one.
    pub async fn send(&self, snapshot: Snapshot) {
        let mut sent = 0;
        loop {
            let groups = self.groups();
            if sent >= groups.len() {
                return;
            }
            for group in &groups[sent..] {
                group.send_replace(snapshot.clone());
                if group.receiver_count() > 0 {
                    tokio::task::yield_now().await;
                }
            }
            sent = groups.len();
        }
    }
}

/// What `/events/live` streams share, in groups as above (made up front: there is one).
pub struct PublishedFanout {
    groups: Vec<broadcast::Sender<Arc<Shared>>>,
    next: AtomicUsize,
}

impl Default for PublishedFanout {
    fn default() -> Self {
        Self {
            groups: (0..GROUPS / 4)
                .map(|_| broadcast::channel(PUBLISHED_BACKLOG).0)
                .collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl PublishedFanout {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Shared>> {
        let group = self.next.fetch_add(1, Ordering::Relaxed) % self.groups.len();
        self.groups[group].subscribe()
    }

    pub fn watchers(&self) -> usize {
        self.groups
            .iter()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }

    pub async fn send(&self, shared: Arc<Shared>) {
        for group in &self.groups {
            if group.send(shared.clone()).is_ok() {
                tokio::task::yield_now().await;
            }
        }
    }
}
