//! Arithmetic that fails where PostgreSQL's does.
//!
//! Integers:
//! DataFusion adds, subtracts, multiplies and negates integers with
//! wrapping kernels: `2147483647 + 1` is -2147483648 and an `UPDATE ... SET
//! c = c + 1` can store a wrapped value. PostgreSQL raises 22003 (`integer
//! out of range`, `bigint out of range`, `smallint out of range`). The
//! analyzer rule [`crate::pg_casts::PgIntegerCasts`] calls [`rewrite`] on
//! every expression after type coercion: `+`, `-`, `*` of two operands of
//! one integer type, and `-` of one, become calls of `int_add`, `int_sub`,
//! `int_mul`, `int_neg`, which use Arrow's checked kernels. They are
//! immutable, so constant operands still fold at planning time.
//!
//! Floats: `/` of two `double precision` (or two `real`) operands becomes
//! `float_div`, which raises 22012 `division by zero` for a zero divisor
//! (DataFusion answers `Infinity` or `NaN`; PostgreSQL lets `NaN / 0` be
//! `NaN`), and `+ - * /` raise 22003 `value out of range: overflow` where
//! finite operands give an infinite result, and `* /` `value out of range:
//! underflow` where nonzero ones give zero, as PostgreSQL's float operators
//! do.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::{cast::cast, numeric};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int16Type, Int32Type, Int64Type};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{ExprSchema, Result};
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

use crate::pg_math::error;
use crate::pg_types::{argument_arrays, result_value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
    Neg,
    FloatAdd,
    FloatSub,
    FloatMul,
    FloatDiv,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "int_add",
            Op::Sub => "int_sub",
            Op::Mul => "int_mul",
            Op::Neg => "int_neg",
            Op::FloatAdd => "float_add",
            Op::FloatSub => "float_sub",
            Op::FloatMul => "float_mul",
            Op::FloatDiv => "float_div",
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedInt {
    op: Op,
    signature: Signature,
}

/// The functions, made once.
static UDFS: std::sync::LazyLock<Vec<Arc<ScalarUDF>>> = std::sync::LazyLock::new(checked_int_udfs);

fn checked_int_udfs() -> Vec<Arc<ScalarUDF>> {
    [
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::Neg,
        Op::FloatAdd,
        Op::FloatSub,
        Op::FloatMul,
        Op::FloatDiv,
    ]
    .into_iter()
    .map(|op| {
        let arity = if op == Op::Neg { 1 } else { 2 };
        Arc::new(ScalarUDF::new_from_impl(CheckedInt {
            op,
            signature: Signature::any(arity, Volatility::Immutable),
        }))
    })
    .collect()
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64)
}

fn is_int(t: &DataType) -> bool {
    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

/// PostgreSQL's 22003 for a result outside `t`.
fn out_of_range(t: &DataType) -> datafusion::error::DataFusionError {
    let name = match t {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        _ => "bigint",
    };
    TemporaError::new(
        SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("{name} out of range"),
    )
    .into_datafusion()
}

impl ScalarUDFImpl for CheckedInt {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, scalar) = argument_arrays(&args)?;
        let t = arrays[0].data_type().clone();
        if is_float(&t) {
            return result_value(float_op(self.op, &arrays[0], &arrays[1])?, scalar);
        }
        let out = match self.op {
            Op::Neg => negate(&arrays[0]),
            op => {
                let kernel = match op {
                    Op::Add => numeric::add,
                    Op::Sub => numeric::sub,
                    _ => numeric::mul,
                };
                kernel(&arrays[0], &arrays[1]).map_err(|e| e.to_string())
            }
        };
        match out {
            Ok(out) => result_value(out, scalar),
            Err(_) => Err(out_of_range(&t)),
        }
    }
}

fn negate(a: &ArrayRef) -> std::result::Result<ArrayRef, String> {
    fn neg<T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
        a: &ArrayRef,
        checked: impl Fn(T::Native) -> Option<T::Native>,
    ) -> std::result::Result<ArrayRef, String> {
        let a = a.as_primitive::<T>();
        let out = a
            .try_unary::<_, T, _>(|v| {
                checked(v).ok_or(datafusion::arrow::error::ArrowError::ComputeError(
                    String::new(),
                ))
            })
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(out))
    }
    match a.data_type() {
        DataType::Int16 => neg::<Int16Type>(a, i16::checked_neg),
        DataType::Int32 => neg::<Int32Type>(a, i32::checked_neg),
        _ => neg::<Int64Type>(a, i64::checked_neg),
    }
}

/// `l op r` of two float arrays of one type, with PostgreSQL's errors.
fn float_op(op: Op, l: &ArrayRef, r: &ArrayRef) -> Result<ArrayRef> {
    let as_f64 = |a: &ArrayRef| -> Result<ArrayRef> { Ok(cast(a, &DataType::Float64)?) };
    let (lf, rf) = (as_f64(l)?, as_f64(r)?);
    let (lv, rv) = (
        lf.as_primitive::<Float64Type>(),
        rf.as_primitive::<Float64Type>(),
    );
    if op == Op::FloatDiv {
        for i in 0..rv.len() {
            if rv.is_valid(i) && lv.is_valid(i) && rv.value(i) == 0.0 && !lv.value(i).is_nan() {
                return Err(error(SqlState::DIVISION_BY_ZERO, "division by zero"));
            }
        }
    }
    let out = match op {
        Op::FloatAdd => numeric::add(l, r),
        Op::FloatSub => numeric::sub(l, r),
        Op::FloatMul => numeric::mul(l, r),
        _ => numeric::div(l, r),
    }?;
    let of = as_f64(&out)?;
    let ov = of.as_primitive::<Float64Type>();
    for i in 0..ov.len() {
        if ov.is_null(i) {
            continue;
        }
        let (a, b, v) = (lv.value(i), rv.value(i), ov.value(i));
        if v.is_infinite() && a.is_finite() && b.is_finite() {
            return Err(error(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                "value out of range: overflow",
            ));
        }
        let underflow = match op {
            Op::FloatMul => a != 0.0 && b != 0.0,
            Op::FloatDiv => a != 0.0 && !b.is_infinite(),
            _ => false,
        };
        if v == 0.0 && underflow {
            return Err(error(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                "value out of range: underflow",
            ));
        }
    }
    Ok(out)
}

