//! Policies and jobs as TimescaleDB's SQL sets them up:
//! `add_retention_policy`, `remove_retention_policy`, `alter_job`,
//! `delete_job`, `CALL run_job(id)`, `add_compression_policy`,
//! `remove_compression_policy`. The jobs run in the server's scheduler
//! (tempora-storage/src/jobs.rs).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Statement};
use tempora_catalog::{CatalogOp, CatalogState, JobDef, JobKind, JobSpan, TableDef};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{CommandCall, CommandOutput, Notice, Outcome, SqlSession};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const MINUTE: i64 = 60_000_000;

/// The job functions this module answers.
pub(crate) fn is_job_function(name: &str) -> bool {
    matches!(
        name,
        "add_retention_policy"
            | "remove_retention_policy"
            | "add_compression_policy"
            | "remove_compression_policy"
            | "alter_job"
            | "delete_job"
            | "add_continuous_aggregate_policy"
            | "remove_continuous_aggregate_policy"
    )
}

/// A planned job function call.
#[derive(Debug, Clone)]
pub struct JobCall {
    name: String,
    args: Vec<(Option<String>, SqlExpr)>,
    output: CommandOutput,
}

/// Arguments by name, positional ones named by the function's signature.
struct Args {
    values: Vec<(String, ScalarValue)>,
}

impl Args {
    async fn read(
        session: &SqlSession,
        function: &str,
        positional: &[&str],
        args: &[(Option<String>, SqlExpr)],
    ) -> Result<Self> {
        let mut values = Vec::new();
        for (i, (name, expr)) in args.iter().enumerate() {
            let key = match name {
                Some(n) => n.clone(),
                None => positional
                    .get(i)
                    .ok_or_else(|| {
                        TemporaError::new(
                            SqlState::UNDEFINED_FUNCTION,
                            format!(
                                "function {function} takes at most {} positional arguments",
                                positional.len()
                            ),
                        )
                    })?
                    .to_string(),
            };
            values.push((key, session.eval_constant(expr).await?));
        }
        Ok(Self { values })
    }

    fn get(&self, key: &str) -> Option<&ScalarValue> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    fn reject_others(&self, function: &str, known: &[&str]) -> Result<()> {
        match self
            .values
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((k, _)) => Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                format!("function {function} has no parameter named \"{k}\""),
            )),
            None => Ok(()),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(ScalarValue::Boolean(b)) => Ok(*b),
            Some(other) => Err(TemporaError::new(
                SqlState::DATATYPE_MISMATCH,
                format!("{key} must be boolean, not {}", other.data_type()),
            )),
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        match self.get(key) {
            Some(ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s)) => {
                s.clone()
            }
            _ => None,
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>> {
        Ok(match self.get(key) {
            None => None,
            Some(ScalarValue::Int16(v)) => v.map(i64::from),
            Some(ScalarValue::Int32(v)) => v.map(i64::from),
            Some(ScalarValue::Int64(v)) => *v,
            Some(other) => {
                return Err(TemporaError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!("{key} must be an integer, not {}", other.data_type()),
                ))
            }
        })
    }

    /// A fixed-length interval in microseconds (no months).
    fn micros(&self, key: &str) -> Result<Option<i64>> {
        Ok(match self.get(key) {
            None => None,
            Some(v) => match interval_parts(v) {
                Some((0, days, micros)) => Some(days as i64 * DAY + micros),
                Some(_) => {
                    return Err(TemporaError::new(
                        SqlState::INVALID_PARAMETER_VALUE,
                        format!("{key} must not have months"),
                    ))
                }
                None => {
                    return Err(TemporaError::new(
                        SqlState::DATATYPE_MISMATCH,
                        format!("{key} must be an interval"),
                    ))
                }
            },
        })
    }

    /// A new policy's `schedule_interval` in microseconds, `default` when not given.
    fn schedule_interval(&self, default: i64) -> Result<i64> {
        let v = self.micros("schedule_interval")?.unwrap_or(default);
        if v <= 0 {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "schedule_interval must be positive",
            ));
        }
        Ok(v)
    }

    /// A time in microseconds since the epoch.
    fn time(&self, key: &str) -> Result<Option<i64>> {
        Ok(match self.get(key) {
            None => None,
            Some(
                v @ (ScalarValue::TimestampMicrosecond(..)
                | ScalarValue::TimestampNanosecond(..)
                | ScalarValue::TimestampMillisecond(..)
                | ScalarValue::TimestampSecond(..)),
            ) => tempora_query::chunks::scalar_units(v),
            Some(ScalarValue::Utf8(Some(s))) => Some(tempora_query::pg_literals::parse_timestamp(
                s,
                true,
                &tempora_copy::zone::PgTimeZone::utc(),
            )?),
            Some(other) => {
                return Err(TemporaError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!(
                        "{key} must be a timestamp with time zone, not {}",
                        other.data_type()
                    ),
                ))
            }
        })
    }
}

