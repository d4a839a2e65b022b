//! Which chunks `show_chunks` and `drop_chunks` mean: the hypertable and the
//! `older_than` / `newer_than` cutoffs, read as TimescaleDB reads them.
//!
//! A cutoff is an absolute time of the time column's kind (timestamptz,
//! timestamp or date for temporal columns, an integer for integer columns) or,
//! for temporal columns, an interval counted back from now. A chunk is older
//! than a cutoff when it ends at or before it, newer when it starts at or
//! after it; with both, the chunks must satisfy both.

use std::sync::Arc;

use chrono::Utc;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::Session;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use tempora_catalog::{CatalogState, ChunkDef, PgType, TableDef, CHUNK_SCHEMA};
use tempora_common::{Result, SqlState, TemporaError};

/// A `show_chunks` / `drop_chunks` call resolved against one catalog state.
#[derive(Debug)]
pub struct ChunkSelection {
    pub table: TableDef,
    pub older_than: Option<i64>,
    pub newer_than: Option<i64>,
    /// Creation-time cutoffs in microseconds since the epoch: chunks created
    /// before / after them.
    pub created_before: Option<i64>,
    pub created_after: Option<i64>,
}

impl ChunkSelection {
    /// Resolves `(relation, older_than, newer_than, created_before,
    /// created_after)` as planned expressions; missing trailing arguments
    /// mean no cutoff. The creation cutoffs are times (or intervals back
    /// from now) whatever the time column's type, and do not combine with
    /// the others.
    pub fn resolve(session: &dyn Session, state: &CatalogState, args: &[Expr]) -> Result<Self> {
        let Some(rel) = args.first() else {
            return Err(TemporaError::new(
                SqlState::UNDEFINED_FUNCTION,
                "function show_chunks() does not exist",
            ));
        };
        let rel = text_argument(session, rel)?.ok_or_else(|| {
            TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid hypertable or continuous aggregate",
            )
        })?;
        let (table, time_type) = crate::hypertable_named(state, &rel)?;
        let cutoff = |i: usize| match args.get(i) {
            Some(e) => cutoff(session, e, &time_type),
            None => Ok(None),
        };
        let older_than = cutoff(1)?;
        let newer_than = cutoff(2)?;
        if let (Some(o), Some(n)) = (older_than, newer_than) {
            if o <= n {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "invalid time range",
                ));
            }
        }
        let created = |i: usize| match args.get(i) {
            Some(e) => self::cutoff(session, e, &PgType::Timestamptz),
            None => Ok(None),
        };
        let created_before = created(3)?;
        let created_after = created(4)?;
        if (older_than.is_some() || newer_than.is_some())
            && (created_before.is_some() || created_after.is_some())
        {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                // TimescaleDB's words, its missing space included.
                "cannot specify \"older_than\" or \"newer_than\" together with \"created_before\"or \"created_after\"",
            ));
        }
        Ok(Self {
            table: table.clone(),
            older_than,
            newer_than,
            created_before,
            created_after,
        })
    }

    /// The chunks selected, by chunk id.
    pub fn chunks(&self) -> Vec<&ChunkDef> {
        self.table
            .chunks
            .values()
            .filter(|c| {
                self.older_than.is_none_or(|o| c.range_end <= o)
                    && self.newer_than.is_none_or(|n| c.range_start >= n)
                    && self
                        .created_before
                        .is_none_or(|b| c.created_at.is_some_and(|t| t < b))
                    && self
                        .created_after
                        .is_none_or(|a| c.created_at.is_some_and(|t| t > a))
            })
            .collect()
    }

    /// A chunk's qualified name, as `show_chunks` prints it.
    pub fn chunk_name(&self, chunk: &ChunkDef) -> String {
        let id = self.table.hypertable.as_ref().map_or(0, |h| h.id);
        format!("{CHUNK_SCHEMA}.{}", chunk.name(id))
    }
}

/// A relation or other text argument given as a constant; None for NULL.
pub fn text_argument(session: &dyn Session, e: &Expr) -> Result<Option<String>> {
    match constant(session, e)? {
        ScalarValue::Utf8(s) | ScalarValue::Utf8View(s) | ScalarValue::LargeUtf8(s) => Ok(s),
        ScalarValue::Null => Ok(None),
        other => Err(TemporaError::new(
            SqlState::DATATYPE_MISMATCH,
            format!("relation must be given as text, not {}", other.data_type()),
        )),
    }
}

