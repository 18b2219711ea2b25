//! The rollback, [`Session::rollback`]: undoes the succeeded steps newest first with their
//! recorded undo data ([`rollback_order`], [`compensation`]), logging each compensation so an
//! interrupted rollback continues where it stopped; stops at a pivot, or restores a database
//! from this run's backup past one when the operator asked for that.

use super::{ForwardResult, RunOptions, Session};
use crate::driver::{Drivers, StepError};
use crate::error::{ExecError, StepFailure};
use crate::event::{Event, Outcome};
use crate::resume::Purpose;
use crate::scheduler::{Compensation, compensation, rollback_order};
use crate::state::RunState;
use cutover_planner::dag::{Step, StepKind};
use serde_json::Value;

impl Session {
    /// Starts (or continues) a rollback to `target`.
    pub async fn rollback(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        target: Option<String>,
        reason: &str,
    ) -> Result<ForwardResult, ExecError> {
        check_rollback_target(&self.state, target.as_deref())?;
        match &self.state.rollback {
            Some(_) => {}
            None => {
                self.emit(Event::RollbackStarted {
                    target: target.clone(),
                    reason: reason.into(),
                })
                .await?;
            }
        }
        let target = self.state.rollback.clone().flatten();
        self.compensate(drivers, opts, target).await
    }

    /// Undoes the succeeded steps newest first, down to `target`, as
    /// [`compensation`] decides for each; stops at a pivot (unless `restore_backup` restores the
    /// database instead) or at an undo that fails. Steps in doubt are settled first
    /// ([`Purpose::Rollback`]): one that may or may not have had its effect is found out about
    /// before anything is undone.
    pub(super) async fn compensate(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        target: Option<String>,
    ) -> Result<ForwardResult, ExecError> {
        self.settle(drivers, opts, Purpose::Rollback, &[]).await?;
        // Databases put back to their backup by this rollback: their remaining migration and
        // backfill steps are undone by the restore itself.
        let mut restored: Vec<String> = Vec::new();
        for id in rollback_order(&self.state, target.as_deref()) {
            let step = self.planned(&id)?;
            let undone = match compensation(&step, &restored, opts.restore_backup) {
                Compensation::UndoneByRestore { database } => {
                    self.emit(Event::CompensationStarted { step: id.clone() })
                        .await?;
                    self.notice(&format!("{id}: undone by the restore of `{database}`"));
                    self.emit(Event::CompensationSucceeded { step: id }).await?;
                    continue;
                }
                Compensation::RestoreBackup => {
                    self.restore_database(drivers, opts, &step, &mut restored)
                        .await?
                }
                Compensation::Pivot => Err((
                    id.clone(),
                    format!("`{id}` cannot be undone: {}", step.undo),
                )),
                Compensation::Undo => self.undo_step(drivers, opts, &step).await?,
            };
            if let Err((step, reason)) = undone {
                // Where and why, in the log: `status` tells it after the fact.
                self.emit(Event::RollbackStopped {
                    step: step.clone(),
                    reason: reason.clone(),
                })
                .await?;
                let stopped_at = (step, reason);
                return self
                    .finish(Outcome::RollbackStopped, None, Some(stopped_at))
                    .await;
            }
        }
        self.finish(Outcome::RolledBack, None, None).await
    }

    /// Undoes one step with its recorded undo data. `Ok(Err((step, why)))`: the undo failed
    /// (recorded), and the rollback stops there.
    async fn undo_step(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        step: &Step,
    ) -> Result<Result<(), (String, String)>, ExecError> {
        let id = step.id.clone();
        let undo = self.state.steps[&id].undo.clone().unwrap_or(Value::Null);
        self.emit(Event::CompensationStarted { step: id.clone() })
            .await?;
        let result = if self.state.dry_run {
            Ok(())
        } else {
            match drivers.get(step.kind()) {
                Some(d) => d.undo(step, undo, opts.ctx.clone()).await,
                None => Err(StepError::NoDriver {
                    kind: step.kind().as_str(),
                }),
            }
        };
        self.compensated(id, result, opts).await
    }

