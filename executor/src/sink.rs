//! [`Sink`]: where a session's events go: the file log (with its flock) or PostgreSQL (with its
//! advisory lock). Both give the same guarantees: durable before returning, chained checksums,
//! secrets redacted, one writer at a time.

use crate::error::ExecError;
use crate::event::{Event, Record};
use crate::log::LogWriter;
use crate::pglog::PgRun;
use crate::redact::Redactor;
use crate::store::RunLock;

/// The event sink of an attached session.
pub enum Sink {
    /// `events.log` in the run directory, and the run's file lock.
    File {
        /// The log.
        writer: LogWriter,
        /// Held while the session lives.
        lock: RunLock,
    },
    /// A PostgreSQL connection holding the run's advisory lock.
    Postgres(PgRun),
}

impl Sink {
    /// Appends `event` durably.
    pub async fn append(&mut self, event: Event) -> Result<Record, ExecError> {
        match self {
            Sink::File { writer, .. } => writer
                .append(event)
                .map_err(|e| ExecError::file("append an event to the event log", writer.path(), e)),
            Sink::Postgres(run) => run.append(event).await,
        }
    }

    /// Redacts secrets from every record written from now on.
    pub fn set_redactor(&mut self, redactor: Redactor) {
        match self {
            Sink::File { writer, .. } => writer.set_redactor(redactor),
            Sink::Postgres(run) => run.set_redactor(redactor),
        }
    }

    /// Where the events go, for messages.
    pub fn describe(&self) -> String {
        match self {
            Sink::File { writer, .. } => writer.path().display().to_string(),
            Sink::Postgres(run) => format!("PostgreSQL log, run {}", run.run_id()),
        }
    }
}