/// Folds a constant expression (casts, `now()`, arithmetic) to its value.
fn constant(session: &dyn Session, e: &Expr) -> Result<ScalarValue> {
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(DFSchema::empty()))
        .with_query_execution_start_time(Some(now(session)))
        .build();
    match ExprSimplifier::new(context)
        .simplify(e.clone())
        .map_err(TemporaError::from_datafusion)?
    {
        Expr::Literal(v, _) => Ok(v),
        other => Err(TemporaError::new(
            SqlState::INVALID_PARAMETER_VALUE,
            format!("argument must be a constant, not {other}"),
        )),
    }
}

/// The statement's `now()`.
fn now(session: &dyn Session) -> chrono::DateTime<Utc> {
    session
        .execution_props()
        .query_execution_start_time
        .unwrap_or_else(Utc::now)
}

/// PostgreSQL's name of the type an argument was given as: a quoted
/// literal is `unknown`, an integer literal that fits is `integer`.
fn pg_type_name(t: &DataType, untyped_text: bool, literal_i32: bool) -> String {
    match t {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 if untyped_text => "unknown",
        DataType::Int64 if literal_i32 => "integer",
        other => crate::pg_types::pg_type_name(other),
    }
    .to_string()
}

/// The error for a cutoff of the wrong type. An integer literal is planned as
/// bigint; PostgreSQL types it integer when it fits.
fn bad_type(e: &Expr, t: &DataType, untyped_text: bool) -> TemporaError {
    let literal_i32 =
        matches!(e, Expr::Literal(ScalarValue::Int64(Some(v)), _) if i32::try_from(*v).is_ok());
    TemporaError::new(
        SqlState::INVALID_PARAMETER_VALUE,
        format!(
            "invalid time argument type \"{}\"",
            pg_type_name(t, untyped_text, literal_i32)
        ),
    )
}

/// A cutoff argument in the time column's units; None when it is NULL.
fn cutoff(session: &dyn Session, e: &Expr, time_type: &PgType) -> Result<Option<i64>> {
    let empty = DFSchema::empty();
    let given = e.get_type(&empty).map_err(TemporaError::from_datafusion)?;
    // A quoted literal without a cast is PostgreSQL's `unknown`: it takes the
    // time column's type.
    let untyped_text = matches!(e, Expr::Literal(..)) && given.is_string();
    let temporal = time_type.is_temporal();
    let target = time_type.arrow_type();
    let value = match &given {
        DataType::Null => return Ok(None),
        t if untyped_text || t == &target => constant(
            session,
            &e.clone()
                .cast_to(&target, &empty)
                .map_err(TemporaError::from_datafusion)?,
        )?,
        DataType::Int16 | DataType::Int32 | DataType::Int64 if !temporal => {
            // An integer literal is planned as bigint; PostgreSQL would type
            // it integer. A cast to a wider type than the column's is refused.
            let literal = matches!(e, Expr::Literal(..));
            if !literal && int_width(&given) > int_width(&target) {
                return Err(bad_type(e, &given, false));
            }
            constant(session, e)?
        }
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 if temporal => {
            constant(session, e)?
        }
        DataType::Interval(_) if temporal => {
            return match constant(session, e)? {
                ScalarValue::IntervalMonthDayNano(Some(i)) => {
                    ago(session, i.months, i.days, i.nanoseconds / 1000).map(Some)
                }
                ScalarValue::IntervalDayTime(Some(i)) => {
                    ago(session, 0, i.days, i.milliseconds as i64 * 1000).map(Some)
                }
                ScalarValue::IntervalYearMonth(Some(m)) => ago(session, m, 0, 0).map(Some),
                _ => Ok(None),
            };
        }
        other => return Err(bad_type(e, other, untyped_text)),
    };
    Ok(scalar_units(&value))
}

fn int_width(t: &DataType) -> u8 {
    match t {
        DataType::Int16 => 2,
        DataType::Int32 => 4,
        _ => 8,
    }
}

/// A time or integer value in the time column's units (microseconds for
/// time); None for NULL or another type.
pub fn scalar_units(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampMicrosecond(t, _) => *t,
        ScalarValue::TimestampNanosecond(t, _) => t.map(|t| t.div_euclid(1000)),
        ScalarValue::TimestampMillisecond(t, _) => t.map(|t| t * 1000),
        ScalarValue::TimestampSecond(t, _) => t.map(|t| t * 1_000_000),
        ScalarValue::Date32(d) => d.map(|d| d as i64 * 86_400_000_000),
        ScalarValue::Date64(d) => d.map(|d| d * 1000),
        ScalarValue::Int16(v) => v.map(i64::from),
        ScalarValue::Int32(v) => v.map(i64::from),
        ScalarValue::Int64(v) => *v,
        _ => None,
    }
}

/// `now() - interval` in microseconds since the epoch.
fn ago(session: &dyn Session, months: i32, days: i32, micros: i64) -> Result<i64> {
    tempora_storage::jobs::before(now(session).timestamp_micros(), months, days, micros)
}
