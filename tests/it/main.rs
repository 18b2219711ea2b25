//! CLI tests: one binary, split into modules (cargo builds it once).

mod bad_input;
mod column_types;
mod common;
mod data_changes;
mod demo;
mod e2e;
mod executor;
mod in_doubt;
mod lint_cli;
mod pg;
mod plan_cli;
mod postgres_steps;
mod project_config;
mod routers;
mod schemas;
mod stack;
mod state_errors;
mod transcripts;
mod type_change;
