//! The `cutover` command line: argument parsing, output formats and exit codes.
//!
//! The planner and executor crates do the work; this crate only turns arguments into calls,
//! their results into text, JSON or Markdown, and failures into the documented exit codes
//! ([`exit`]).
#![warn(missing_docs)]

pub mod cli;
pub mod exec;
pub mod exit;
pub mod progress;