/// A policy given both or neither of its two ways to say which chunks it
/// acts on, in TimescaleDB's words.
fn one_of(age: &str, created: &str) -> TemporaError {
    TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!("need to specify one of \"{age}\" or \"{created}\""),
    )
}

/// A policy's span from an interval value; None for other types.
fn interval_span(v: &ScalarValue) -> Option<JobSpan> {
    interval_parts(v).map(|(months, days, micros)| JobSpan::Interval {
        months,
        days,
        micros,
    })
}

pub(crate) fn interval_parts(v: &ScalarValue) -> Option<(i32, i32, i64)> {
    match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) => {
            Some((i.months, i.days, i.nanoseconds / 1000))
        }
        ScalarValue::IntervalDayTime(Some(i)) => Some((0, i.days, i.milliseconds as i64 * 1000)),
        ScalarValue::IntervalYearMonth(Some(m)) => Some((*m, 0, 0)),
        _ => None,
    }
}

impl Args {
    /// The hypertable named by argument `key`.
    fn hypertable<'a>(&self, key: &str, state: &'a CatalogState) -> Result<&'a TableDef> {
        let rel = self.text(key).ok_or_else(|| {
            TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, "invalid hypertable")
        })?;
        tempora_query::hypertable_named(state, &rel).map(|(t, _)| t)
    }
}

/// A hypertable's name in messages: a continuous aggregate's for its
/// materialization.
fn shown_name<'a>(state: &'a CatalogState, table: &'a TableDef) -> &'a str {
    state
        .cagg_of_materialization(table.oid)
        .map_or(table.name.as_str(), |v| v.name.as_str())
}

/// The continuous aggregate a refresh policy call names (`code` for a
/// relation that is not one).
fn refresh_target<'a>(
    args: &Args,
    state: &'a CatalogState,
    code: SqlState,
) -> Result<(
    &'a tempora_catalog::ViewDef,
    &'a tempora_catalog::ContinuousAgg,
)> {
    let rel = args.text("continuous_aggregate").ok_or_else(|| {
        TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "invalid continuous aggregate",
        )
    })?;
    crate::caggs::cagg_named(state, &rel).map_err(|e| {
        if e.code == SqlState::INVALID_PARAMETER_VALUE {
            let (_, name) = tempora_query::split_qualified(&rel);
            TemporaError::new(code, format!("\"{name}\" is not a continuous aggregate"))
        } else {
            e
        }
    })
}

/// When a new job runs.
struct JobTiming {
    schedule_interval: i64,
    max_runtime: i64,
    retry_period: i64,
    initial_start: Option<i64>,
    fixed_schedule: bool,
    timezone: Option<String>,
}

/// Whether an integer hypertable has an integer_now function
/// (`set_integer_now_func`), which its policies count time by.
fn has_integer_now(table: &TableDef) -> bool {
    table
        .hypertable
        .as_ref()
        .is_some_and(|h| h.integer_now_func.is_some())
}

/// PostgreSQL's name of the type of a hypertable's time column.
fn time_type_name(table: &TableDef) -> String {
    table
        .hypertable
        .as_ref()
        .and_then(|h| table.column(&h.time_column))
        .map_or_else(|| "bigint".into(), |c| c.ty.sql_name())
}

/// Whether a hypertable's time column is a date/time type (not an integer).
fn is_temporal(table: &TableDef) -> bool {
    table
        .hypertable
        .as_ref()
        .and_then(|h| table.column(&h.time_column))
        .is_some_and(|c| c.ty.is_temporal())
}

