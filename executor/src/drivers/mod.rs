//! Step drivers built into this release of cutover.

pub mod command;
pub mod pause;
pub mod postgres;
pub mod preflight;
