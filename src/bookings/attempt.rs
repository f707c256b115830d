//! One attempt at the groups of seat operations of one or more events, as DESIGN.md describes
//! it: in one transaction, take each event's advisory lock, lock the bookings'
//! Idempotency-Key claims, read the events with their versions and ticket types and the
//! bookings that confirms, cancels and expiries name (`snapshot`), apply each event's
//! operations in order to its state (`plan`), then write the result in one statement
//! (`writes`): each event's version-checked UPDATE (its version grows by one per booking,
//! cancel, expiry or edit, as if they had run one by one), their ticket types, the new bookings
//! and the status changes; then each key's outcome. The advisory locks make the lanes of
//! several instances take turns on an event. The attempt stops short of COMMIT: the caller
//! decides whether there is still time to send it (see `group`).

use axum::http::StatusCode;
use sqlx::{PgPool, Postgres, Transaction};

use super::idempotency::{self, KeyClaim};
use super::job::{Answer, Done, Op};
use super::model::confirmed_body;
use super::plan::{self, Plan};
use super::snapshot;
use super::writes::{self, EventWrite};
use crate::concurrency::Attempt;
use crate::db::commit::{begin_then, Tx};
use crate::error::Result;
use crate::notify::outbox;

/// One event's operations in an attempt.
pub type EventOps<'a> = (i32, Vec<&'a Op>);

/// How one event's operations came out of an attempt.
pub enum Settled {
    /// Every operation has its answer (committed with the attempt, if it wrote anything).
    Answered {
        outcomes: Vec<Answer>,
        /// False when the event does not exist: its lane can end at once.
        found: bool,
    },
    /// The event's version changed since it was read: nothing of it was written.
    Lost,
}

/// An attempt that is ready for COMMIT, with how each event came out, in the attempt's order.
pub struct Prepared {
    /// `None` when nothing was written (every operation refused or lost, no key to record).
    pub tx: Option<Tx>,
    pub events: Vec<Settled>,
}

/// The first key of the two-key advisory locks this server takes: one lock per event.
const EVENT_LOCK_SPACE: i32 = 1;

/// How a group's transaction runs.
#[derive(Clone, Copy)]
pub struct Settings {
    pub hold_seconds: i32,
    /// Take the events' advisory locks first (lanes on), so the lanes of other instances on
    /// these events queue instead of racing this one for the version (which still guards
    /// every write). Off, the transaction is the plain optimistic one of API.md.
    pub coordinate: bool,
    /// Write an email notification for each booking change, beside the webhooks' ones.
    pub email: bool,
}

