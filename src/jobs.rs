//! Background work of a running server, each in the module it belongs to: releasing expired
//! holds every second, sweeping old Idempotency-Keys every hour, listening to the change feed
//! and reading changed events once for all live streams. The tasks live as long as the runtime
//! that serves; every instance runs them, and each is safe to run on many at once. Delivering
//! notifications too: the courier claims each attempt for one instance.

use crate::bookings::{expiry, idempotency};
use crate::live::{feed, shared};
use crate::notify::Courier;
use crate::state::AppState;

/// Fails, before starting anything, on notification settings that cannot work.
pub fn spawn_background(state: &AppState) -> anyhow::Result<()> {
    let courier = Courier::new(state.db.clone(), &state.config.notify)?;
    tokio::spawn(expiry::sweep_every_second(
        state.db.clone(),
        state.bookings.clone(),
    ));
    tokio::spawn(idempotency::sweep_hourly(state.db.clone()));
    tokio::spawn(feed::listen(
        state.db.clone(),
        state.live.clone(),
        state.event_cache.clone(),
    ));
    tokio::spawn(shared::read_published(state.db.clone(), state.live.clone()));
    if state.config.notify.worker {
        tokio::spawn(courier.run());
    }
    tokio::spawn(state.reads.clone().watch());
    Ok(())
}
