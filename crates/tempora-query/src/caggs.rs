//! The SQL a continuous aggregate is read and refreshed with.
//!
//! A continuous aggregate's rows live in its materialization hypertable;
//! reading the view reads that table, and with `materialized_only = false`
//! also aggregates the raw rows past the watermark on the fly:
//!
//! ```text
//! SELECT cols FROM _timescaledb_internal._materialized_hypertable_N WHERE bucket < wm
//! UNION ALL
//! <the aggregate's query> with time >= wm added to its WHERE
//! ```
//!
//! The bounds are literals of the time column's type, so chunk exclusion
//! works on both sides.

use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, SetExpr, Statement};
use tempora_catalog::{quote_identifier, CatalogState, ContinuousAgg, PgType, ViewDef};
use tempora_common::{sql_parser, Result, TemporaError};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A time value (microseconds for temporal types, as catalog ranges hold
/// them) as a SQL literal of type `ty`.
pub fn time_literal(ty: &PgType, v: i64) -> String {
    match ty {
        PgType::Date => format!(
            "arrow_cast({}, 'Date32')",
            v.div_euclid(MICROS_PER_DAY)
                .clamp(i32::MIN as i64, i32::MAX as i64)
        ),
        PgType::Timestamptz | PgType::Timestamp => {
            format!("arrow_cast({v}, '{}')", ty.arrow_type())
        }
        _ => v.to_string(),
    }
}

/// `qualified.name` of a table, quoted as needed.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_identifier(schema), quote_identifier(name))
}

/// The aggregate's query restricted to raw rows with time in one of
/// `ranges` (`[start, end)`; None ends are open).
pub fn ranged_query(
    cagg: &ContinuousAgg,
    time_type: &PgType,
    ranges: &[(Option<i64>, Option<i64>)],
) -> Result<String> {
    let col = match &cagg.time_relation {
        Some(r) => format!(
            "{}.{}",
            quote_identifier(r),
            quote_identifier(&cagg.time_column)
        ),
        None => quote_identifier(&cagg.time_column),
    };
    let one = |(start, end): &(Option<i64>, Option<i64>)| {
        let mut parts = Vec::new();
        if let Some(s) = start {
            parts.push(format!("{col} >= {}", time_literal(time_type, *s)));
        }
        if let Some(e) = end {
            parts.push(format!("{col} < {}", time_literal(time_type, *e)));
        }
        if parts.is_empty() {
            "TRUE".to_string()
        } else {
            format!("({})", parts.join(" AND "))
        }
    };
    let predicate = ranges.iter().map(one).collect::<Vec<_>>().join(" OR ");
    with_predicate(&cagg.query, &predicate)
}

/// `query` (one SELECT) with `predicate` ANDed into its WHERE.
fn with_predicate(query: &str, predicate: &str) -> Result<String> {
    let mut stmts = sql_parser::parse_statements(query)
        .map_err(|e| TemporaError::internal(format!("continuous aggregate query: {e}")))?;
    let pred: SqlExpr = sql_parser::parse_expr(predicate)
        .map_err(|e| TemporaError::internal(format!("continuous aggregate bound: {e}")))?;
    let Some(Statement::Query(q)) = stmts.first_mut() else {
        return Err(TemporaError::internal(
            "continuous aggregate query is not a query",
        ));
    };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return Err(TemporaError::internal(
            "continuous aggregate query is not a SELECT",
        ));
    };
    select.selection = Some(match select.selection.take() {
        Some(w) => SqlExpr::BinaryOp {
            left: Box::new(SqlExpr::Nested(Box::new(w))),
            op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
            right: Box::new(SqlExpr::Nested(Box::new(pred))),
        },
        None => pred,
    });
    Ok(stmts[0].to_string())
}

/// The time column type of the table an aggregate reads.
pub fn raw_time_type(state: &CatalogState, cagg: &ContinuousAgg) -> Result<PgType> {
    state
        .table_by_oid(cagg.raw_oid)
        .and_then(|t| t.column(&cagg.time_column))
        .map(|c| c.ty.clone())
        .ok_or_else(|| TemporaError::internal("continuous aggregate lost its raw hypertable"))
}

/// What reading the view means now: its materialization, and unless
/// materialized-only, the live aggregate of the rows past the watermark.
pub fn read_sql(state: &CatalogState, view: &ViewDef, cagg: &ContinuousAgg) -> Result<String> {
    let mat = state
        .table_by_oid(cagg.mat_oid)
        .ok_or_else(|| TemporaError::internal("continuous aggregate lost its materialization"))?;
    let cols: Vec<String> = mat
        .columns
        .iter()
        .map(|c| quote_identifier(&c.name))
        .collect();
    let materialized = format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        qualified(&mat.schema, &mat.name)
    );
    if cagg.materialized_only {
        return Ok(materialized);
    }
    let Some(watermark) = cagg.watermark else {
        // Nothing materialized: everything is live.
        return Ok(format!(
            "SELECT {} FROM ({}) AS {}",
            cols.join(", "),
            cagg.query,
            quote_identifier(&view.name)
        ));
    };
    let bucket_type = mat
        .column(&cagg.bucket_column)
        .map(|c| c.ty.clone())
        .ok_or_else(|| TemporaError::internal("materialization without its bucket column"))?;
    let live = ranged_query(
        cagg,
        &raw_time_type(state, cagg)?,
        &[(Some(watermark), None)],
    )?;
    Ok(format!(
        "{materialized} WHERE {} < {} UNION ALL SELECT {} FROM ({live}) AS {}",
        quote_identifier(&cagg.bucket_column),
        time_literal(&bucket_type, watermark),
        cols.join(", "),
        quote_identifier(&view.name)
    ))
}
