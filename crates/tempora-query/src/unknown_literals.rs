//! Untyped string literals beside a date, time, timestamp or interval take
//! that type, as PostgreSQL resolves its `unknown` literals.
//!
//! In PostgreSQL `'23 hours'` has no type until an operator or a neighbour
//! gives it one: `interval '1 day' > '23 hours'` compares two intervals,
//! `date '2024-01-10' - '2024-01-01'` subtracts two dates (9), `now() + '1
//! hour'` adds an interval, `flag = 'yes'` compares booleans, and `x IN ('1 day', '2 days')` or `x BETWEEN '1
//! day' AND '2 days'` read the literals as `x`'s type. DataFusion reads the
//! literal as text and finds no operator (`Interval > Utf8`), or compares
//! as text.
//!
//! A binary operator is typed while the statement is planned
//! ([`UnknownOperands`], an expression planner: DataFusion checks the
//! operator's types before any analyzer rule runs); `IN`, `BETWEEN`, a
//! `CASE`'s compared values and `coalesce`-like calls are typed by
//! [`crate::operand_types::PgOperandTypes`] with [`type_unknowns`], before
//! type coercion. The literal becomes a cast, which the cast rules read as
//! PostgreSQL's input function would (`'abc'` is 22007 for an interval).

use datafusion::arrow::datatypes::{DataType, IntervalUnit};
use datafusion::common::{DFSchema, ExprSchema, Result, ScalarValue};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{cast, Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use tempora_common::{SqlState, TemporaError};

/// A quoted literal with no type of its own (`'1 day'`, not `'1 day'::text`).
fn is_unknown(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Literal(
            ScalarValue::Utf8(Some(_))
                | ScalarValue::LargeUtf8(Some(_))
                | ScalarValue::Utf8View(Some(_)),
            _
        )
    )
}

/// The type an unknown literal beside a value of type `t` takes: the
/// date/time types as they are, a duration (a timestamp difference) as an
/// interval. None for the types DataFusion already reads text against.
fn temporal(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Date32
        | DataType::Date64
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Timestamp(..)
        | DataType::Interval(_) => Some(t.clone()),
        DataType::Duration(_) => Some(DataType::Interval(IntervalUnit::MonthDayNano)),
        _ => None,
    }
}

/// Casts the unknown literals among `operands` to the date/time type of the
/// first typed one; says whether it cast any.
pub(crate) fn type_unknowns(operands: &mut [&mut Expr], schema: &dyn ExprSchema) -> bool {
    if !operands.iter().any(|e| is_unknown(e)) {
        return false;
    }
    let Some(target) = operands
        .iter()
        .filter(|e| !is_unknown(e))
        .find_map(|e| e.get_type(schema).ok())
        .and_then(|t| temporal(&t))
    else {
        return false;
    };
    for e in operands.iter_mut().filter(|e| is_unknown(e)) {
        **e = cast((**e).clone(), target.clone());
    }
    true
}

/// Plans a binary operator with one unknown operand beside a date/time
/// value; see the module documentation.
#[derive(Debug)]
pub struct UnknownOperands;

impl ExprPlanner for UnknownOperands {
    fn plan_binary_op(
        &self,
        mut expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let (left_unknown, right_unknown) = (is_unknown(&expr.left), is_unknown(&expr.right));
        if left_unknown == right_unknown {
            return Ok(PlannerResult::Original(expr));
        }
        let known = if left_unknown {
            &expr.right
        } else {
            &expr.left
        };
        let Some(known_type) = known.get_type(schema).ok() else {
            return Ok(PlannerResult::Original(expr));
        };
        let comparison = crate::jsonb::is_comparison(&expr.op);
        // `flag = 'yes'`: a boolean's input function reads the literal.
        let same = match temporal(&known_type) {
            Some(t) => t,
            None if comparison && known_type == DataType::Boolean => DataType::Boolean,
            None => return Ok(PlannerResult::Original(expr)),
        };
        let interval = DataType::Interval(IntervalUnit::MonthDayNano);
        use BinaryOperator::*;
        // PostgreSQL first tries the operator with both operands of the
        // known type; `+` has none for dates and timestamps, and takes an
        // interval.
        let target = match (&expr.op, &known_type) {
            _ if comparison => same,
            (Minus, _) => same,
            (Plus, DataType::Interval(_) | DataType::Duration(_)) => same,
            (Plus, DataType::Timestamp(..)) => interval,
            (Plus, DataType::Date32 | DataType::Date64) => {
                // date + integer, date + interval and date + time all take
                // an unknown operand.
                return Err(TemporaError::new(
                    SqlState::AMBIGUOUS_FUNCTION,
                    if left_unknown {
                        "operator is not unique: unknown + date"
                    } else {
                        "operator is not unique: date + unknown"
                    },
                )
                .with_hint(
                    "Could not choose a best candidate operator. You might need to add \
                     explicit type casts.",
                )
                .into_datafusion());
            }
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let unknown = if left_unknown {
            &mut expr.left
        } else {
            &mut expr.right
        };
        *unknown = cast(unknown.clone(), target);
        Ok(PlannerResult::Original(expr))
    }
}
