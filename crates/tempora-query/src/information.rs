//! TimescaleDB's introspection: the `timescaledb_information` views
//! (`hypertables`, `dimensions`, `chunks`) and the size and row-count
//! functions (`hypertable_size`, `hypertable_detailed_size`,
//! `chunks_detailed_size`, `approximate_row_count`), answered from the
//! catalog and the memtables at the time the statement is planned.
//!
//! Sizes are the bytes of a table's Parquet files plus the in-memory size of
//! its rows not flushed yet; Tempora keeps no indexes, so `index_bytes` is 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int16Array, Int32Array, Int64Array, Int64Builder,
    IntervalMonthDayNanoArray, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Field, IntervalMonthDayNano, IntervalUnit, Schema, SchemaRef, TimeUnit,
};
use datafusion::catalog::{
    MemTable, SchemaProvider, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use tempora_catalog::{CatalogState, JobDef, JobKind, JobSpan, TableDef, CHUNK_SCHEMA};
use tempora_common::TemporaError;
use tempora_storage::Engine;

/// The schema TimescaleDB's views live in.
pub const SCHEMA: &str = "timescaledb_information";

/// Owner shown for every relation (Tempora has one role).
const OWNER: &str = "postgres";

pub(crate) fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

pub(crate) fn int64(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

fn timestamptz(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

pub(crate) fn table_of(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
) -> DfResult<Arc<dyn TableProvider>> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

pub(crate) fn strings<'a>(v: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(v))
}

/// The hypertables of a catalog state, in name order.
pub(crate) fn hypertables(state: &CatalogState) -> Vec<&TableDef> {
    let mut v: Vec<&TableDef> = state
        .tables
        .values()
        .filter(|t| t.is_hypertable())
        .collect();
    v.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    v
}

fn time_type_name(t: &TableDef) -> Option<String> {
    let h = t.hypertable.as_ref()?;
    Some(t.column(&h.time_column)?.ty.sql_name())
}

fn is_temporal(t: &TableDef) -> bool {
    t.hypertable
        .as_ref()
        .and_then(|h| t.column(&h.time_column))
        .is_some_and(|c| c.ty.is_temporal())
}

/// `timescaledb_information.continuous_aggregates`.
fn continuous_aggregates_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable_schema"),
        text("hypertable_name"),
        text("view_schema"),
        text("view_name"),
        text("view_owner"),
        Field::new("materialized_only", DataType::Boolean, true),
        Field::new("compression_enabled", DataType::Boolean, true),
        text("materialization_hypertable_schema"),
        text("materialization_hypertable_name"),
        text("view_definition"),
    ]));
    let mut caggs: Vec<(&tempora_catalog::ViewDef, &tempora_catalog::ContinuousAgg)> = state
        .views
        .values()
        .filter_map(|v| Some((v, v.continuous.as_ref()?)))
        .collect();
    caggs.sort_by(|a, b| (&a.0.schema, &a.0.name).cmp(&(&b.0.schema, &b.0.name)));
    // The hypertable at the bottom: an aggregate on an aggregate names the
    // parent's (TimescaleDB lists the parent's materialization).
    let raw = |c: &tempora_catalog::ContinuousAgg| state.table_by_oid(c.raw_oid);
    let mat = |c: &tempora_catalog::ContinuousAgg| state.table_by_oid(c.mat_oid);
    let definitions: Vec<String> = caggs
        .iter()
        .map(|(v, _)| format!(" {};", v.definition.trim_end_matches(';')))
        .collect();
    table_of(
        schema,
        vec![
            strings(caggs.iter().map(|(_, c)| raw(c).map(|t| t.schema.as_str()))),
            strings(caggs.iter().map(|(_, c)| raw(c).map(|t| t.name.as_str()))),
            strings(caggs.iter().map(|(v, _)| Some(v.schema.as_str()))),
            strings(caggs.iter().map(|(v, _)| Some(v.name.as_str()))),
            strings(caggs.iter().map(|_| Some(OWNER))),
            Arc::new(BooleanArray::from_iter(
                caggs.iter().map(|(_, c)| Some(c.materialized_only)),
            )),
            Arc::new(BooleanArray::from_iter(caggs.iter().map(|(_, c)| {
                Some(mat(c).is_some_and(|t| t.compression.is_some()))
            }))),
            strings(caggs.iter().map(|(_, c)| mat(c).map(|t| t.schema.as_str()))),
            strings(caggs.iter().map(|(_, c)| mat(c).map(|t| t.name.as_str()))),
            strings(definitions.iter().map(|d| Some(d.as_str()))),
        ],
    )
}

