//! Background jobs: the policies users add (`add_retention_policy`) run on
//! their `schedule_interval` by a scheduler in the server, or at once with
//! `CALL run_job(id)`.
//!
//! ```text
//! scheduler tick (1 s) ─► jobs with scheduled && next_start <= now, one at a time
//!   run_job ─► its own task (a panic is a failed run, not a dead server),
//!              bounded by max_runtime
//!           ─► one catalog commit: the job's stats and next start, and the
//!              error for job_errors when it failed
//! next start: success → the next point of the schedule (fixed_schedule:
//!             initial_start + k * schedule_interval; else finish + interval);
//!             failure → retry_period doubled per consecutive failure, at most
//!             schedule_interval; past max_retries, the ordinary schedule
//! ```
//! Jobs, stats and errors live in the catalog, so they survive restarts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Months, Utc};
use tempora_catalog::{CatalogOp, JobDef, JobError, JobKind, JobSpan};
use tempora_common::{Result, SqlState, TemporaError};

use crate::Engine;

/// How often the scheduler looks for due jobs.
const TICK: Duration = Duration::from_secs(1);

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// `at - span` for a temporal span (months counted on the calendar).
pub fn before(at: i64, months: i32, days: i32, micros: i64) -> Result<i64> {
    let out_of_range =
        || TemporaError::new(SqlState::DATETIME_FIELD_OVERFLOW, "timestamp out of range");
    let t = DateTime::<Utc>::from_timestamp_micros(at).ok_or_else(out_of_range)?;
    let shifted = if months >= 0 {
        t.checked_sub_months(Months::new(months as u32))
    } else {
        t.checked_add_months(Months::new(months.unsigned_abs()))
    }
    .ok_or_else(out_of_range)?;
    shifted
        .timestamp_micros()
        .checked_sub(days as i64 * 86_400_000_000)
        .and_then(|v| v.checked_sub(micros))
        .ok_or_else(out_of_range)
}

/// When a job runs next after a run that ended at `finished`.
fn next_start(job: &JobDef, finished: i64, succeeded: bool) -> i64 {
    let interval = job.schedule_interval.max(1);
    if !succeeded {
        let failures = job.stats.consecutive_failures.max(1);
        let exhausted = job.max_retries >= 0 && failures > job.max_retries as i64;
        if !exhausted {
            let backoff = job
                .retry_period
                .max(1)
                .saturating_mul(1i64 << (failures - 1).min(30));
            return finished.saturating_add(backoff.min(interval));
        }
    }
    if job.fixed_schedule {
        // The first point of initial_start + k * interval after `finished`.
        let origin = job.initial_start.unwrap_or(job.next_start);
        let k = (finished - origin).div_euclid(interval) + 1;
        origin.saturating_add(k.saturating_mul(interval))
    } else {
        finished.saturating_add(interval)
    }
}

/// Runs what jobs need of the SQL layer: refreshing a continuous aggregate
/// plans its query, and the current time of an integer hypertable is what
/// its integer_now function (a SQL function) returns. The server installs
/// one with [`Engine::set_job_runner`].
pub trait JobRunner: Send + Sync {
    /// Refreshes the continuous aggregate of view `view_oid` over
    /// `[start, end)` (None: unbounded).
    fn refresh(
        &self,
        view_oid: u32,
        start: Option<i64>,
        end: Option<i64>,
    ) -> futures::future::BoxFuture<'static, Result<()>>;

    /// Calls the integer_now function `func` (schema, name).
    fn integer_now(
        &self,
        func: (String, String),
    ) -> futures::future::BoxFuture<'static, Result<i64>>;
}

impl Engine {
    /// Installs the runner of continuous aggregate refreshes (once).
    pub fn set_job_runner(&self, runner: Arc<dyn JobRunner>) {
        let _ = self.job_runner.set(runner);
    }