/// `alter_job(id, config => ...)`: the policy a job's new jsonb config
/// describes, with the keys TimescaleDB's policies read (those
/// `timescaledb_information.jobs` shows). The config names the job's own
/// hypertable; offsets are interval text (integers for integer time).
async fn policy_from_config(
    session: &SqlSession,
    state: &CatalogState,
    job: &JobDef,
    text: &str,
) -> Result<JobKind> {
    let invalid = |message: String| TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, message);
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        TemporaError::new(
            SqlState::INVALID_TEXT_REPRESENTATION,
            format!("invalid input syntax for type json: {e}"),
        )
    })?;
    let serde_json::Value::Object(config) = value else {
        return Err(invalid("job config must be a JSON object".into()));
    };
    let (id_key, keys): (&str, &[&'static str]) = match job.kind {
        JobKind::Retention { .. } => ("hypertable_id", &["drop_after", "drop_created_before"]),
        JobKind::Compression { .. } => (
            "hypertable_id",
            &["compress_after", "compress_created_before"],
        ),
        JobKind::Refresh { .. } => ("mat_hypertable_id", &["start_offset", "end_offset"]),
    };
    // The new config replaces the old one whole: it names its hypertable.
    let Some(given) = config.get(id_key) else {
        let key = if matches!(job.kind, JobKind::Refresh { .. }) {
            format!("\"{id_key}\"")
        } else {
            id_key.to_string()
        };
        return Err(TemporaError::new(
            SqlState::SQL_JSON_MEMBER_NOT_FOUND,
            format!("could not find {key} in config for job"),
        ));
    };
    let table = state
        .table_by_oid(job.oid)
        .ok_or_else(|| TemporaError::internal("job without its table"))?;
    let hypertable_id = table.hypertable.as_ref().map_or(0, |h| h.id);
    if given.as_u64() != Some(hypertable_id as u64) {
        let exists = given
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .is_some_and(|id| state.hypertable_by_id(id).is_some());
        return Err(match (&job.kind, exists) {
            (_, true) => invalid(format!(
                "{id_key} in the config of job {} must stay {hypertable_id}",
                job.id
            )),
            (JobKind::Refresh { .. }, false) => {
                invalid(format!("invalid materialized hypertable ID: {given}"))
            }
            (_, false) => TemporaError::new(
                SqlState::TS_HYPERTABLE_NOT_EXIST,
                format!("hypertable with id {given} does not exist"),
            ),
        });
    }
    if let Some(key) = config
        .keys()
        .find(|k| k.as_str() != id_key && !keys.contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "unrecognized key \"{key}\" in the config of job {}",
            job.id
        )));
    }
    let cagg = match job.kind {
        JobKind::Refresh { .. } => Some(refreshed_cagg(state, job)?),
        _ => None,
    };
    let temporal = match cagg {
        Some(cagg) => tempora_query::caggs::raw_time_type(state, cagg)?.is_temporal(),
        None => is_temporal(table),
    };
    // Creation-time cutoffs are intervals whatever the time column's type.
    let interval = |key: &'static str| {
        let temporal = temporal || key.ends_with("_created_before");
        config_span(session, &config, key, temporal, job.id)
    };
    let one_of = |after: Option<JobSpan>, created: Option<JobSpan>| match (after, created) {
        (Some(span), None) => Ok((span, false)),
        (None, Some(span)) => Ok((span, true)),
        _ => Err(invalid(format!(
            "the config of job {} needs one of \"{}\" or \"{}\"",
            job.id, keys[0], keys[1]
        ))),
    };
    Ok(match job.kind {
        JobKind::Retention { .. } => {
            let (drop_after, by_creation) =
                one_of(interval(keys[0]).await?, interval(keys[1]).await?)?;
            JobKind::Retention {
                drop_after,
                by_creation,
            }
        }
        JobKind::Compression { .. } => {
            let (compress_after, by_creation) =
                one_of(interval(keys[0]).await?, interval(keys[1]).await?)?;
            JobKind::Compression {
                compress_after,
                by_creation,
            }
        }
        JobKind::Refresh { .. } => {
            let start_offset = interval(keys[0]).await?;
            let end_offset = interval(keys[1]).await?;
            let cagg =
                cagg.ok_or_else(|| TemporaError::internal("refresh job without aggregate"))?;
            check_refresh_window(state, cagg, &start_offset, &end_offset)?;
            JobKind::Refresh {
                start_offset,
                end_offset,
            }
        }
    })
}

/// One offset of a job's config: interval text for temporal time, an
/// integer otherwise; None when absent or null.
async fn config_span(
    session: &SqlSession,
    config: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    temporal: bool,
    job_id: u32,
) -> Result<Option<JobSpan>> {
    let bad = || {
        TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("invalid value for {key} in the config of job {job_id}"),
        )
    };
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if temporal => {
            let literal = s.replace('\'', "''");
            // Text that is no interval gets the interval input's error.
            let v = session
                .eval_sql(&format!("CAST('{literal}' AS INTERVAL)"))
                .await?;
            interval_span(&v).map(Some).ok_or_else(bad)
        }
        Some(serde_json::Value::Number(n)) if !temporal => n
            .as_i64()
            .map(|v| Some(JobSpan::Integer(v)))
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// The continuous aggregate a refresh job materializes.
fn refreshed_cagg<'a>(
    state: &'a CatalogState,
    job: &JobDef,
) -> Result<&'a tempora_catalog::ContinuousAgg> {
    state
        .cagg_of_materialization(job.oid)
        .and_then(|v| v.continuous.as_ref())
        .ok_or_else(|| TemporaError::internal("refresh job without its continuous aggregate"))
}