/// `timescaledb_information.hypertables`.
fn hypertables_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable_schema"),
        text("hypertable_name"),
        text("owner"),
        Field::new("num_dimensions", DataType::Int16, true),
        int64("num_chunks"),
        Field::new("compression_enabled", DataType::Boolean, true),
        text("tablespaces"),
        text("primary_dimension"),
        text("primary_dimension_type"),
    ]));
    // A continuous aggregate's materialization is internal.
    let ts: Vec<&TableDef> = hypertables(state)
        .into_iter()
        .filter(|t| state.cagg_of_materialization(t.oid).is_none())
        .collect();
    let types: Vec<Option<String>> = ts.iter().map(|t| time_type_name(t)).collect();
    table_of(
        schema,
        vec![
            strings(ts.iter().map(|t| Some(t.schema.as_str()))),
            strings(ts.iter().map(|t| Some(t.name.as_str()))),
            strings(ts.iter().map(|_| Some(OWNER))),
            Arc::new(Int16Array::from_iter_values(ts.iter().map(|t| {
                1 + t
                    .hypertable
                    .as_ref()
                    .map_or(0, |h| h.space_dimensions.len() as i16)
            }))),
            Arc::new(Int64Array::from_iter_values(
                ts.iter().map(|t| t.chunks.len() as i64),
            )),
            Arc::new(BooleanArray::from_iter(
                ts.iter().map(|t| Some(t.compression.is_some())),
            )),
            strings(ts.iter().map(|_| None)),
            strings(
                ts.iter()
                    .map(|t| t.hypertable.as_ref().map(|h| h.time_column.as_str())),
            ),
            strings(types.iter().map(|t| t.as_deref())),
        ],
    )
}

/// `timescaledb_information.dimensions`: the time dimension, then the
/// space dimensions, of each hypertable.
fn dimensions_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable_schema"),
        text("hypertable_name"),
        int64("dimension_number"),
        text("column_name"),
        text("column_type"),
        text("dimension_type"),
        Field::new(
            "time_interval",
            DataType::Interval(IntervalUnit::MonthDayNano),
            true,
        ),
        int64("integer_interval"),
        text("integer_now_func"),
        Field::new("num_partitions", DataType::Int16, true),
    ]));
    struct Row<'a> {
        table: &'a TableDef,
        number: i64,
        column: &'a str,
        space: Option<u16>,
    }
    let mut rows = Vec::new();
    for t in hypertables(state) {
        let Some(h) = &t.hypertable else { continue };
        rows.push(Row {
            table: t,
            number: 1,
            column: &h.time_column,
            space: None,
        });
        for (i, (col, n)) in h.space_dimensions.iter().enumerate() {
            rows.push(Row {
                table: t,
                number: 2 + i as i64,
                column: col,
                space: Some(*n),
            });
        }
    }
    let column_types: Vec<Option<String>> = rows
        .iter()
        .map(|r| r.table.column(r.column).map(|c| c.ty.sql_name()))
        .collect();
    let interval = |r: &Row| -> Option<i64> {
        match (&r.table.hypertable, r.space) {
            (Some(h), None) => Some(h.chunk_interval),
            _ => None,
        }
    };
    table_of(
        schema,
        vec![
            strings(rows.iter().map(|r| Some(r.table.schema.as_str()))),
            strings(rows.iter().map(|r| Some(r.table.name.as_str()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.number))),
            strings(rows.iter().map(|r| Some(r.column))),
            strings(column_types.iter().map(|t| t.as_deref())),
            strings(
                rows.iter()
                    .map(|r| Some(if r.space.is_some() { "Space" } else { "Time" })),
            ),
            Arc::new(IntervalMonthDayNanoArray::from_iter(rows.iter().map(|r| {
                interval(r)
                    .filter(|_| is_temporal(r.table))
                    .map(micros_interval)
            }))),
            Arc::new(Int64Array::from_iter(
                rows.iter()
                    .map(|r| interval(r).filter(|_| !is_temporal(r.table))),
            )),
            strings(rows.iter().map(|r| {
                let h = r.table.hypertable.as_ref()?;
                let (_, name) = h.integer_now_func.as_ref().filter(|_| r.space.is_none())?;
                Some(name.as_str())
            })),
            Arc::new(Int16Array::from_iter(
                rows.iter().map(|r| r.space.map(|n| n as i16)),
            )),
        ],
    )
}

