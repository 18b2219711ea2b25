//! cutover's executor: runs a [`cutover_planner::Plan`] step by step, writing every step to an
//! append-only event log so an interrupted release resumes where it stopped and a rollback undoes
//! exactly what was done.
//!
//! Not built yet: the event log, runner and step drivers (PostgreSQL, Docker, nginx, HAProxy,
//! commands) arrive with the executor issue. The crate exists now so the workspace has its final
//! shape and the planner's `Plan` has its consumer's name.
#![warn(missing_docs)]
