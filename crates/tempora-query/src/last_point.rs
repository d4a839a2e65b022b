//! "Last point per series" without aggregating every row's every column.
//!
//! `SELECT DISTINCT ON (hostname) * FROM cpu ORDER BY hostname, time DESC`
//! is how TimescaleDB users ask for each series' newest row. DataFusion
//! answers DISTINCT ON with one `first_value(column ORDER BY time DESC)` per
//! selected column, grouped by the ON columns: every row of the table goes
//! through an ordered accumulator for every column it returns.
//!
//! This analyzer rule gives that DISTINCT ON a narrower input when it reads a
//! hypertable and its ORDER BY continues with the time dimension: the rows
//! whose time is their series' newest (or oldest, for `time ASC`),
//!
//! ```text
//! input JOIN (SELECT on_columns, max(time) FROM input GROUP BY on_columns)
//!       ON on_columns IS NOT DISTINCT FROM ... AND time = max(time)
//! ```
//!
//! The grouped `max` reads two or three columns; the join's probe side then
//! receives the build side's time bounds as a dynamic filter, so the second
//! scan reads only the row groups that hold some series' newest time
//! ([`CollectNewestTimes`] makes the join collect its build side whole, which
//! is what gives the probe scan a filter it can prune row groups with). DISTINCT
//! ON still runs on top (rows tied on the newest time are still one row each).
//! The result is the same: a hypertable's time column is never NULL, so the
//! newest row of a series is the one with the greatest time.
//!
//! When the input is the whole table and there is one ON column, the table's
//! series column, the grouped `max` reads only the newest chunks that hold
//! every series ([`crate::newest_series`]).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, NullEquality};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result as DfResult;
use datafusion::functions_aggregate::expr_fn::{max, min};
use datafusion::logical_expr::{
    col, Distinct, DistinctOn, Expr, JoinType, LogicalPlan, LogicalPlanBuilder, SortExpr,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::ExecutionPlan;

use crate::provider::TemporaTable;

/// The analyzer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct LastPointJoin;

/// The subquery holding each series' newest time.
const ALIAS: &str = "__tempora_last_point";
/// Its time column.
const TIME: &str = "__tempora_last_time";

impl AnalyzerRule for LastPointJoin {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Distinct(Distinct::On(on)) => match narrowed_input(&on)? {
                Some(input) => Ok(Transformed::yes(LogicalPlan::Distinct(Distinct::On(
                    DistinctOn::try_new(on.on_expr, on.select_expr, on.sort_expr, input)?,
                )))),
                None => Ok(Transformed::no(LogicalPlan::Distinct(Distinct::On(on)))),
            },
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tempora_last_point_join"
    }
}

/// The DISTINCT ON's input joined with each series' newest (oldest) time, or
/// None when the statement is not of the shape this rule knows to be
/// equivalent.
fn narrowed_input(on: &DistinctOn) -> DfResult<Option<Arc<LogicalPlan>>> {
    let Some(sort) = &on.sort_expr else {
        return Ok(None);
    };
    let keys: Option<Vec<Column>> = on
        .on_expr
        .iter()
        .map(|e| match e {
            Expr::Column(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    let Some(keys) = keys else {
        return Ok(None);
    };
    let Some(SortExpr {
        expr: Expr::Column(time),
        asc,
        ..
    }) = sort.get(keys.len())
    else {
        return Ok(None);
    };
    if keys.contains(time) || time_column_of(&on.input).as_deref() != Some(time.name.as_str()) {
        return Ok(None);
    }
    let input = on.input.as_ref().clone();
    let bound = if *asc {
        min(col(time.clone()))
    } else {
        max(col(time.clone()))
    };
    // The aggregate may skip chunks whose series all have newer rows
    // (crate::newest_series); it is read as a whole otherwise.
    let mut newest = LogicalPlanBuilder::from(input.clone());
    if !*asc && keys.len() == 1 && unfiltered(&input) {
        newest = newest.filter(crate::newest_series::newest_per_series(
            col(keys[0].clone()),
            col(time.clone()),
        ))?;
    }
    let newest = newest
        .aggregate(keys.iter().cloned().map(col), vec![bound.alias(TIME)])?
        .alias(ALIAS)?
        .build()?;
    // The newest times are the join's left (build) side: a few rows per
    // series, whose bounds then prune the scan of the right side.
    let mut newest_keys: Vec<Column> = keys
        .iter()
        .map(|k| Column::new(Some(ALIAS), k.name.clone()))
        .collect();
    newest_keys.push(Column::new(Some(ALIAS), TIME));
    let mut input_keys = keys.clone();
    input_keys.push(time.clone());
    let columns: Vec<Expr> = input.schema().columns().into_iter().map(col).collect();
    let joined = LogicalPlanBuilder::from(newest)
        .join_detailed(
            input,
            JoinType::Inner,
            (newest_keys, input_keys),
            None,
            NullEquality::NullEqualsNull,
        )?
        .project(columns)?
        .build()?;
    Ok(Some(Arc::new(joined)))
}

/// The name of the hypertable time column `plan` passes through unchanged:
/// `plan` is a hypertable's scan under filters, aliases and projections of
/// plain columns, all deterministic (the input is read twice).
fn time_column_of(plan: &LogicalPlan) -> Option<String> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if scan.fetch.is_some() || scan.filters.iter().any(Expr::is_volatile) {
                return None;
            }
            let provider = source_as_provider(&scan.source).ok()?;
            let table = provider.downcast_ref::<TemporaTable>()?;
            let time = &table.def().hypertable.as_ref()?.time_column;
            scan.projected_schema
                .fields()
                .iter()
                .any(|f| f.name() == time)
                .then(|| time.clone())
        }
        LogicalPlan::Filter(f) if !f.predicate.is_volatile() => time_column_of(&f.input),
        LogicalPlan::SubqueryAlias(a) => time_column_of(&a.input),
        LogicalPlan::Projection(p) => {
            let time = time_column_of(&p.input)?;
            p.expr
                .iter()
                .any(|e| matches!(e, Expr::Column(c) if c.name == time))
                .then_some(time)
                .filter(|_| p.expr.iter().all(|e| matches!(e, Expr::Column(_))))
        }
        _ => None,
    }
}

/// Whether `plan` (of the shape [`time_column_of`] accepts) reads every row
/// of its table: no filter on the way down.
fn unfiltered(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => scan.filters.is_empty(),
        LogicalPlan::SubqueryAlias(a) => unfiltered(&a.input),
        LogicalPlan::Projection(p) => unfiltered(&p.input),
        _ => false,
    }
}

/// A physical optimizer rule, run right after DataFusion's join selection:
/// the join [`LastPointJoin`] plans builds one hash table of every series'
/// newest time (`CollectLeft`) instead of partitioning both sides by hash.
///
/// The planner cannot tell how many series there are (the table keeps no
/// distinct counts), so it partitions; a partitioned join's dynamic filter
/// is a per-partition `CASE` that row-group statistics cannot prune with,
/// and the probe scan would read the whole table again. One row per series
/// is small by construction.
#[derive(Debug, Default)]
pub struct CollectNewestTimes;

impl PhysicalOptimizerRule for CollectNewestTimes {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if *join.partition_mode() == PartitionMode::CollectLeft
                || join.left().schema().field_with_name(TIME).is_err()
            {
                return Ok(Transformed::no(node));
            }
            let collected = join
                .builder()
                .with_partition_mode(PartitionMode::CollectLeft)
                .build_exec()?;
            Ok(Transformed::yes(collected))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "tempora_collect_newest_times"
    }

    fn schema_check(&self) -> bool {
        true
    }
}