/// Microseconds as an interval of days and time, as PostgreSQL keeps a
/// chunk interval (`7 days`, `06:00:00`).
fn micros_interval(us: i64) -> IntervalMonthDayNano {
    const DAY: i64 = 86_400_000_000;
    IntervalMonthDayNano::new(0, (us / DAY) as i32, (us % DAY) * 1000)
}

/// `timescaledb_information.chunks`.
fn chunks_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable_schema"),
        text("hypertable_name"),
        text("chunk_schema"),
        text("chunk_name"),
        text("primary_dimension"),
        text("primary_dimension_type"),
        timestamptz("range_start"),
        timestamptz("range_end"),
        int64("range_start_integer"),
        int64("range_end_integer"),
        Field::new("is_compressed", DataType::Boolean, true),
        text("chunk_tablespace"),
        timestamptz("chunk_creation_time"),
    ]));
    let mut rows = Vec::new();
    for t in hypertables(state) {
        let Some(h) = &t.hypertable else { continue };
        for c in t.chunks.values() {
            rows.push((t, h, c, time_type_name(t), is_temporal(t)));
        }
    }
    let names: Vec<String> = rows.iter().map(|(_, h, c, _, _)| c.name(h.id)).collect();
    let temporal_or = |time: bool, f: fn(&tempora_catalog::ChunkDef) -> i64| {
        rows.iter()
            .map(|(_, _, c, _, temporal)| (*temporal == time).then(|| f(c)))
            .collect::<Vec<_>>()
    };
    table_of(
        schema,
        vec![
            strings(rows.iter().map(|(t, ..)| Some(t.schema.as_str()))),
            strings(rows.iter().map(|(t, ..)| Some(t.name.as_str()))),
            strings(rows.iter().map(|_| Some(CHUNK_SCHEMA))),
            strings(names.iter().map(|n| Some(n.as_str()))),
            strings(rows.iter().map(|(_, h, ..)| Some(h.time_column.as_str()))),
            strings(rows.iter().map(|(_, _, _, ty, _)| ty.as_deref())),
            Arc::new(
                TimestampMicrosecondArray::from(temporal_or(true, |c| c.range_start))
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(temporal_or(true, |c| c.range_end))
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(temporal_or(false, |c| c.range_start))),
            Arc::new(Int64Array::from(temporal_or(false, |c| c.range_end))),
            Arc::new(BooleanArray::from_iter(
                rows.iter()
                    .map(|(_, _, c, _, _)| Some(c.compression.is_some())),
            )),
            strings(rows.iter().map(|_| None)),
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    rows.iter().map(|(_, _, c, _, _)| c.created_at),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
}

/// A duration in microseconds as PostgreSQL prints an interval of days and
/// time (`1 day`, `12:00:00`, `00:05:00`).
pub fn interval_text(micros: i64) -> String {
    let (days, rem) = tempora_copy::text::split_days(micros);
    let mut out = String::new();
    tempora_copy::text::write_interval(0, days, rem, &mut out);
    out
}

/// What `alter_job` returns, as PostgreSQL prints the record: (job_id,
/// schedule_interval, max_runtime, max_retries, retry_period, scheduled,
/// config, next_start, check_config, fixed_schedule, initial_start, timezone),
/// its times in `session_zone`, as every timestamptz of the session prints.
pub fn alter_job_record(
    job: &JobDef,
    state: &CatalogState,
    session_zone: &tempora_copy::zone::PgTimeZone,
) -> String {
    let time = |t: i64| tempora_copy::text::format_timestamp(t, Some(session_zone));
    let flag = |b: bool| if b { "t" } else { "f" }.to_string();
    let fields = [
        Some(job.id.to_string()),
        Some(interval_text(job.schedule_interval)),
        Some(interval_text(job.max_runtime)),
        Some(job.max_retries.to_string()),
        Some(interval_text(job.retry_period)),
        Some(flag(job.scheduled)),
        Some(job_config(job, state)),
        Some(time(job.next_start)),
        Some(format!("{PROC_SCHEMA}.{}_check", job_proc(job))),
        Some(flag(job.fixed_schedule)),
        job.initial_start.map(time),
        job.timezone.clone(),
        Some(job_application_name(job)),
    ];
    let fields: Vec<String> = fields.iter().map(|f| record_field(f.as_deref())).collect();
    format!("({})", fields.join(","))
}

/// One field of a record's text: empty for NULL, double-quoted (quotes and
/// backslashes doubled) when it is empty or holds a delimiter or space.
fn record_field(value: Option<&str>) -> String {
    let Some(v) = value else {
        return String::new();
    };
    let plain = !v.is_empty()
        && !v
            .chars()
            .any(|c| matches!(c, '"' | '\\' | '(' | ')' | ',') || c.is_whitespace());
    if plain {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if matches!(c, '"' | '\\') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A job's `config` as TimescaleDB shows it (jsonb: keys by length, then name).
fn job_config(job: &JobDef, state: &CatalogState) -> String {
    let hypertable_id = state
        .table_by_oid(job.oid)
        .and_then(|t| t.hypertable.as_ref())
        .map_or(0, |h| h.id);
    let mut entries: Vec<(&str, String)> = vec![("hypertable_id", hypertable_id.to_string())];
    match &job.kind {
        JobKind::Retention {
            drop_after,
            by_creation,
        } => entries.push((
            if *by_creation {
                "drop_created_before"
            } else {
                "drop_after"
            },
            span_json(drop_after),
        )),
        JobKind::Compression {
            compress_after,
            by_creation,
        } => entries.push((
            if *by_creation {
                "compress_created_before"
            } else {
                "compress_after"
            },
            span_json(compress_after),
        )),
        JobKind::Refresh {
            start_offset,
            end_offset,
        } => {
            let json = |s: &Option<JobSpan>| s.as_ref().map_or("null".to_string(), span_json);
            entries = vec![
                ("mat_hypertable_id", hypertable_id.to_string()),
                ("start_offset", json(start_offset)),
                ("end_offset", json(end_offset)),
            ];
        }
    }
    entries.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// A policy's span as a jsonb value: an interval as text, an integer as is.
fn span_json(span: &JobSpan) -> String {
    match span {
        JobSpan::Interval {
            months,
            days,
            micros,
        } => {
            let mut s = String::new();
            tempora_copy::text::write_interval(*months, *days, *micros, &mut s);
            format!("\"{s}\"")
        }
        JobSpan::Integer(v) => v.to_string(),
    }
}

/// The relation a job shows (`hypertable_schema`, `hypertable_name`): its
/// hypertable, or the continuous aggregate materialized in it.
struct Relation<'a> {
    schema: &'a str,
    name: &'a str,
}

fn job_relation<'a>(state: &'a CatalogState, job: &JobDef) -> Option<Relation<'a>> {
    if let Some(v) = state.cagg_of_materialization(job.oid) {
        return Some(Relation {
            schema: &v.schema,
            name: &v.name,
        });
    }
    state.table_by_oid(job.oid).map(|t| Relation {
        schema: &t.schema,
        name: &t.name,
    })
}

/// TimescaleDB's name of a job's procedure.
fn job_proc(job: &JobDef) -> &'static str {
    match job.kind {
        JobKind::Retention { .. } => "policy_retention",
        JobKind::Compression { .. } => "policy_compression",
        JobKind::Refresh { .. } => "policy_refresh_continuous_aggregate",
    }
}

