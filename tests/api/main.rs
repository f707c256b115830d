//! The one integration-test binary: the real router over HTTP against a real PostgreSQL.

mod auth;
mod bookings;
mod door;
mod errors;
mod events;
mod group_commit;
mod helpers;
mod holds;
mod idempotency;
mod insight;
mod limits;
mod live;
mod never_twice;
mod notify;
mod ops;
mod outage;
mod qr;
mod races;
mod read_cache;
mod replica;
mod search;
mod seed;
mod ticket_types;
mod tickets;
