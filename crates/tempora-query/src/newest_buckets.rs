//! The newest (or oldest) few buckets of a hypertable without aggregating
//! every row of the WHERE's range.
//!
//! `SELECT time_bucket('1 minute', time) AS minute, max(v) FROM t
//! WHERE time < $bound GROUP BY minute ORDER BY minute DESC LIMIT 5` asks for
//! five buckets; planned as written it aggregates every row before the
//! bound and keeps five groups. TimescaleDB reads its chunks newest first
//! and stops. Here the statement is first run with one more condition,
//! `time >= L`, where L is the start of a bucket a few buckets below the
//! newest the WHERE and the table's files allow. Every group the narrowed
//! statement aggregates is whole (the bucket of any row at or after L
//! starts at or after L), and every group it leaves out has an older
//! bucket, so it sorts after all of those. When the narrowed statement
//! returns all the rows its LIMIT asks for, they are the answer. When it
//! returns fewer (gaps in the data, a HAVING that drops groups), a window
//! [`WIDEN`] times wider is tried, and finally the statement as written.
//! `ORDER BY bucket ASC` is the mirror image (`time < U` above the oldest
//! bucket).
//!
//! [`NewestBuckets::find`] recognises the optimized plan: a Sort with a
//! fetch (or a Limit over a Sort) whose first key is, through projections
//! and a HAVING filter, a grouping key `time_bucket(interval, time)` of a
//! plain GROUP BY over filters on one hypertable's scan, with no volatile
//! expression anywhere. The width must be a fixed interval (no months) of
//! the two-argument form, whose buckets are aligned to fixed boundaries.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{
    col, lit, Expr, FetchType, Filter, LogicalPlan, SkipType, TableScan,
};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;

use crate::provider::{time_bounds, TemporaTable};

/// How much wider each retry's window is than the one before.
const WIDEN: i64 = 16;
/// Narrowed runs tried before the statement as written.
const ATTEMPTS: u32 = 3;

/// A statement of the recognised shape; see the module documentation.
#[derive(Debug, Clone)]
pub struct NewestBuckets {
    /// Rows the statement returns when the window holds enough groups
    /// (its LIMIT; with an OFFSET, the rows after it).
    pub rows: usize,
    /// Groups the window must hold: OFFSET + LIMIT.
    groups: i64,
    descending: bool,
    width: Expr,
    /// The bucket width in microseconds.
    width_us: i64,
    time: Column,
    tz: Option<Arc<str>>,
    /// The newest (descending) or oldest (ascending) time the statement can
    /// see: the WHERE's bound or the table's files', whichever is nearer.
    edge: i64,
    /// The other end of what the table's files hold: a window reaching past
    /// it is the whole statement.
    far: i64,
}

/// Whether `plan` (as planned, before optimizing) may be of the shape:
/// projections over a LIMIT or an ORDER BY. Other statements run as they
/// always do.
pub fn candidate(plan: &LogicalPlan) -> bool {
    let mut node = plan;
    while let LogicalPlan::Projection(p) = node {
        node = p.input.as_ref();
    }
    matches!(node, LogicalPlan::Limit(_) | LogicalPlan::Sort(_))
}