fn job_application_name(job: &JobDef) -> String {
    match job.kind {
        JobKind::Retention { .. } => format!("Retention Policy [{}]", job.id),
        JobKind::Compression { .. } => format!("Columnstore Policy [{}]", job.id),
        JobKind::Refresh { .. } => format!("Refresh Continuous Aggregate Policy [{}]", job.id),
    }
}

fn interval_field(name: &str) -> Field {
    Field::new(name, DataType::Interval(IntervalUnit::MonthDayNano), true)
}

fn intervals(v: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(IntervalMonthDayNanoArray::from_iter(
        v.into_iter().map(|us| us.map(micros_interval)),
    ))
}

fn times(v: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(v).with_timezone("UTC"))
}

const PROC_SCHEMA: &str = "_timescaledb_functions";

/// `timescaledb_information.jobs`.
fn jobs_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Int32, false),
        text("application_name"),
        interval_field("schedule_interval"),
        interval_field("max_runtime"),
        Field::new("max_retries", DataType::Int32, true),
        interval_field("retry_period"),
        text("proc_schema"),
        text("proc_name"),
        text("owner"),
        Field::new("scheduled", DataType::Boolean, true),
        Field::new("fixed_schedule", DataType::Boolean, true),
        text("config"),
        timestamptz("next_start"),
        timestamptz("initial_start"),
        text("hypertable_schema"),
        text("hypertable_name"),
        text("check_schema"),
        text("check_name"),
    ]));
    let jobs: Vec<&JobDef> = state.jobs.values().collect();
    let table = |j: &JobDef| job_relation(state, j);
    let names: Vec<String> = jobs.iter().map(|j| job_application_name(j)).collect();
    let configs: Vec<String> = jobs.iter().map(|j| job_config(j, state)).collect();
    let checks: Vec<String> = jobs
        .iter()
        .map(|j| format!("{}_check", job_proc(j)))
        .collect();
    table_of(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(
                jobs.iter().map(|j| j.id as i32),
            )),
            strings(names.iter().map(|n| Some(n.as_str()))),
            intervals(jobs.iter().map(|j| Some(j.schedule_interval))),
            intervals(jobs.iter().map(|j| Some(j.max_runtime))),
            Arc::new(Int32Array::from_iter_values(
                jobs.iter().map(|j| j.max_retries),
            )),
            intervals(jobs.iter().map(|j| Some(j.retry_period))),
            strings(jobs.iter().map(|_| Some(PROC_SCHEMA))),
            strings(jobs.iter().map(|j| Some(job_proc(j)))),
            strings(jobs.iter().map(|_| Some(OWNER))),
            Arc::new(BooleanArray::from_iter(
                jobs.iter().map(|j| Some(j.scheduled)),
            )),
            Arc::new(BooleanArray::from_iter(
                jobs.iter().map(|j| Some(j.fixed_schedule)),
            )),
            strings(configs.iter().map(|c| Some(c.as_str()))),
            times(jobs.iter().map(|j| Some(j.next_start))),
            times(jobs.iter().map(|j| j.initial_start)),
            strings(jobs.iter().map(|j| table(j).map(|t| t.schema))),
            strings(jobs.iter().map(|j| table(j).map(|t| t.name))),
            strings(jobs.iter().map(|_| Some(PROC_SCHEMA))),
            strings(checks.iter().map(|c| Some(c.as_str()))),
        ],
    )
}

