//! cutover's planner: reads a release spec and its SQL migrations and builds the release DAG.
//!
//! The crate is pure: no async, no network, no processes. It reads files (the spec and the
//! migrations) and returns values: a [`Plan`] that `cutover plan`, `cutover apply --dry-run` and
//! `cutover apply` all consume, or a [`PlanError`] whose diagnostics name the file, line and key.
//!
//! - [`spec`]: the release spec (`plans/*.toml`).
//! - [`migrations`]: reading `V{n}__{name}.sql` files.
//! - [`analysis`]: classifying statements as expand, contract or breaking; findings.
//! - [`rewrite`]: the expand/backfill/contract rewrite of breaking statements.
//! - [`types`]: which column type changes PostgreSQL makes without a rewrite.
//! - [`dag`]: the step graph and its invariants; [`plan`]: putting it together.
//! - [`render`]: text, JSON, Markdown, Mermaid and DOT views of a plan or a lint run.
#![warn(missing_docs)]

pub mod analysis;
pub mod dag;
pub mod duration;
pub mod error;
mod learn;
pub mod lint;
pub mod migrations;
pub mod plan;
pub mod render;
pub mod rewrite;
pub mod schema;
pub mod source;
pub mod spec;
pub mod types;

pub use dag::{Plan, Step, StepKind};
pub use error::{Diagnostic, PlanError};
pub use plan::{Planned, plan_file, plan_release};
