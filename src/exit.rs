//! Exit codes, documented in the README. `plan` and `lint` follow `terraform plan
//! -detailed-exitcode` in spirit: CI can tell "bad input" from "the migrations have problems".

/// Everything worked and no finding has `error` severity.
pub const OK: u8 = 0;
/// Bad input (malformed spec, unreadable or misnamed migrations, a statement that cannot be
/// placed in a phase, bad arguments) or an internal error. Nothing was planned.
pub const INPUT: u8 = 1;
/// The plan or lint run succeeded, but at least one finding has `error` severity.
pub const FINDINGS: u8 = 2;
/// `apply`/`resume`: a step failed; the release was rolled back (or paused, by policy).
pub const RELEASE_FAILED: u8 = 3;
/// A rollback stopped before it finished: at a pivot (an irreversible step) or because undoing a
/// step failed. `cutover status RUN` shows where.
pub const ROLLBACK_STOPPED: u8 = 4;
/// `apply`/`resume`/`promote`: the run waits at a manual gate or at its hold before the point of
/// no return, for `cutover promote RUN` (or `cutover abort RUN`). Nothing failed.
pub const AWAITING_PROMOTION: u8 = 5;
/// Stopped by SIGINT/SIGTERM; the run is resumable.
pub const INTERRUPTED: u8 = 130;