/// `timescaledb_information.job_stats`.
fn job_stats_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        text("hypertable_schema"),
        text("hypertable_name"),
        Field::new("job_id", DataType::Int32, false),
        timestamptz("last_run_started_at"),
        timestamptz("last_successful_finish"),
        text("last_run_status"),
        text("job_status"),
        interval_field("last_run_duration"),
        timestamptz("next_start"),
        int64("total_runs"),
        int64("total_successes"),
        int64("total_failures"),
    ]));
    let jobs: Vec<&JobDef> = state.jobs.values().collect();
    let table = |j: &JobDef| job_relation(state, j);
    table_of(
        schema,
        vec![
            strings(jobs.iter().map(|j| table(j).map(|t| t.schema))),
            strings(jobs.iter().map(|j| table(j).map(|t| t.name))),
            Arc::new(Int32Array::from_iter_values(
                jobs.iter().map(|j| j.id as i32),
            )),
            // A job that never ran (or never succeeded) shows -infinity.
            times(
                jobs.iter()
                    .map(|j| j.stats.last_run_started_at.or(Some(i64::MIN))),
            ),
            times(
                jobs.iter()
                    .map(|j| j.stats.last_successful_finish.or(Some(i64::MIN))),
            ),
            strings(jobs.iter().map(|j| j.stats.last_run_status.as_deref())),
            strings(
                jobs.iter()
                    .map(|j| Some(if j.scheduled { "Scheduled" } else { "Paused" })),
            ),
            intervals(jobs.iter().map(|j| j.stats.last_run_duration_us)),
            times(jobs.iter().map(|j| j.scheduled.then_some(j.next_start))),
            Arc::new(Int64Array::from_iter_values(
                jobs.iter().map(|j| j.stats.total_runs),
            )),
            Arc::new(Int64Array::from_iter_values(
                jobs.iter().map(|j| j.stats.total_successes),
            )),
            Arc::new(Int64Array::from_iter_values(
                jobs.iter().map(|j| j.stats.total_failures),
            )),
        ],
    )
}