impl NewestBuckets {
    /// The shape in `plan` (an optimized plan), if it is one.
    pub fn find(plan: &LogicalPlan) -> Option<NewestBuckets> {
        let mut node = plan;
        while let LogicalPlan::Projection(p) = node {
            node = p.input.as_ref();
        }
        let (skip, fetch, sort) = match node {
            LogicalPlan::Limit(limit) => {
                let SkipType::Literal(skip) = limit.get_skip_type().ok()? else {
                    return None;
                };
                let FetchType::Literal(Some(fetch)) = limit.get_fetch_type().ok()? else {
                    return None;
                };
                let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
                    return None;
                };
                (skip, fetch, sort)
            }
            LogicalPlan::Sort(sort) => (0, sort.fetch?, sort),
            _ => return None,
        };
        let first = sort.expr.first()?;
        if sort.expr.iter().any(|s| s.expr.is_volatile()) {
            return None;
        }
        let Expr::Column(mut key) = first.expr.clone() else {
            return None;
        };
        // Down to the aggregate, following the sort key.
        let mut node = sort.input.as_ref();
        let aggregate = loop {
            match node {
                LogicalPlan::Projection(p) => {
                    let i = p.schema.index_of_column(&key).ok()?;
                    let Expr::Column(c) = p.expr.get(i)?.clone().unalias() else {
                        return None;
                    };
                    if p.expr.iter().any(Expr::is_volatile) {
                        return None;
                    }
                    key = c;
                    node = p.input.as_ref();
                }
                LogicalPlan::Filter(f) if !f.predicate.is_volatile() => node = f.input.as_ref(),
                LogicalPlan::Aggregate(a) => break a,
                _ => return None,
            }
        };
        let i = aggregate.schema.index_of_column(&key).ok()?;
        if i >= aggregate.group_expr.len()
            || aggregate
                .group_expr
                .iter()
                .chain(&aggregate.aggr_expr)
                .any(|e| matches!(e, Expr::GroupingSet(_)) || e.is_volatile())
        {
            return None;
        }
        let Expr::ScalarFunction(ScalarFunction { func, args }) =
            aggregate.group_expr[i].clone().unalias()
        else {
            return None;
        };
        if func.name() != "time_bucket" || args.len() != 2 {
            return None;
        }
        let width_us = match &args[0] {
            Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(iv)), _) if iv.months == 0 => {
                let us = i64::from(iv.days)
                    .checked_mul(86_400_000_000)?
                    .checked_add(iv.nanoseconds / 1000)?;
                (us > 0 && iv.nanoseconds % 1000 == 0).then_some(us)?
            }
            _ => return None,
        };
        let Expr::Column(time) = &args[1] else {
            return None;
        };
        // Down to the hypertable's scan.
        let mut node = aggregate.input.as_ref();
        let scan = loop {
            match node {
                LogicalPlan::Filter(f) if !f.predicate.is_volatile() => node = f.input.as_ref(),
                LogicalPlan::TableScan(scan) => break scan,
                _ => return None,
            }
        };
        if scan.fetch.is_some() || scan.filters.iter().any(Expr::is_volatile) {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let table = provider.downcast_ref::<TemporaTable>()?;
        let def = table.def();
        let dimension = def.hypertable.as_ref()?;
        if dimension.time_column != time.name {
            return None;
        }
        let field = scan
            .projected_schema
            .field_with_unqualified_name(&time.name)
            .ok()?;
        let tz = match field.data_type() {
            datafusion::arrow::datatypes::DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Microsecond,
                tz,
            ) => tz.clone(),
            _ => return None,
        };
        let files = def.all_files();
        let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
        for f in files {
            oldest = oldest.min(f.min_time?);
            newest = newest.max(f.max_time?);
        }
        if oldest > newest {
            return None;
        }
        let bounds = time_bounds(&scan.filters, &time.name);
        let descending = !first.asc;
        let (edge, far) = if descending {
            let upper = bounds.upper.map_or(newest, |u| u.saturating_sub(1));
            (upper.min(newest), oldest)
        } else {
            (bounds.lower.map_or(oldest, |l| l.max(oldest)), newest)
        };
        Some(NewestBuckets {
            rows: fetch,
            groups: i64::try_from(skip.checked_add(fetch)?).ok()?,
            descending,
            width: args[0].clone(),
            width_us,
            time: time.clone(),
            tz,
            edge,
            far,
        })
    }

    /// `plan` with the time condition of attempt `attempt` (0, 1, ...), or
    /// None when that window would hold everything the files hold (run the
    /// statement as written).
    pub fn narrowed(&self, plan: &LogicalPlan, attempt: u32) -> DfResult<Option<LogicalPlan>> {
        match self.bound(attempt)? {
            Some(bound) => with_window(plan, &self.condition(bound)).map(Some),
            None => Ok(None),
        }
    }

    /// The time condition of a window ending at `bound`.
    fn condition(&self, bound: i64) -> Expr {
        let time = col(self.time.clone());
        let at = lit(ScalarValue::TimestampMicrosecond(
            Some(bound),
            self.tz.clone(),
        ));
        if self.descending {
            time.gt_eq(at)
        } else {
            time.lt(at)
        }
    }

    /// The window's far end: its lowest time (descending, inclusive) or its
    /// highest (ascending, exclusive), a bucket boundary.
    fn bound(&self, attempt: u32) -> DfResult<Option<i64>> {
        if attempt >= ATTEMPTS {
            return Ok(None);
        }
        let buckets = WIDEN
            .checked_pow(attempt)
            .and_then(|w| w.checked_mul(self.groups));
        let Some(span) = buckets.and_then(|b| b.checked_mul(self.width_us)) else {
            return Ok(None);
        };
        // The start of the bucket holding the edge, through time_bucket
        // itself so that boundaries are exactly its own.
        let edge = lit(ScalarValue::TimestampMicrosecond(
            Some(self.edge),
            self.tz.clone(),
        ));
        let call = Expr::ScalarFunction(ScalarFunction {
            func: Arc::new(crate::time_bucket::time_bucket_udf()),
            args: vec![self.width.clone(), edge],
        });
        let folded = ExprSimplifier::new(SimplifyContext::default()).simplify(call)?;
        let Expr::Literal(ScalarValue::TimestampMicrosecond(Some(start), _), _) = folded else {
            return Ok(None);
        };
        Ok(if self.descending {
            // Buckets start, start - w, ..., down to the window's lowest.
            start
                .checked_sub(span - self.width_us)
                .filter(|lower| *lower > self.far)
        } else {
            start.checked_add(span).filter(|upper| *upper <= self.far)
        })
    }

    /// What EXPLAIN shows: `plan` narrowed to the first window, and a line
    /// saying so; None when the statement runs as written.
    pub fn first_window(&self, plan: &LogicalPlan) -> DfResult<Option<(LogicalPlan, String)>> {
        let Some(bound) = self.bound(0)? else {
            return Ok(None);
        };
        let at = chrono::DateTime::from_timestamp_micros(bound)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string())
            .unwrap_or_else(|| bound.to_string());
        let note = format!(
            "{} buckets first: runs with {} {} '{at}', then in windows {WIDEN} times wider \
             and over the whole range while fewer than {} rows come back",
            if self.descending { "Newest" } else { "Oldest" },
            self.time.name,
            if self.descending { ">=" } else { "<" },
            self.rows
        );
        Ok(Some((with_window(plan, &self.condition(bound))?, note)))
    }
}