/// A refresh policy's window must hold two buckets (a month counted as 30 days).
fn check_refresh_window(
    state: &CatalogState,
    cagg: &tempora_catalog::ContinuousAgg,
    start_offset: &Option<JobSpan>,
    end_offset: &Option<JobSpan>,
) -> Result<()> {
    let width = cagg.bucket_width.approx_length();
    let start = start_offset
        .as_ref()
        .map_or(i64::MAX, JobSpan::approx_length);
    let end = end_offset.as_ref().map_or(i64::MIN, JobSpan::approx_length);
    if end.saturating_add(width.saturating_mul(2)) > start {
        let time_type = tempora_query::caggs::raw_time_type(state, cagg)?;
        return Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            "policy refresh window too small",
        )
        .with_detail(format!(
            "The start and end offsets must cover at least two buckets in the valid time range of type \"{}\".",
            time_type.sql_name()
        )));
    }
    Ok(())
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl JobCall {
    pub(crate) fn from_call(call: CommandCall) -> Self {
        let ty = match call.name.as_str() {
            "add_retention_policy"
            | "add_compression_policy"
            | "add_continuous_aggregate_policy" => DataType::Int32,
            "remove_compression_policy" => DataType::Boolean,
            _ => DataType::Utf8,
        };
        Self {
            output: CommandOutput::new(Field::new(&call.name, ty, true), call.select),
            name: call.name,
            args: call.args,
        }
    }

    pub async fn result_schema(&self) -> Result<SchemaRef> {
        self.output.schema().await
    }

    async fn rows(&self, value: ArrayRef, notices: Vec<Notice>) -> Result<(Outcome, Vec<Notice>)> {
        self.output.rows(value, notices).await
    }

    /// An `add_*_policy(..., if_not_exists => true)` that finds its policy
    /// there: -1, and `message` as a NOTICE.
    async fn skipped(&self, message: &str) -> Result<(Outcome, Vec<Notice>)> {
        self.rows(
            Arc::new(Int32Array::from(vec![-1])),
            vec![Notice::info(
                SqlState::DUPLICATE_OBJECT,
                format!("{message}, skipping"),
            )],
        )
        .await
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        match self.name.as_str() {
            "add_retention_policy" => self.add_retention_policy(session).await,
            "remove_retention_policy" => self.remove_retention_policy(session).await,
            "add_compression_policy" => self.add_compression_policy(session).await,
            "remove_compression_policy" => self.remove_compression_policy(session).await,
            "alter_job" => self.alter_job(session).await,
            "delete_job" => self.delete_job(session).await,
            "add_continuous_aggregate_policy" => self.add_refresh_policy(session).await,
            "remove_continuous_aggregate_policy" => self.remove_refresh_policy(session).await,
            other => Err(TemporaError::internal(format!(
                "{other} is not a job function"
            ))),
        }
    }

    async fn add_retention_policy(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        const PARAMS: [&str; 7] = [
            "relation",
            "drop_after",
            "schedule_interval",
            "if_not_exists",
            "drop_created_before",
            "initial_start",
            "timezone",
        ];
        let args = Args::read(session, &self.name, &PARAMS[..4], &self.args).await?;
        args.reject_others(&self.name, &PARAMS)?;
        let engine = session.engine();
        let state = engine.catalog().snapshot();
        let table = args.hypertable("relation", &state)?;
        let oid = table.oid;
        let if_not_exists = args.bool("if_not_exists")?.unwrap_or(false);
        if args.get("drop_after").is_some() == args.get("drop_created_before").is_some() {
            return Err(one_of("drop_after", "drop_created_before"));
        }
        if state
            .jobs
            .values()
            .any(|j| j.oid == oid && matches!(j.kind, JobKind::Retention { .. }))
        {
            let message = format!(
                "retention policy already exists for hypertable \"{}\"",
                shown_name(&state, table)
            );
            if if_not_exists {
                return self.skipped(&message).await;
            }
            return Err(TemporaError::new(SqlState::DUPLICATE_OBJECT, message));
        }
        if let Some(v) = args.get("drop_created_before") {
            let Some(span) = interval_span(v) else {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "invalid value for parameter drop_created_before",
                ));
            };
            return self.add_retention(session, &args, oid, span, true).await;
        }
        let bad = || {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid value for parameter drop_after",
            )
        };
        // Integer time counts from what its integer_now function says: a
        // table without one takes no drop_after, as in TimescaleDB.
        let drop_after = if is_temporal(table) {
            args.get("drop_after").and_then(interval_span)
        } else if has_integer_now(table) {
            args.int("drop_after").ok().flatten().map(JobSpan::Integer)
        } else {
            None
        }
        .ok_or_else(bad)?;
        self.add_retention(session, &args, oid, drop_after, false)
            .await
    }

    /// Adds a validated retention policy.
    async fn add_retention(
        &self,
        session: &SqlSession,
        args: &Args,
        oid: u32,
        drop_after: JobSpan,
        by_creation: bool,
    ) -> Result<(Outcome, Vec<Notice>)> {
        let schedule_interval = args.schedule_interval(DAY)?;
        let initial_start = args.time("initial_start")?;
        self.add_job(
            session,
            oid,
            JobKind::Retention {
                drop_after,
                by_creation,
            },
            JobTiming {
                schedule_interval,
                max_runtime: 5 * MINUTE,
                retry_period: 5 * MINUTE,
                initial_start,
                fixed_schedule: true,
                timezone: args.text("timezone"),
            },
        )
        .await
    }

    /// Adds the policy's job; the result is its id.
    async fn add_job(
        &self,
        session: &SqlSession,
        oid: u32,
        kind: JobKind,
        timing: JobTiming,
    ) -> Result<(Outcome, Vec<Notice>)> {
        let mut id = 0;
        session
            .engine()
            .catalog()
            .commit(|state| {
                if !state.tables.contains_key(&oid) {
                    return Err(TemporaError::internal(
                        "table dropped while adding its policy",
                    ));
                }
                // Refresh policies may be several (their windows checked apart).
                let refresh = matches!(kind, JobKind::Refresh { .. });
                if !refresh
                    && state.jobs.values().any(|j| {
                        j.oid == oid
                            && std::mem::discriminant(&j.kind) == std::mem::discriminant(&kind)
                    })
                {
                    return Err(TemporaError::new(
                        SqlState::DUPLICATE_OBJECT,
                        "policy already exists",
                    ));
                }
                id = state.next_job_id;
                Ok(vec![CatalogOp::PutJob(JobDef {
                    id,
                    kind: kind.clone(),
                    oid,
                    schedule_interval: timing.schedule_interval,
                    max_runtime: timing.max_runtime,
                    max_retries: -1,
                    retry_period: timing.retry_period,
                    scheduled: true,
                    fixed_schedule: timing.fixed_schedule,
                    initial_start: timing.initial_start,
                    next_start: timing.initial_start.unwrap_or_else(now_micros),
                    timezone: timing.timezone.clone(),
                    stats: Default::default(),
                })])
            })
            .await?;
        self.rows(Arc::new(Int32Array::from(vec![id as i32])), vec![])
            .await
    }

    async fn remove_retention_policy(
        &self,
        session: &SqlSession,
    ) -> Result<(Outcome, Vec<Notice>)> {
        let empty = || -> ArrayRef { Arc::new(StringArray::from(vec![Some("")])) };
        self.remove_policy(
            session,
            "relation",
            |k| matches!(k, JobKind::Retention { .. }),
            "retention",
            (empty(), empty()),
        )
        .await
    }

    /// Removes the hypertable's policy of one kind: `values.0` when it did,
    /// `values.1` with a NOTICE when there was none and `if_exists` is set,
    /// TimescaleDB's 42704 otherwise.
    async fn remove_policy(
        &self,
        session: &SqlSession,
        relation: &str,
        is_kind: fn(&JobKind) -> bool,
        what: &str,
        values: (ArrayRef, ArrayRef),
    ) -> Result<(Outcome, Vec<Notice>)> {
        let params = [relation, "if_exists"];
        let args = Args::read(session, &self.name, &params, &self.args).await?;
        args.reject_others(&self.name, &params)?;
        let engine = session.engine();
        let state = engine.catalog().snapshot();
        let table = args.hypertable(relation, &state)?;
        let job = state
            .jobs
            .values()
            .find(|j| j.oid == table.oid && is_kind(&j.kind));
        let Some(job) = job else {
            let message = format!(
                "{what} policy not found for hypertable \"{}\"",
                shown_name(&state, table)
            );
            if args.bool("if_exists")?.unwrap_or(false) {
                return self
                    .rows(
                        values.1,
                        vec![Notice::info(
                            SqlState::UNDEFINED_OBJECT,
                            format!("{message}, skipping"),
                        )],
                    )
                    .await;
            }
            return Err(TemporaError::new(SqlState::UNDEFINED_OBJECT, message));
        };
        let id = job.id;
        engine
            .catalog()
            .commit(|_| Ok(vec![CatalogOp::DeleteJob { id }]))
            .await?;
        self.rows(values.0, vec![]).await
    }

    /// `add_continuous_aggregate_policy(cagg, start_offset, end_offset,
    /// schedule_interval, ...)`.
    async fn add_refresh_policy(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        const PARAMS: [&str; 11] = [
            "continuous_aggregate",
            "start_offset",
            "end_offset",
            "schedule_interval",
            "if_not_exists",
            "initial_start",
            "timezone",
            "include_tiered_data",
            "buckets_per_batch",
            "max_batches_per_execution",
            "refresh_newest_first",
        ];
        let args = Args::read(session, &self.name, &PARAMS, &self.args).await?;
        args.reject_others(&self.name, &PARAMS)?;
        let given = |k: &str| args.values.iter().any(|(n, _)| n == k);
        if !given("start_offset") || !given("end_offset") || !given("schedule_interval") {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                "function add_continuous_aggregate_policy() does not exist",
            )
            .with_hint("No function matches the given name and argument types. You might need to add explicit type casts."));
        }
        let schedule_interval = args.micros("schedule_interval")?.ok_or_else(|| {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "cannot use NULL refresh_schedule_interval",
            )
        })?;
        let state = session.engine().catalog().snapshot();
        let (view, cagg) = refresh_target(&args, &state, SqlState::FEATURE_NOT_SUPPORTED)?;
        let time_type = tempora_query::caggs::raw_time_type(&state, cagg)?;
        let offset = |key: &str| -> Result<Option<JobSpan>> {
            let Some(v) = args.get(key) else {
                return Ok(None);
            };
            let span = if time_type.is_temporal() {
                interval_span(v)
            } else {
                args.int(key).ok().flatten().map(JobSpan::Integer)
            };
            span.map(Some).ok_or_else(|| {
                TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("invalid parameter value for {key}"),
                )
                .with_hint(if time_type.is_temporal() {
                    "Use time interval with a continuous aggregate using timestamp-based time bucket."
                } else {
                    "Use time interval of type integer with the continuous aggregate."
                })
            })
        };
        let start_offset = offset("start_offset")?;
        let end_offset = offset("end_offset")?;
        check_refresh_window(&state, cagg, &start_offset, &end_offset)?;
        let start = start_offset
            .as_ref()
            .map_or(i64::MAX, JobSpan::approx_length);
        let end = end_offset.as_ref().map_or(i64::MIN, JobSpan::approx_length);
        for job in state.jobs.values().filter(|j| j.oid == cagg.mat_oid) {
            let JobKind::Refresh {
                start_offset: s,
                end_offset: e,
            } = &job.kind
            else {
                continue;
            };
            if *s == start_offset && *e == end_offset {
                let message = format!(
                    "continuous aggregate refresh policy already exists for \"{}\"",
                    view.name
                );
                if args.bool("if_not_exists")?.unwrap_or(false) {
                    return self.skipped(&message).await;
                }
                return Err(TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, message)
                    .with_detail(format!(
                        "A refresh policy with the same start and end offset already exists for continuous aggregate \"{}\".",
                        view.name
                    )));
            }
            let (s, e) = (
                s.as_ref().map_or(i64::MAX, JobSpan::approx_length),
                e.as_ref().map_or(i64::MIN, JobSpan::approx_length),
            );
            if end < s && e < start {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!(
                        "refresh interval overlaps with an existing continuous aggregate policy on \"{}\"",
                        view.name
                    ),
                ));
            }
        }
        let initial_start = args.time("initial_start")?;
        self.add_job(
            session,
            cagg.mat_oid,
            JobKind::Refresh {
                start_offset,
                end_offset,
            },
            JobTiming {
                schedule_interval,
                max_runtime: 0,
                retry_period: schedule_interval,
                initial_start,
                fixed_schedule: initial_start.is_some(),
                timezone: args.text("timezone"),
            },
        )
        .await
    }

    /// `remove_continuous_aggregate_policy(cagg, if_not_exists, if_exists)`.
    async fn remove_refresh_policy(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        const PARAMS: [&str; 3] = ["continuous_aggregate", "if_not_exists", "if_exists"];
        let args = Args::read(session, &self.name, &PARAMS, &self.args).await?;
        args.reject_others(&self.name, &PARAMS)?;
        let engine = session.engine();
        let state = engine.catalog().snapshot();
        let (view, cagg) = refresh_target(&args, &state, SqlState::INVALID_PARAMETER_VALUE)?;
        let ids: Vec<u32> = state
            .jobs
            .values()
            .filter(|j| j.oid == cagg.mat_oid && matches!(j.kind, JobKind::Refresh { .. }))
            .map(|j| j.id)
            .collect();
        let void = || -> ArrayRef { Arc::new(StringArray::from(vec![Some("")])) };
        if ids.is_empty() {
            let message = format!(
                "continuous aggregate policy not found for \"{}\"",
                view.name
            );
            let quiet = args.bool("if_exists")?.unwrap_or(false)
                || args.bool("if_not_exists")?.unwrap_or(false);
            if quiet {
                return self
                    .rows(
                        void(),
                        vec![Notice::info(
                            SqlState::UNDEFINED_OBJECT,
                            format!("{message}, skipping"),
                        )],
                    )
                    .await;
            }
            return Err(TemporaError::new(SqlState::UNDEFINED_OBJECT, message));
        }
        engine
            .catalog()
            .commit(|_| Ok(ids.iter().map(|&id| CatalogOp::DeleteJob { id }).collect()))
            .await?;
        self.rows(void(), vec![]).await
    }

    async fn add_compression_policy(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        const PARAMS: [&str; 8] = [
            "hypertable",
            "compress_after",
            "if_not_exists",
            "schedule_interval",
            "initial_start",
            "timezone",
            "compress_created_before",
            "hypercore_use_access_method",
        ];
        let args = Args::read(session, &self.name, &PARAMS, &self.args).await?;
        args.reject_others(&self.name, &PARAMS)?;
        let state = session.engine().catalog().snapshot();
        let table = args.hypertable("hypertable", &state)?;
        let oid = table.oid;
        if table.compression.is_none() {
            return Err(match state.cagg_of_materialization(oid) {
                Some(v) => TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    format!(
                        "columnstore not enabled on continuous aggregate \"{}\"",
                        v.name
                    ),
                )
                .with_hint("Enable columnstore before adding a columnstore policy."),
                None => TemporaError::new(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    format!("columnstore not enabled on hypertable \"{}\"", table.name),
                ),
            });
        }
        let by_creation =
            args.get("compress_after").is_none() && args.get("compress_created_before").is_some();
        if args.get("compress_after").is_some() == args.get("compress_created_before").is_some() {
            return Err(one_of("compress_after", "compress_created_before"));
        }
        let integer_time = !is_temporal(table) && !by_creation;
        if integer_time && !has_integer_now(table) {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                "integer_now function not set",
            )
            .with_hint(format!(
                "Set one with set_integer_now_func('{}', ...) first.",
                table.name
            )));
        }
        let span_arg = if by_creation {
            "compress_created_before"
        } else {
            "compress_after"
        };
        let compress_after = match args.get(span_arg) {
            Some(v) => {
                let span = if integer_time {
                    args.int(span_arg).ok().flatten().map(JobSpan::Integer)
                } else {
                    interval_span(v)
                };
                match span {
                    Some(span) => span,
                    None => {
                        let expected = match integer_time {
                            true => time_type_name(table),
                            false => "interval".into(),
                        };
                        return Err(TemporaError::new(
                            SqlState::FEATURE_NOT_SUPPORTED,
                            format!(
                                "unsupported compress_after argument type, expected type : {expected}"
                            ),
                        ));
                    }
                }
            }
            None => return Err(one_of("compress_after", "compress_created_before")),
        };
        let if_not_exists = args.bool("if_not_exists")?.unwrap_or(false);
        let existing = state
            .jobs
            .values()
            .find(|j| j.oid == oid && matches!(j.kind, JobKind::Compression { .. }));
        if let Some(job) = existing {
            if !if_not_exists {
                return Err(TemporaError::new(
                    SqlState::DUPLICATE_OBJECT,
                    format!(
                        "columnstore policy already exists for hypertable or continuous aggregate \"{}\"",
                        shown_name(&state, table)
                    ),
                ));
            }
            let same = job.kind
                == JobKind::Compression {
                    compress_after,
                    by_creation,
                };
            let message = format!(
                "columnstore policy already exists for hypertable \"{}\"",
                shown_name(&state, table)
            );
            let notice = if same {
                Notice::info(SqlState::DUPLICATE_OBJECT, format!("{message}, skipping"))
            } else {
                Notice::warning(SqlState::DUPLICATE_OBJECT, message)
            };
            return self
                .rows(Arc::new(Int32Array::from(vec![-1])), vec![notice])
                .await;
        }
        // TimescaleDB's default: half the chunk interval for time columns, a day otherwise.
        let default_schedule = match &table.hypertable {
            Some(h) if is_temporal(table) => (h.chunk_interval / 2).max(1),
            _ => DAY,
        };
        let schedule_interval = args.schedule_interval(default_schedule)?;
        let initial_start = args.time("initial_start")?;
        self.add_job(
            session,
            oid,
            JobKind::Compression {
                compress_after,
                by_creation,
            },
            JobTiming {
                schedule_interval,
                max_runtime: 0,
                retry_period: HOUR,
                initial_start,
                fixed_schedule: initial_start.is_some(),
                timezone: args.text("timezone"),
            },
        )
        .await
    }

    async fn remove_compression_policy(
        &self,
        session: &SqlSession,
    ) -> Result<(Outcome, Vec<Notice>)> {
        let flag = |b: bool| -> ArrayRef {
            Arc::new(datafusion::arrow::array::BooleanArray::from(vec![b]))
        };
        self.remove_policy(
            session,
            "hypertable",
            |k| matches!(k, JobKind::Compression { .. }),
            "columnstore",
            (flag(true), flag(false)),
        )
        .await
    }

    async fn alter_job(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        const PARAMS: [&str; 9] = [
            "job_id",
            "schedule_interval",
            "max_runtime",
            "max_retries",
            "retry_period",
            "scheduled",
            "config",
            "next_start",
            "if_exists",
        ];
        let args = Args::read(session, &self.name, &PARAMS, &self.args).await?;
        args.reject_others(
            &self.name,
            &[
                &PARAMS[..],
                &[
                    "fixed_schedule",
                    "initial_start",
                    "timezone",
                    "check_config",
                ],
            ]
            .concat(),
        )?;
        if args.get("check_config").is_some() {
            return Err(TemporaError::not_supported("alter_job with check_config"));
        }
        let id = args.int("job_id")?.ok_or_else(|| {
            TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, "job ID cannot be NULL")
        })? as u32;
        let engine = session.engine();
        let Some(mut job) = engine.catalog().snapshot().jobs.get(&id).cloned() else {
            let message = format!("job {id} not found");
            if args.bool("if_exists")?.unwrap_or(false) {
                return self
                    .rows(
                        Arc::new(StringArray::from(vec![None::<String>])),
                        vec![Notice::info(
                            SqlState::UNDEFINED_OBJECT,
                            format!("{message}, skipping"),
                        )],
                    )
                    .await;
            }
            return Err(TemporaError::new(SqlState::UNDEFINED_OBJECT, message));
        };
        let positive = |v: i64, what: &str| {
            if v <= 0 {
                Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    format!("{what} must be positive"),
                ))
            } else {
                Ok(v)
            }
        };
        if let Some(v) = args.micros("schedule_interval")? {
            job.schedule_interval = positive(v, "schedule_interval")?;
        }
        if let Some(v) = args.micros("max_runtime")? {
            job.max_runtime = v.max(0);
        }
        if let Some(v) = args.int("max_retries")? {
            job.max_retries = v.clamp(-1, i32::MAX as i64) as i32;
        }
        if let Some(v) = args.micros("retry_period")? {
            job.retry_period = positive(v, "retry_period")?;
        }
        if let Some(v) = args.bool("scheduled")? {
            job.scheduled = v;
        }
        if let Some(v) = args.time("next_start")? {
            job.next_start = v;
        }
        if let Some(v) = args.bool("fixed_schedule")? {
            job.fixed_schedule = v;
        }
        if let Some(v) = args.time("initial_start")? {
            job.initial_start = Some(v);
        }
        if let Some(tz) = args.text("timezone") {
            tempora_copy::zone::PgTimeZone::parse_argument(&tz)?;
            job.timezone = Some(tz);
        }
        if let Some(config) = args.get("config") {
            let text = args.text("config").ok_or_else(|| {
                TemporaError::new(
                    SqlState::DATATYPE_MISMATCH,
                    format!("config must be jsonb, not {}", config.data_type()),
                )
            })?;
            let state = engine.catalog().snapshot();
            job.kind = policy_from_config(session, &state, &job, &text).await?;
        }
        let updated = job.clone();
        let state = engine
            .catalog()
            .commit(|state| {
                let Some(current) = state.jobs.get(&id) else {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("job {id} not found"),
                    ));
                };
                // Runs recorded meanwhile keep their statistics.
                let mut job = updated;
                job.stats = current.stats.clone();
                Ok(vec![CatalogOp::PutJob(job)])
            })
            .await?;
        let job = state.jobs.get(&id).unwrap_or(&job);
        let record =
            tempora_query::information::alter_job_record(job, &state, &session.time_zone());
        self.rows(Arc::new(StringArray::from(vec![Some(record)])), vec![])
            .await
    }

    async fn delete_job(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        let args = Args::read(session, &self.name, &["job_id"], &self.args).await?;
        args.reject_others(&self.name, &["job_id"])?;
        let id = args.int("job_id")?.ok_or_else(|| {
            TemporaError::new(SqlState::INVALID_PARAMETER_VALUE, "job ID cannot be NULL")
        })? as u32;
        session
            .engine()
            .catalog()
            .commit(|state| {
                if !state.jobs.contains_key(&id) {
                    return Err(TemporaError::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("job {id} not found"),
                    ));
                }
                Ok(vec![CatalogOp::DeleteJob { id }])
            })
            .await?;
        self.rows(Arc::new(StringArray::from(vec![Some("")])), vec![])
            .await
    }
}