/// `timescaledb_information.job_errors`.
fn job_errors_view(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Int32, false),
        text("proc_schema"),
        text("proc_name"),
        Field::new("pid", DataType::Int32, true),
        timestamptz("start_time"),
        timestamptz("finish_time"),
        text("sqlerrcode"),
        text("err_message"),
    ]));
    let errors = &state.job_errors;
    let proc_name = |id: u32| state.jobs.get(&id).map(job_proc);
    table_of(
        schema,
        vec![
            Arc::new(Int32Array::from_iter_values(
                errors.iter().map(|e| e.job_id as i32),
            )),
            strings(
                errors
                    .iter()
                    .map(|e| proc_name(e.job_id).map(|_| PROC_SCHEMA)),
            ),
            strings(errors.iter().map(|e| proc_name(e.job_id))),
            Arc::new(Int32Array::from(vec![None; errors.len()])),
            times(errors.iter().map(|e| Some(e.start_time))),
            times(errors.iter().map(|e| Some(e.finish_time))),
            strings(errors.iter().map(|e| Some(e.sqlerrcode.as_str()))),
            strings(errors.iter().map(|e| Some(e.message.as_str()))),
        ],
    )
}

/// The `timescaledb_information` schema; its views read the catalog each
/// time a statement names them.
#[derive(Debug)]
pub struct InformationSchema {
    engine: Arc<Engine>,
}