    /// Runs job `id` now and records the run; returns the run's error.
    pub async fn run_job(self: &Arc<Self>, id: u32) -> Result<()> {
        let _one_at_a_time = self.job_lock.lock().await;
        let job = self
            .catalog()
            .snapshot()
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| {
                TemporaError::new(SqlState::UNDEFINED_OBJECT, format!("job {id} not found"))
            })?;
        let started = now_micros();
        let engine = self.clone();
        let kind = job.kind.clone();
        let oid = job.oid;
        let work = tokio::spawn(async move { engine.execute_job(oid, &kind).await });
        let outcome = if job.max_runtime > 0 {
            match tokio::time::timeout(Duration::from_micros(job.max_runtime as u64), work).await {
                Ok(joined) => joined,
                Err(_) => Ok(Err(TemporaError::new(
                    SqlState::QUERY_CANCELED,
                    format!("job {id} exceeded its max_runtime"),
                ))),
            }
        } else {
            work.await
        };
        let result = match outcome {
            Ok(r) => r,
            Err(join) => Err(TemporaError::internal(format!("job {id} crashed: {join}"))),
        };
        let finished = now_micros();
        self.record_run(id, started, finished, &result).await?;
        match &result {
            Ok(()) => tracing::info!(job = id, ms = (finished - started) / 1000, "job ran"),
            Err(e) => tracing::warn!(job = id, error = %e, "job failed"),
        }
        result
    }

    async fn record_run(
        &self,
        id: u32,
        started: i64,
        finished: i64,
        result: &Result<()>,
    ) -> Result<()> {
        self.catalog()
            .commit(|state| {
                // Deleted while it ran: nothing to record.
                let Some(job) = state.jobs.get(&id) else {
                    return Ok(vec![]);
                };
                let mut job = job.clone();
                let s = &mut job.stats;
                s.last_run_started_at = Some(started);
                s.last_run_duration_us = Some(finished - started);
                s.total_runs += 1;
                let mut ops = Vec::new();
                match result {
                    Ok(()) => {
                        s.last_run_status = Some("Success".into());
                        s.last_successful_finish = Some(finished);
                        s.total_successes += 1;
                        s.consecutive_failures = 0;
                    }
                    Err(e) => {
                        s.last_run_status = Some("Failed".into());
                        s.total_failures += 1;
                        s.consecutive_failures += 1;
                        ops.push(CatalogOp::AddJobError(JobError {
                            job_id: id,
                            start_time: started,
                            finish_time: finished,
                            sqlerrcode: e.code.code().to_string(),
                            message: e.message.clone(),
                        }));
                    }
                }
                job.next_start = next_start(&job, finished, result.is_ok());
                ops.insert(0, CatalogOp::PutJob(job));
                Ok(ops)
            })
            .await
            .map(|_| ())
    }

    async fn execute_job(&self, oid: u32, kind: &JobKind) -> Result<()> {
        let state = self.catalog().snapshot();
        let table = state
            .table_by_oid(oid)
            .ok_or_else(|| TemporaError::undefined_table(format!("hypertable with oid {oid}")))?;
        // Integer time: now is what the hypertable's integer_now function
        // says, asked once per run.
        let spans: &[Option<&JobSpan>] = match kind {
            JobKind::Refresh {
                start_offset,
                end_offset,
            } => &[start_offset.as_ref(), end_offset.as_ref()],
            JobKind::Compression { compress_after, .. } => &[Some(compress_after)],
            JobKind::Retention { drop_after, .. } => &[Some(drop_after)],
        };
        let integer_now = if spans.iter().any(|s| matches!(s, Some(JobSpan::Integer(_)))) {
            // A continuous aggregate's offsets count in its raw table's time.
            let time_table = match state.cagg_of_materialization(oid) {
                Some(v) => v
                    .continuous
                    .as_ref()
                    .and_then(|c| state.table_by_oid(c.raw_oid))
                    .unwrap_or(table),
                None => table,
            };
            let func = time_table
                .hypertable
                .as_ref()
                .and_then(|h| h.integer_now_func.clone())
                .ok_or_else(|| {
                    TemporaError::new(
                        SqlState::UNDEFINED_FUNCTION,
                        format!(
                            "integer_now function not set for hypertable \"{}\"",
                            time_table.name
                        ),
                    )
                })?;
            let runner = self
                .job_runner
                .get()
                .cloned()
                .ok_or_else(|| TemporaError::internal("no runner for integer_now functions"))?;
            Some(runner.integer_now(func).await?)
        } else {
            None
        };
        // Chunks that end at or before `now - span` are the policy's.
        let cutoff = |span: &JobSpan| match span {
            JobSpan::Interval {
                months,
                days,
                micros,
            } => before(now_micros(), *months, *days, *micros),
            JobSpan::Integer(v) => integer_now
                .map(|now| now.saturating_sub(*v))
                .ok_or_else(|| TemporaError::internal("integer span without integer_now")),
        };
        // The chunks a policy acts on: those that end at or before the cutoff,
        // or (by creation time) were created before it.
        let chosen =
            |span: &JobSpan, by_creation: bool| -> Result<Vec<&tempora_catalog::ChunkDef>> {
                let cutoff = cutoff(span)?;
                Ok(table
                    .chunks
                    .values()
                    .filter(|c| {
                        if by_creation {
                            c.created_at.is_some_and(|t| t < cutoff)
                        } else {
                            c.range_end <= cutoff
                        }
                    })
                    .collect())
            };
        match kind {
            JobKind::Refresh {
                start_offset,
                end_offset,
            } => {
                let view = state.cagg_of_materialization(oid).ok_or_else(|| {
                    TemporaError::internal("refresh policy without its continuous aggregate")
                })?;
                let start = start_offset.as_ref().map(cutoff).transpose()?;
                let end = end_offset.as_ref().map(cutoff).transpose()?;
                let runner = self.job_runner.get().cloned().ok_or_else(|| {
                    TemporaError::internal("no runner for continuous aggregate refreshes")
                })?;
                runner.refresh(view.oid, start, end).await
            }
            JobKind::Compression {
                compress_after,
                by_creation,
            } => {
                if table.compression.is_none() {
                    return Err(crate::not_enabled(table));
                }
                let due: Vec<u32> = chosen(compress_after, *by_creation)?
                    .into_iter()
                    .filter(|c| !crate::fully_compressed(c))
                    .map(|c| c.id)
                    .collect();
                let mut compressed = 0;
                for id in due {
                    if self.compress_chunk(oid, id).await? {
                        compressed += 1;
                    }
                }
                if compressed > 0 {
                    tracing::info!(table = %table.name, chunks = compressed, "compression policy compressed chunks");
                }
                Ok(())
            }
            JobKind::Retention {
                drop_after,
                by_creation,
            } => {
                let doomed: Vec<u32> = chosen(drop_after, *by_creation)?
                    .into_iter()
                    .map(|c| c.id)
                    .collect();
                if !doomed.is_empty() {
                    let dropped = self.drop_chunks(oid, &doomed).await?;
                    tracing::info!(table = %table.name, chunks = dropped.len(), "retention dropped chunks");
                }
                Ok(())
            }
        }
    }

    /// Background loop: runs due jobs until shutdown.
    pub async fn run_scheduler(self: Arc<Self>, shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut shutdown = shutdown;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let now = now_micros();
            let due: Vec<u32> = self
                .catalog()
                .snapshot()
                .jobs
                .values()
                .filter(|j| j.scheduled && j.next_start <= now)
                .map(|j| j.id)
                .collect();
            for id in due {
                if *shutdown.borrow() {
                    return;
                }
                // The run's error is in job_stats / job_errors already.
                let _ = self.run_job(id).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempora_catalog::JobStats;

    fn job(fixed: bool, failures: i64, max_retries: i32) -> JobDef {
        JobDef {
            id: 1000,
            kind: JobKind::Retention {
                drop_after: JobSpan::Integer(1),
                by_creation: false,
            },
            oid: 1,
            schedule_interval: 100,
            max_runtime: 0,
            max_retries,
            retry_period: 10,
            scheduled: true,
            fixed_schedule: fixed,
            initial_start: Some(1000),
            next_start: 1000,
            timezone: None,
            stats: JobStats {
                consecutive_failures: failures,
                ..Default::default()
            },
        }
    }

    #[test]
    fn schedule_after_success_and_failure() {
        // Fixed schedule: the next point of 1000 + k * 100 after the finish.
        assert_eq!(next_start(&job(true, 0, -1), 1005, true), 1100);
        assert_eq!(next_start(&job(true, 0, -1), 1350, true), 1400);
        // Not fixed: the interval after the finish.
        assert_eq!(next_start(&job(false, 0, -1), 1005, true), 1105);
        // Failures back off from retry_period, doubling, capped at the interval.
        assert_eq!(next_start(&job(true, 1, -1), 1005, false), 1015);
        assert_eq!(next_start(&job(true, 3, -1), 1005, false), 1045);
        assert_eq!(next_start(&job(true, 10, -1), 1005, false), 1105);
        // Retries used up: back to the ordinary schedule.
        assert_eq!(next_start(&job(true, 3, 2), 1005, false), 1100);
    }

    #[test]
    fn calendar_spans() {
        let t = DateTime::parse_from_rfc3339("2024-03-31T12:00:00Z")
            .unwrap()
            .timestamp_micros();
        let feb = DateTime::parse_from_rfc3339("2024-02-29T12:00:00Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(before(t, 1, 0, 0).unwrap(), feb);
        assert_eq!(
            before(t, 0, 1, 3_600_000_000).unwrap(),
            t - 25 * 3_600_000_000
        );
    }
}