/// `CALL run_job(id)`: runs the job now, in this session; its error is the
/// statement's.
pub(crate) fn run_job_id(stmt: &Statement) -> Option<&SqlExpr> {
    let Statement::Call(f) = stmt else {
        return None;
    };
    if crate::function_name(&f.name) != "run_job" {
        return None;
    }
    match &f.args {
        datafusion::sql::sqlparser::ast::FunctionArguments::List(l) if l.args.len() == 1 => {
            match &l.args[0] {
                datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                    datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(e),
                ) => Some(e),
                datafusion::sql::sqlparser::ast::FunctionArg::Named {
                    arg: datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(e),
                    ..
                } => Some(e),
                _ => None,
            }
        }
        _ => None,
    }
}

pub(crate) async fn run_job(session: &SqlSession, id: &SqlExpr) -> Result<(Outcome, Vec<Notice>)> {
    let id = match session.eval_constant(id).await? {
        ScalarValue::Int16(Some(v)) => v as i64,
        ScalarValue::Int32(Some(v)) => v as i64,
        ScalarValue::Int64(Some(v)) => v,
        _ => {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "job ID cannot be NULL",
            ))
        }
    };
    let id = u32::try_from(id).map_err(|_| {
        TemporaError::new(SqlState::UNDEFINED_OBJECT, format!("job {id} not found"))
    })?;
    session.engine().run_job(id).await?;
    Ok((Outcome::Command("CALL".into()), vec![]))
}