impl InformationSchema {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

const VIEWS: [&str; 10] = [
    "hypertables",
    "continuous_aggregates",
    "dimensions",
    "chunks",
    "jobs",
    "job_stats",
    "job_errors",
    "compression_settings",
    "hypertable_compression_settings",
    "chunk_compression_settings",
];

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        VIEWS.iter().map(|v| v.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let state = self.engine.catalog().snapshot();
        Ok(Some(match name {
            "hypertables" => hypertables_view(&state)?,
            "continuous_aggregates" => continuous_aggregates_view(&state)?,
            "dimensions" => dimensions_view(&state)?,
            "chunks" => chunks_view(&state)?,
            "jobs" => jobs_view(&state)?,
            "job_stats" => job_stats_view(&state)?,
            "job_errors" => job_errors_view(&state)?,
            "compression_settings" => crate::compression::compression_settings_view(&state)?,
            "hypertable_compression_settings" => {
                crate::compression::hypertable_compression_settings_view(&state)?
            }
            "chunk_compression_settings" => {
                crate::compression::chunk_compression_settings_view(&state)?
            }
            _ => return Ok(None),
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        VIEWS.contains(&name)
    }
}

/// Bytes of one chunk (or of a plain table's files, key None): Parquet
/// files plus unflushed rows.
pub(crate) fn bytes_by_chunk(engine: &Engine, table: &TableDef) -> BTreeMap<Option<u32>, i64> {
    let mut out: BTreeMap<Option<u32>, i64> = BTreeMap::new();
    *out.entry(None).or_default() += table.files.iter().map(|f| f.bytes as i64).sum::<i64>();
    for c in table.chunks.values() {
        *out.entry(Some(c.id)).or_default() += c.files.iter().map(|f| f.bytes as i64).sum::<i64>();
    }
    for (chunk, batches) in engine.read_snapshot().memtable_rows(table.oid) {
        *out.entry(chunk).or_default() += batches
            .iter()
            .map(|b| b.get_array_memory_size() as i64)
            .sum::<i64>();
    }
    out
}

/// Looks a relation named by text (`'t'`, `'s.t'`) up.
pub(crate) fn relation<'a>(
    state: &'a CatalogState,
    rel: &str,
) -> Result<&'a TableDef, TemporaError> {
    let (schema, name) = crate::split_qualified(rel);
    state
        .table(&schema, &name)
        .ok_or_else(|| TemporaError::undefined_table(rel))
}

/// The relation argument of a table function (NULL: None).
pub(crate) fn relation_arg(args: &TableFunctionArgs) -> DfResult<Option<String>> {
    let Some(e) = args.exprs().first() else {
        return Ok(None);
    };
    crate::chunks::text_argument(args.session(), e).map_err(TemporaError::into_datafusion)
}

fn detailed_schema(chunks: bool) -> SchemaRef {
    let mut fields = Vec::new();
    if chunks {
        fields.push(text("chunk_schema"));
        fields.push(text("chunk_name"));
    }
    for f in ["table_bytes", "index_bytes", "toast_bytes", "total_bytes"] {
        fields.push(int64(f));
    }
    fields.push(text("node_name"));
    Arc::new(Schema::new(fields))
}

/// `hypertable_detailed_size(rel)` (`chunks: false`) and
/// `chunks_detailed_size(rel)` (`chunks: true`).
#[derive(Debug)]
pub struct DetailedSize {
    pub engine: Arc<Engine>,
    pub chunks: bool,
}

impl TableFunctionImpl for DetailedSize {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let schema = detailed_schema(self.chunks);
        let state = self.engine.catalog().snapshot();
        // (chunk, bytes) rows; empty for NULL and for plain tables.
        let mut rows: Vec<(Option<String>, i64)> = Vec::new();
        if let Some(rel) = relation_arg(&args)? {
            let table = relation(&state, &rel).map_err(TemporaError::into_datafusion)?;
            if let Some(h) = &table.hypertable {
                let bytes = bytes_by_chunk(&self.engine, table);
                if self.chunks {
                    rows = table
                        .chunks
                        .values()
                        .map(|c| {
                            (
                                Some(c.name(h.id)),
                                bytes.get(&Some(c.id)).copied().unwrap_or(0),
                            )
                        })
                        .collect();
                } else {
                    rows.push((None, bytes.values().sum()));
                }
            }
        }
        let sizes = || Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef;
        let zeros = || Arc::new(Int64Array::from(vec![0; rows.len()])) as ArrayRef;
        let mut columns: Vec<ArrayRef> = Vec::new();
        if self.chunks {
            columns.push(strings(rows.iter().map(|_| Some(CHUNK_SCHEMA))));
            columns.push(strings(rows.iter().map(|r| r.0.as_deref())));
        }
        columns.extend([sizes(), zeros(), zeros(), sizes()]);
        columns.push(strings(rows.iter().map(|_| None)));
        table_of(schema, columns)
    }
}

