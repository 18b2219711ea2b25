//! cutover's executor: runs a [`cutover_planner::Plan`] step by step, writing every step to an
//! append-only event log so an interrupted release resumes where it stopped and a rollback undoes
//! exactly what was done, in reverse.
//!
//! - [`log`]: the framed, checksum-chained event log and its recovery.
//! - [`event`]: the one event type every view is built from; [`state`] replays it.
//! - [`runner`]: the coordinator that runs, resumes and rolls back, carrying out what
//!   [`scheduler`] decides (pure: no I/O); [`resume`]: the rules for a run that stopped and its
//!   steps in doubt; [`driver`]: the step trait; [`drivers`]: the built-in drivers.
//! - [`store`]: run directories and the run lock; [`pglog`]: the PostgreSQL log backend;
//!   [`sink`]: either one behind one append; [`redact`]: keeping secrets out.
//! - [`session`]: opening a run for `apply`, `resume` and `rollback`, and checking it can go on.
#![warn(missing_docs)]

pub mod before;
pub mod driver;
pub mod drivers;
pub mod error;
pub mod event;
pub mod log;
pub mod pglog;
pub mod procfs;
pub mod redact;
pub mod report;
pub mod resume;
pub mod router;
pub mod runner;
pub mod runtime;
pub mod scheduler;
pub mod session;
pub mod sink;
pub mod state;
pub mod store;

pub use error::{ExecError, StepError};