/// `plan` with `condition` on its hypertable's scan.
fn with_window(plan: &LogicalPlan, condition: &Expr) -> DfResult<LogicalPlan> {
    plan.clone()
        .transform_up(|node| match node {
            LogicalPlan::TableScan(scan) => {
                Ok(Transformed::yes(with_condition(scan, condition.clone())?))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
}

/// The scan with `condition` among its pushed filters (pruning chunks,
/// files and row groups) and in a Filter above it (the scan's filters are
/// inexact).
fn with_condition(mut scan: TableScan, condition: Expr) -> DfResult<LogicalPlan> {
    scan.filters.push(condition.clone());
    let scan = LogicalPlan::TableScan(scan);
    Ok(LogicalPlan::Filter(Filter::try_new(
        condition,
        Arc::new(scan),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::IntervalMonthDayNano;

    const MINUTE: i64 = 60_000_000;
    /// 2016-01-01 00:00:00 UTC.
    const DAY_START: i64 = 1_451_606_400_000_000;

    fn newest(descending: bool, edge: i64, far: i64) -> NewestBuckets {
        NewestBuckets {
            rows: 5,
            groups: 5,
            descending,
            width: lit(ScalarValue::IntervalMonthDayNano(Some(
                IntervalMonthDayNano::new(0, 0, 60_000_000_000),
            ))),
            width_us: MINUTE,
            time: Column::from_name("time"),
            tz: Some("UTC".into()),
            edge,
            far,
        }
    }

    #[test]
    fn windows_start_on_bucket_boundaries_and_widen() {
        // The edge at 23:11:53.985195: its bucket starts at 23:11:00.
        let edge = DAY_START + 23 * 60 * MINUTE + 11 * MINUTE + 53_985_195;
        let start = DAY_START + (23 * 60 + 11) * MINUTE;
        let nb = newest(true, edge, DAY_START);
        // Five buckets: 23:07 .. 23:11; then 80, then 1,280; then the
        // whole statement.
        assert_eq!(nb.bound(0).unwrap(), Some(start - 4 * MINUTE));
        assert_eq!(nb.bound(1).unwrap(), Some(start - 79 * MINUTE));
        assert_eq!(nb.bound(2).unwrap(), Some(start - 1279 * MINUTE));
        assert_eq!(nb.bound(ATTEMPTS).unwrap(), None);
        // A window reaching the oldest row is the whole statement.
        let nb = newest(true, edge, start - 1279 * MINUTE);
        assert_eq!(nb.bound(1).unwrap(), Some(start - 79 * MINUTE));
        assert_eq!(nb.bound(2).unwrap(), None);
        let empty = datafusion::logical_expr::LogicalPlanBuilder::empty(false)
            .build()
            .unwrap();
        let (_, text) = nb.first_window(&empty).unwrap().unwrap();
        assert!(text.contains("time >= '2016-01-01 23:07:00+00'"), "{text}");

        // Oldest first: from the bucket holding the edge, five buckets up.
        let nb = newest(false, DAY_START + 30_000_000, DAY_START + 12 * 60 * MINUTE);
        assert_eq!(nb.bound(0).unwrap(), Some(DAY_START + 5 * MINUTE));
        assert_eq!(nb.bound(1).unwrap(), Some(DAY_START + 80 * MINUTE));
        assert_eq!(nb.bound(2).unwrap(), None);
    }
}