/// What a per-relation scalar function computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Measure {
    /// `hypertable_size(rel)`: bytes; NULL for a plain table.
    HypertableSize,
    /// `approximate_row_count(rel)`: rows of any table (exact here).
    RowCount,
    /// `hypertable_index_size(index)`: bytes of a hypertable's index, which
    /// is a definition Tempora keeps in its catalog (no B-tree): 0. NULL
    /// for an index of a plain table.
    IndexSize,
}

#[derive(Debug)]
struct RelationMeasure {
    engine: Arc<Engine>,
    measure: Measure,
    name: &'static str,
    signature: Signature,
}

impl PartialEq for RelationMeasure {
    fn eq(&self, other: &Self) -> bool {
        self.measure == other.measure
    }
}

impl Eq for RelationMeasure {}

impl std::hash::Hash for RelationMeasure {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.measure.hash(state)
    }
}

impl RelationMeasure {
    fn value(&self, state: &CatalogState, rel: &str) -> Result<Option<i64>, TemporaError> {
        if self.measure == Measure::IndexSize {
            let (schema, name) = crate::split_qualified(rel);
            let table = state
                .tables
                .values()
                .find(|t| t.schema == schema && t.all_indexes().iter().any(|i| i.name == name))
                .ok_or_else(|| TemporaError::undefined_table(rel))?;
            return Ok(table.is_hypertable().then_some(0));
        }
        let table = relation(state, rel)?;
        Ok(match self.measure {
            Measure::HypertableSize => table
                .is_hypertable()
                .then(|| bytes_by_chunk(&self.engine, table).values().sum()),
            Measure::RowCount => {
                let files: u64 = table.all_files().map(|f| f.rows).sum();
                let mem: usize = self
                    .engine
                    .read_snapshot()
                    .memtable_rows(table.oid)
                    .values()
                    .flatten()
                    .map(|b| b.num_rows())
                    .sum();
                Some(files as i64 + mem as i64)
            }
            Measure::IndexSize => None,
        })
    }
}

impl ScalarUDFImpl for RelationMeasure {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let state = self.engine.catalog().snapshot();
        let rels = args.args[0].to_array(args.number_rows)?;
        let rels = datafusion::arrow::compute::cast(&rels, &DataType::Utf8)?;
        let rels = rels
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| TemporaError::internal("relation argument").into_datafusion())?;
        let mut out = Int64Builder::with_capacity(rels.len());
        for i in 0..rels.len() {
            if rels.is_null(i) {
                out.append_null();
                continue;
            }
            let v = self
                .value(&state, rels.value(i))
                .map_err(TemporaError::into_datafusion)?;
            out.append_option(v);
        }
        let array: ArrayRef = Arc::new(out.finish());
        crate::pg_types::result_value(array, rels.len() == 1 && args.number_rows == 1)
    }
}

/// `hypertable_size(regclass) → bigint`, `approximate_row_count(regclass) → bigint`
/// and `hypertable_index_size(regclass) → bigint`.
pub fn relation_functions(engine: &Arc<Engine>) -> Vec<ScalarUDF> {
    [
        ("hypertable_size", Measure::HypertableSize),
        ("approximate_row_count", Measure::RowCount),
        ("hypertable_index_size", Measure::IndexSize),
    ]
    .into_iter()
    .map(|(name, measure)| {
        ScalarUDF::new_from_impl(RelationMeasure {
            engine: engine.clone(),
            measure,
            name,
            signature: Signature::any(1, Volatility::Volatile),
        })
    })
    .collect()
}
