//! EXPLAIN as PostgreSQL returns it: one text column, `QUERY PLAN`, one row
//! per line. The lines are DataFusion's physical plan (with rows and time
//! per operator under EXPLAIN ANALYZE; every plan DataFusion made under
//! EXPLAIN VERBOSE), followed by one line per hypertable scan saying how many
//! chunks the query's time filters excluded.

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use tempora_common::{Result, TemporaError};
use tempora_query::newest_buckets::{self, NewestBuckets};
use tempora_query::provider::ScanInfo;

const COLUMN: &str = "QUERY PLAN";

/// Whether the plan is an EXPLAIN (with or without ANALYZE), and if so
/// whether VERBOSE.
pub(crate) fn explain_kind(plan: &LogicalPlan) -> Option<bool> {
    match plan {
        LogicalPlan::Explain(e) => Some(e.verbose),
        LogicalPlan::Analyze(a) => Some(a.verbose),
        _ => None,
    }
}

/// The EXPLAIN of a statement that runs over its newest buckets first
/// (`tempora_query::newest_buckets`) explains its first window, and the
/// line it returns says so.
pub(crate) fn with_first_window(
    state: &SessionState,
    plan: LogicalPlan,
) -> Result<(LogicalPlan, Option<String>)> {
    let inner = match &plan {
        LogicalPlan::Explain(e) => e.plan.as_ref(),
        LogicalPlan::Analyze(a) => a.input.as_ref(),
        _ => return Ok((plan, None)),
    };
    if !newest_buckets::candidate(inner) {
        return Ok((plan, None));
    }
    let first = || -> datafusion::error::Result<Option<(LogicalPlan, String)>> {
        let optimized = state.optimize(inner)?;
        let Some(shape) = NewestBuckets::find(&optimized) else {
            return Ok(None);
        };
        shape.first_window(&optimized)
    };
    let Some((narrowed, note)) = first().map_err(TemporaError::from_datafusion)? else {
        return Ok((plan, None));
    };
    let plan = match plan {
        LogicalPlan::Explain(mut e) => {
            e.plan = Arc::new(narrowed);
            LogicalPlan::Explain(e)
        }
        LogicalPlan::Analyze(mut a) => {
            a.input = Arc::new(narrowed);
            LogicalPlan::Analyze(a)
        }
        other => other,
    };
    Ok((plan, Some(note)))
}

pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(COLUMN, DataType::Utf8, false)]))
}

/// The plan types of DataFusion's EXPLAIN output that PostgreSQL's shows:
/// the plan that runs.
fn shown(plan_type: &str, verbose: bool) -> bool {
    verbose || plan_type == "physical_plan" || plan_type == "Plan with Metrics"
}

/// Turns DataFusion's `(plan_type, plan)` rows into `QUERY PLAN` lines.
pub(crate) fn render(
    batches: &[RecordBatch],
    verbose: bool,
    scans: &[ScanInfo],
    note: Option<String>,
) -> Result<RecordBatch> {
    let mut lines: Vec<String> = Vec::new();
    for b in batches {
        let column = |i: usize| {
            b.columns()
                .get(i)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| TemporaError::internal("EXPLAIN output of an unknown shape"))
        };
        let (types, plans) = (column(0)?, column(1)?);
        for row in 0..b.num_rows() {
            if types.is_null(row) || plans.is_null(row) || !shown(types.value(row), verbose) {
                continue;
            }
            if verbose {
                lines.push(format!("{}:", types.value(row)));
            }
            lines.extend(
                plans
                    .value(row)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(crate::naming::without_hidden_suffixes),
            );
        }
    }
    for s in scans.iter().filter(|s| s.hypertable) {
        lines.push(format!(
            "Hypertable {}: {} of {} chunks scanned ({} excluded), {} files, {} unflushed batches",
            s.table,
            s.chunks_scanned,
            s.chunks_total,
            s.chunks_total - s.chunks_scanned,
            s.files,
            s.memtable_batches
        ));
    }
    lines.extend(note);
    RecordBatch::try_new(schema(), vec![Arc::new(StringArray::from(lines))])
        .map_err(|e| TemporaError::internal(e.to_string()))
}
