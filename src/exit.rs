//! Exit codes, documented in the README. `plan` and `lint` follow `terraform plan
//! -detailed-exitcode` in spirit: CI can tell "bad input" from "the migrations have problems".

/// Everything worked and no finding has `error` severity.
pub const OK: u8 = 0;
/// Bad input (malformed spec, unreadable or misnamed migrations, a statement that cannot be
/// placed in a phase, bad arguments) or an internal error. Nothing was planned.
pub const INPUT: u8 = 1;
/// The plan or lint run succeeded, but at least one finding has `error` severity.
pub const FINDINGS: u8 = 2;