/// One attempt at `events` (each event at most once). `Lost` when a booking changed under it.
pub async fn prepare(
    db: &PgPool,
    events: &[EventOps<'_>],
    settings: Settings,
) -> Result<Attempt<Prepared>> {
    let mut ids: Vec<i32> = events.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let mut tx = begin_then(db, setup(&ids, settings.coordinate)).await?;
    let all_ops: Vec<&Op> = events
        .iter()
        .flat_map(|(_, ops)| ops.iter().copied())
        .collect();
    let held = lock_claims(&mut tx, &all_ops).await?;
    let mut reads = snapshot::read(&mut tx, &ids, &all_ops).await?;

    let mut settled: Vec<Option<Settled>> = Vec::with_capacity(events.len());
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    let mut unknown_users: Option<Vec<i32>> = None;
    let mut offset = 0;
    for (index, (event_id, ops)) in events.iter().enumerate() {
        let held = &held[offset..offset + ops.len()];
        offset += ops.len();
        let Some(read) = reads.get_mut(event_id) else {
            let known = match &unknown_users {
                Some(known) => known,
                None => unknown_users.insert(known_users(&mut tx, &all_ops).await?),
            };
            let outcomes = plan::no_such_event(*event_id, ops, held, known);
            settled.push(Some(Settled::Answered {
                outcomes,
                found: false,
            }));
            continue;
        };
        let plan = plan::plan(read, ops, held);
        if plan.effects.is_empty() {
            let outcomes = plan::unwritten(plan);
            settled.push(Some(Settled::Answered {
                outcomes,
                found: true,
            }));
        } else {
            settled.push(None);
            plans.push((index, plan));
        }
    }

    let mut wrote = false;
    if !plans.is_empty() {
        let mut to_write = Vec::with_capacity(plans.len());
        for (index, plan) in &plans {
            let (event_id, ops) = &events[*index];
            let event = &reads[event_id].event;
            let notify = if event.has_webhooks || settings.email {
                let summary = outbox::EventSummary {
                    id: event.id,
                    title: &event.title,
                    event_date: event.event_date,
                };
                Some(outbox::Notify::new(event.organizer_id, &summary)?)
            } else {
                None
            };
            to_write.push(EventWrite {
                event,
                ops,
                effects: &plan.effects,
                types: &plan.types,
                notify,
            });
        }
        let written =
            writes::write(&mut tx, &to_write, settings.hold_seconds, settings.email).await?;
        drop(to_write);
        let Some(mut written) = written else {
            return Ok(Attempt::Lost);
        };
        for (index, plan) in plans {
            let (event_id, ops) = &events[index];
            settled[index] = Some(match written.remove(event_id) {
                Some(rows) => {
                    wrote = true;
                    Settled::Answered {
                        outcomes: plan::answers(&reads[event_id].event, ops, plan, rows),
                        found: true,
                    }
                }
                None => Settled::Lost,
            });
        }
    }
    let settled: Vec<Settled> = settled
        .into_iter()
        .map(|s| s.unwrap_or(Settled::Lost))
        .collect();
    finish(tx, events, settled, wrote).await
}

/// The transaction's first statements, sent with BEGIN in one round trip. The group's
/// statements are written for generic plans: left to choose, PostgreSQL planned the snapshot
/// read anew for every group (its cost depends on how many bookings the group names), which
/// cost more than running it. Every row they touch is found by a key, so an index is always
/// the right way in; but a generic plan made while a table was nearly empty (a new database on
/// the morning of its first sale) scans the table instead, and its connection keeps that plan
/// until an ANALYZE: a minute of a busy sale, each group scanning every booking. With
/// sequential scans off the plans are the same whatever the tables' sizes.
/// The advisory locks are taken in ascending event order (the array's), so two instances'
/// attempts over the same events never wait for each other in a cycle. The settings and the
/// first lock share one SELECT, the other events' locks (a batch of several events) one more:
/// a hot event's groups run one at a time, and each statement of a simple query is parsed and
/// planned anew (three statements with an `unnest` cost 20–30 µs more per group, pgbench).
fn setup(sorted_ids: &[i32], coordinate: bool) -> String {
    let mut setup = String::from(
        "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), \
         set_config('enable_seqscan', 'off', true)",
    );
    let Some((first, others)) = sorted_ids.split_first().filter(|_| coordinate) else {
        return setup;
    };
    setup.push_str(&format!(
        ", pg_advisory_xact_lock({EVENT_LOCK_SPACE}, {first})"
    ));
    if !others.is_empty() {
        let ids: Vec<String> = others.iter().map(i32::to_string).collect();
        setup.push_str(&format!(
            "; SELECT pg_advisory_xact_lock({EVENT_LOCK_SPACE}, id) \
             FROM unnest('{{{}}}'::integer[]) AS id",
            ids.join(",")
        ));
    }
    setup
}

/// Which of the users `ops` act for exist (read only when an event is missing).
async fn known_users(tx: &mut Transaction<'_, Postgres>, ops: &[&Op]) -> Result<Vec<i32>> {
    let users: Vec<i32> = ops.iter().filter_map(|op| op.user_id()).collect();
    Ok(
        sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)")
            .bind(&users)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Per operation, whether it may proceed: only bookings with a key can be stopped here, when
/// their claim is no longer held by their token (a retry took it over).
async fn lock_claims(tx: &mut Transaction<'_, Postgres>, ops: &[&Op]) -> Result<Vec<bool>> {
    let claims: Vec<(i32, &KeyClaim)> = ops.iter().filter_map(|op| op.key()).collect();
    let mut held = if claims.is_empty() {
        Vec::new()
    } else {
        idempotency::lock_held(tx, &claims).await?
    }
    .into_iter();
    Ok(ops
        .iter()
        .map(|op| op.key().is_none() || held.next().unwrap_or(false))
        .collect())
}

/// Records the outcome of every held key of the events that were settled, in the
/// transaction, and hands it over for COMMIT if it wrote anything.
async fn finish(
    mut tx: Tx,
    events: &[EventOps<'_>],
    settled: Vec<Settled>,
    wrote: bool,
) -> Result<Attempt<Prepared>> {
    let mut records = Vec::new();
    for ((_, ops), settled) in events.iter().zip(&settled) {
        let Settled::Answered { outcomes, .. } = settled else {
            continue;
        };
        for (op, outcome) in ops.iter().zip(outcomes) {
            let Some((user_id, key)) = op.key() else {
                continue;
            };
            let stored = match outcome {
                Ok(Done::Booked(booking)) => Some((StatusCode::CREATED, confirmed_body(booking))),
                Ok(_) => None,
                // A claim taken over is the other request's to record.
                Err(error) => error.client_body(),
            };
            if let Some((status, body)) = stored {
                records.push((user_id, key, status, body));
            }
        }
    }
    idempotency::record(&mut tx, &records).await?;
    let wrote = wrote || !records.is_empty();
    Ok(Attempt::Done(Prepared {
        tx: wrote.then_some(tx),
        events: settled,
    }))
}

#[cfg(test)]
mod tests {
    use super::setup;

    #[test]
    fn the_first_lock_joins_the_settings_and_the_others_follow_in_order() {
        let one = setup(&[3], true);
        assert!(
            one.starts_with("SELECT set_config('plan_cache_mode'"),
            "{one}"
        );
        assert!(one.ends_with(", pg_advisory_xact_lock(1, 3)"), "{one}");
        assert!(!one.contains(';'), "one statement: {one}");

        let batch = setup(&[3, 7, 12], true);
        let statements: Vec<&str> = batch.split("; ").collect();
        assert_eq!(statements[0], one);
        assert_eq!(
            statements[1..],
            ["SELECT pg_advisory_xact_lock(1, id) FROM unnest('{7,12}'::integer[]) AS id"]
        );

        assert!(!setup(&[3], false).contains("advisory"));
    }
}
