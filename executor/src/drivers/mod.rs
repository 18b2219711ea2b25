//! Step drivers built into this release of cutover.

pub mod command;
pub mod containers;
pub mod pause;
pub mod pgerror;
pub mod pgstmt;
pub mod pgurl;
pub mod postgres;
pub mod preflight;
pub mod traffic;