fn checked_call(op: Op, args: Vec<Expr>) -> Expr {
    UDFS.iter()
        .find(|f| f.name() == op.name())
        .expect("the checked functions")
        .call(args)
}

/// `left op right` of two operands of one type as a call of the checked
/// function `pick` names for the operator and that type; anything else as
/// it is.
fn checked_binary(
    e: Expr,
    schema: &dyn ExprSchema,
    pick: impl Fn(&Operator, &DataType) -> Option<Op>,
) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
        return Ok(Transformed::no(e));
    };
    let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
        return Ok(Transformed::no(e));
    };
    match pick(op, &l) {
        Some(op) if l == r => Ok(Transformed::yes(checked_call(
            op,
            vec![left.as_ref().clone(), right.as_ref().clone()],
        ))),
        _ => Ok(Transformed::no(e)),
    }
}

/// `a + b`, `a - b`, `a * b` of one integer type and `-a` of an integer as
/// calls of the checked functions; anything else as it is.
pub(crate) fn rewrite(e: Expr, schema: &dyn ExprSchema) -> Result<Transformed<Expr>> {
    if let Expr::Negative(inner) = &e {
        return match inner.get_type(schema) {
            Ok(t) if is_int(&t) => Ok(Transformed::yes(checked_call(
                Op::Neg,
                vec![inner.as_ref().clone()],
            ))),
            _ => Ok(Transformed::no(e)),
        };
    }
    checked_binary(e, schema, |op, t| {
        if !is_int(t) {
            return None;
        }
        match op {
            Operator::Plus => Some(Op::Add),
            Operator::Minus => Some(Op::Sub),
            Operator::Multiply => Some(Op::Mul),
            _ => None,
        }
    })
}

/// `a + b`, `a - b`, `a * b`, `a / b` of one float type as calls of the
/// checked functions. This runs after `real` arithmetic with an integer or
/// numeric operand has been widened to double precision
/// ([`crate::pg_casts::PgFloat4Arithmetic`]), which looks for the
/// operators.
pub(crate) fn rewrite_floats(e: Expr, schema: &dyn ExprSchema) -> Result<Transformed<Expr>> {
    checked_binary(e, schema, |op, t| {
        if !is_float(t) {
            return None;
        }
        match op {
            Operator::Plus => Some(Op::FloatAdd),
            Operator::Minus => Some(Op::FloatSub),
            Operator::Multiply => Some(Op::FloatMul),
            Operator::Divide => Some(Op::FloatDiv),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int16Array, Int32Array, Int64Array};
    use datafusion::arrow::datatypes::Field;

    fn run(op: Op, args: Vec<ArrayRef>) -> Result<ArrayRef> {
        let f = checked_int_udfs()
            .into_iter()
            .find(|f| f.name() == op.name())
            .unwrap();
        let rows = args[0].len();
        let t = args[0].data_type().clone();
        let out = f.invoke_with_args(ScalarFunctionArgs {
            arg_fields: args
                .iter()
                .map(|a| Arc::new(Field::new("a", a.data_type().clone(), true)))
                .collect(),
            args: args.into_iter().map(ColumnarValue::Array).collect(),
            number_rows: rows,
            return_field: Arc::new(Field::new("r", t, true)),
            config_options: Arc::new(Default::default()),
        })?;
        out.to_array(rows)
    }

    #[test]
    fn overflow_is_an_error_per_type() {
        let err = |r: Result<ArrayRef>| r.unwrap_err().to_string();
        let i32s = |v: Vec<i32>| Arc::new(Int32Array::from(v)) as ArrayRef;
        assert!(err(run(Op::Add, vec![i32s(vec![i32::MAX]), i32s(vec![1])]))
            .contains("integer out of range"));
        assert!(err(run(
            Op::Mul,
            vec![
                Arc::new(Int64Array::from(vec![i64::MAX])) as ArrayRef,
                Arc::new(Int64Array::from(vec![2]))
            ]
        ))
        .contains("bigint out of range"));
        assert!(err(run(
            Op::Sub,
            vec![
                Arc::new(Int16Array::from(vec![i16::MIN])) as ArrayRef,
                Arc::new(Int16Array::from(vec![1]))
            ]
        ))
        .contains("smallint out of range"));
        assert!(err(run(Op::Neg, vec![i32s(vec![i32::MIN])])).contains("integer out of range"));
        let ok = run(Op::Add, vec![i32s(vec![1, 2]), i32s(vec![3, 4])]).unwrap();
        assert_eq!(ok.as_primitive::<Int32Type>().values(), &[4, 6]);
        let neg = run(Op::Neg, vec![i32s(vec![5])]).unwrap();
        assert_eq!(neg.as_primitive::<Int32Type>().value(0), -5);
    }
}