    /// Past an irreversible migration, with `--restore-backup`: restores its database from the
    /// backup this run took. `Ok(Err((step, why)))`: no backup, or the restore failed; the
    /// rollback stops there.
    async fn restore_database(
        &mut self,
        drivers: &Drivers,
        opts: &RunOptions,
        step: &Step,
        restored: &mut Vec<String>,
    ) -> Result<Result<(), (String, String)>, ExecError> {
        let id = step.id.clone();
        let db = step
            .database()
            .expect("migrate steps name their database")
            .to_string();
        let Some(backup) = self.backup_of(&db) else {
            let why =
                format!("`{id}` cannot be undone and no backup of `{db}` was taken in this run");
            self.notice(&format!("rollback stops: {why}"));
            return Ok(Err((id, why)));
        };
        let backup_step = self.planned(&backup)?;
        let undo = self.state.steps[&backup]
            .undo
            .clone()
            .unwrap_or(Value::Null);
        self.emit(Event::CompensationStarted { step: id.clone() })
            .await?;
        let result = if self.state.dry_run {
            Ok(format!("dry run: would restore {backup}"))
        } else {
            match drivers.get(StepKind::Backup) {
                Some(d) => d.restore(&backup_step, undo, opts.ctx.clone()).await,
                None => Err(StepError::NoDriver { kind: "backup" }),
            }
        };
        if let Ok(detail) = &result {
            self.emit(Event::BackupRestored {
                step: id.clone(),
                database: db.clone(),
                backup: backup.clone(),
                detail: opts.ctx.redactor.redact(detail),
            })
            .await?;
        }
        let done = self.compensated(id, result.map(drop), opts).await?;
        if done.is_ok() {
            restored.push(db);
        }
        Ok(done)
    }

    /// The backup step of this run that succeeded for database `db`, with undo data (its dump).
    fn backup_of(&self, db: &str) -> Option<String> {
        self.state
            .completed
            .iter()
            .find(|b| {
                self.plan
                    .step(b)
                    .is_some_and(|s| s.kind() == StepKind::Backup && s.database() == Some(db))
                    && self.state.steps[*b]
                        .undo
                        .as_ref()
                        .is_some_and(|u| !u.is_null())
            })
            .cloned()
    }

    /// Records how the compensation of `id` ended. `Ok(Err((step, why)))` when it failed, which
    /// stops the rollback.
    async fn compensated(
        &mut self,
        id: String,
        result: Result<(), StepError>,
        opts: &RunOptions,
    ) -> Result<Result<(), (String, String)>, ExecError> {
        match result {
            Ok(()) => {
                self.crash_point(&id);
                self.emit(Event::CompensationSucceeded { step: id }).await?;
                Ok(Ok(()))
            }
            Err(e) => {
                let error = StepFailure::new(&e, &opts.ctx.redactor)
                    .as_str()
                    .to_string();
                self.emit(Event::CompensationFailed {
                    step: id.clone(),
                    error: error.clone(),
                })
                .await?;
                Ok(Err((id, error)))
            }
        }
    }
}

/// Refuses `rollback --to target` for `state` before anything is written: the step must have
/// succeeded in this run, and a rollback already under way to another target finishes first.
/// `rollback --dry-run` and the real rollback check the same way.
///
/// Errors: [`ExecError::NotSucceeded`], [`ExecError::RollbackUnderWay`].
pub fn check_rollback_target(state: &RunState, target: Option<&str>) -> Result<(), ExecError> {
    let Some(t) = target else { return Ok(()) };
    if !state.completed.iter().any(|c| c == t) {
        return Err(ExecError::NotSucceeded { target: t.into() });
    }
    match &state.rollback {
        Some(existing) if existing.as_deref() != Some(t) => Err(ExecError::RollbackUnderWay {
            under_way: existing.clone(),
        }),
        _ => Ok(()),
    }
}
