//! The `cutover` command line: argument parsing, output formats and exit codes.
//!
//! The planner and executor crates do the work; this crate only turns arguments into calls,
//! their results into text, JSON or Markdown, and failures into one [`error::Error`] that owns
//! the documented exit codes ([`exit`]) and how a failure is printed.
#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod error;
pub mod exec;
pub mod exit;
pub mod live;
pub mod progress;
pub mod saved;
