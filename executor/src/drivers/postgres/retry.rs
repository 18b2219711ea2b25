//! The lock-timeout backoff. Every statement runs under the spec's `lock_timeout`, so a busy
//! table fails it with SQLSTATE 55P03 instead of queueing the application's queries behind it;
//! rather than failing the release at the first busy moment, the statement is tried again, up
//! to [`LOCK_RETRIES`] attempts, waiting twice as long before each (PostgreSQL rolls back every
//! failed attempt). Migrations, undo statements, concurrent index builds and backfill batches
//! all retry through [`LockBackoff`].

use sqlx::postgres::PgConnection;
use std::time::Duration;

/// Attempts of a statement that hits `lock_timeout`.
pub(super) const LOCK_RETRIES: u32 = 6;

/// The wait before a DDL statement's second attempt (then 0.5 s, 1 s, 2 s, 4 s).
pub(super) const DDL_BACKOFF: Duration = Duration::from_millis(250);

/// Whether `e` is PostgreSQL's `lock_not_available` (55P03), what `lock_timeout` raises.
pub(super) fn is_lock_timeout(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03"))
}

/// The attempts of one statement: which one is under way, and how long to wait before the next.
pub(super) struct LockBackoff {
    delay: Duration,
    attempt: u32,
}

impl LockBackoff {
    /// The first attempt; the second waits `first_delay`, each later one twice as long.
    pub(super) fn new(first_delay: Duration) -> Self {
        Self {
            delay: first_delay,
            attempt: 1,
        }
    }

    /// The attempt under way (1 for the first); after [`LockBackoff::retry`] said no, how many
    /// attempts were made.
    pub(super) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// After an attempt failed with `e`: whether to try again. Yes (having waited the backoff)
    /// when `e` is a lock timeout and attempts are left; no for any other error.
    pub(super) async fn retry(&mut self, e: &sqlx::Error) -> bool {
        match self.next_wait(is_lock_timeout(e)) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                true
            }
            None => false,
        }
    }

    /// The wait before the next attempt after one failed (with a lock timeout or not), counting
    /// that attempt; `None`: no more attempts.
    fn next_wait(&mut self, lock_timeout: bool) -> Option<Duration> {
        if !lock_timeout || self.attempt >= LOCK_RETRIES {
            return None;
        }
        let wait = self.delay;
        self.delay *= 2;
        self.attempt += 1;
        Some(wait)
    }
}

/// Runs `sql` outside a transaction, retrying a lock timeout with exponential backoff.
pub(super) async fn exec_with_lock_retries(
    conn: &mut PgConnection,
    sql: &str,
) -> Result<(), sqlx::Error> {
    let mut backoff = LockBackoff::new(DDL_BACKOFF);
    loop {
        match sqlx::Executor::execute(&mut *conn, sql).await {
            Ok(_) => return Ok(()),
            Err(e) if backoff.retry(&e).await => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_timeout_is_tried_six_times_waiting_twice_as_long_each_time() {
        let mut backoff = LockBackoff::new(DDL_BACKOFF);
        let mut waits = Vec::new();
        while let Some(wait) = backoff.next_wait(true) {
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, [250, 500, 1000, 2000, 4000]);
        assert_eq!(backoff.attempt(), LOCK_RETRIES);
    }

    #[test]
    fn any_other_error_is_not_retried() {
        let mut backoff = LockBackoff::new(DDL_BACKOFF);
        assert_eq!(backoff.next_wait(false), None);
        assert_eq!(backoff.attempt(), 1);
        // After a lock timeout, a different error still ends the attempts, counted.
        assert!(backoff.next_wait(true).is_some());
        assert_eq!(backoff.next_wait(false), None);
        assert_eq!(backoff.attempt(), 2);
        assert!(!is_lock_timeout(&sqlx::Error::RowNotFound));
    }
}
