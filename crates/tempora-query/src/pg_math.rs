//! PostgreSQL's mathematical functions where DataFusion's differ or are
//! missing.
//!
//! * `ln`, `log`, `log10`, `sqrt` and `power` raise PostgreSQL's errors for
//!   arguments outside their domain (2201E for a logarithm of zero or of a
//!   negative number, 2201F for the square root of a negative number, zero
//!   to a negative power and a negative number to a fractional power, 22003
//!   when a finite power overflows) where DataFusion's answer `-Infinity` or
//!   `NaN`. They wrap DataFusion's functions, which still compute the values.
//! * `mod(a, b)` is `a % b` (22012 for a zero divisor); `div(a, b)` the
//!   quotient of two numerics truncated toward zero, as `numeric`;
//!   `sign(x)` -1, 0 or 1 as a `double precision` for floats and integers,
//!   a `numeric` for numerics.
//! * `width_bucket(operand, low, high, count)` numbers equal-width buckets
//!   from `low` to `high` (either way round): exactly for numerics, in
//!   double precision otherwise.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Int32Array};
use datafusion::arrow::compute::kernels::{cast::cast, numeric};
use datafusion::arrow::datatypes::FieldRef;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Float64Type, Int32Type};
use datafusion::common::Result;
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use tempora_common::{SqlState, TemporaError};

use crate::pg_types::{argument_arrays, result_value};

/// The functions, to register over DataFusion's.
pub fn pg_math_udfs() -> Vec<ScalarUDF> {
    use datafusion::functions::math;
    let checks: [(Arc<ScalarUDF>, ArgCheck); 5] = [
        (math::ln(), logarithm_domain),
        (math::log(), logarithm_domain),
        (math::log10(), logarithm_domain),
        (math::sqrt(), square_root_domain),
        (math::power(), power_domain),
    ];
    let mut udfs: Vec<ScalarUDF> = checks
        .into_iter()
        .map(|(inner, check)| ScalarUDF::new_from_impl(Checked { inner, check }))
        .collect();
    for op in [Arith::Mod, Arith::Div, Arith::Sign, Arith::WidthBucket] {
        udfs.push(ScalarUDF::new_from_impl(PgArith {
            op,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
    udfs
}

/// PostgreSQL's error `code` with `message`, for DataFusion.
pub(crate) fn error(code: SqlState, message: &str) -> datafusion::error::DataFusionError {
    TemporaError::new(code, message).into_datafusion()
}

fn division_by_zero() -> datafusion::error::DataFusionError {
    error(SqlState::DIVISION_BY_ZERO, "division by zero")
}

/// An argument's values as `double precision` (NULL stays NULL).
fn floats(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(a, &DataType::Float64)?)
}

/// Each row's arguments as `double precision`, handed to `check` (NULL as
/// `None`).
fn each_row(args: &[ArrayRef], check: impl Fn(&[Option<f64>]) -> Result<()>) -> Result<()> {
    let values = args.iter().map(floats).collect::<Result<Vec<_>>>()?;
    let values: Vec<_> = values
        .iter()
        .map(|a| a.as_primitive::<Float64Type>())
        .collect();
    let rows = values.first().map_or(0, |a| a.len());
    let mut row = Vec::with_capacity(values.len());
    for i in 0..rows {
        row.clear();
        row.extend(values.iter().map(|a| a.is_valid(i).then(|| a.value(i))));
        check(&row)?;
    }
    Ok(())
}

/// `ln`, `log`, `log10`: PostgreSQL's errors for zero and negative
/// arguments, and for `log(1, x)`, which divides by `ln(1)`.
fn logarithm_domain(args: &[ArrayRef]) -> Result<()> {
    each_row(args, |row| {
        for x in row.iter().flatten() {
            if *x == 0.0 {
                return Err(error(
                    SqlState::INVALID_ARGUMENT_FOR_LOGARITHM,
                    "cannot take logarithm of zero",
                ));
            }
            if *x < 0.0 {
                return Err(error(
                    SqlState::INVALID_ARGUMENT_FOR_LOGARITHM,
                    "cannot take logarithm of a negative number",
                ));
            }
        }
        match row {
            [Some(base), Some(_)] if *base == 1.0 => Err(division_by_zero()),
            _ => Ok(()),
        }
    })
}

fn square_root_domain(args: &[ArrayRef]) -> Result<()> {
    each_row(args, |row| match row {
        [Some(x)] if *x < 0.0 => Err(error(
            SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION,
            "cannot take square root of a negative number",
        )),
        _ => Ok(()),
    })
}

fn power_domain(args: &[ArrayRef]) -> Result<()> {
    each_row(args, |row| {
        let [Some(x), Some(y)] = row else {
            return Ok(());
        };
        if *x == 0.0 && *y < 0.0 {
            return Err(error(
                SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION,
                "zero raised to a negative power is undefined",
            ));
        }
        if *x < 0.0 && y.is_finite() && y.fract() != 0.0 {
            return Err(error(
                SqlState::INVALID_ARGUMENT_FOR_POWER_FUNCTION,
                "a negative number raised to a non-integer power yields a complex result",
            ));
        }
        if x.is_finite() && y.is_finite() && x.powf(*y).is_infinite() {
            return Err(error(
                SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
                "value out of range: overflow",
            ));
        }
        Ok(())
    })
}

/// A check of a call's arguments, as arrays of one length.
pub(crate) type ArgCheck = fn(&[ArrayRef]) -> Result<()>;

/// One of DataFusion's functions, with PostgreSQL's argument checks first.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) inner: Arc<ScalarUDF>,
    pub(crate) check: ArgCheck,
}

// One wrapper per function: the wrapped function tells them apart.
impl PartialEq for Checked {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Checked {}

impl std::hash::Hash for Checked {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

impl ScalarUDFImpl for Checked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (values, _) = argument_arrays(&args)?;
        (self.check)(&values)?;
        self.inner.invoke_with_args(args)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Arith {
    Mod,
    Div,
    Sign,
    WidthBucket,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgArith {
    op: Arith,
    signature: Signature,
}

fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64)
}

fn scale_of(t: &DataType) -> Option<i8> {
    match t {
        DataType::Decimal128(_, s) | DataType::Decimal256(_, s) => Some(*s),
        t if t.is_integer() => Some(0),
        _ => None,
    }
}

/// A numeric type wide enough for every numeric or integer in `types`, at
/// their largest scale.
fn common_decimal(types: &[DataType]) -> DataType {
    let scale = types.iter().filter_map(scale_of).max().unwrap_or(0).max(0);
    DataType::Decimal128(38, scale)
}

fn numeric_type(t: &DataType) -> bool {
    t.is_numeric() || t.is_null()
}

impl ScalarUDFImpl for PgArith {
    fn name(&self) -> &str {
        match self.op {
            Arith::Mod => "mod",
            Arith::Div => "div",
            Arith::Sign => "sign",
            Arith::WidthBucket => "width_bucket",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let arity = match self.op {
            Arith::Sign => 1,
            Arith::Mod | Arith::Div => 2,
            Arith::WidthBucket => 4,
        };
        if arg_types.len() != arity || !arg_types.iter().all(numeric_type) {
            return Err(crate::date_part::no_such_function(self.name(), arg_types));
        }
        let null_as = |t: &DataType, default: &DataType| {
            if t.is_null() {
                default.clone()
            } else {
                t.clone()
            }
        };
        Ok(match self.op {
            Arith::Mod => {
                let l = null_as(&arg_types[0], &arg_types[1]);
                let r = null_as(&arg_types[1], &l);
                let l = null_as(&l, &DataType::Int32);
                let r = null_as(&r, &DataType::Int32);
                let (l, r) = BinaryTypeCoercer::new(&l, &Operator::Modulo, &r).get_input_types()?;
                vec![l, r]
            }
            Arith::Div => {
                let t = common_decimal(arg_types);
                vec![t.clone(), t]
            }
            Arith::Sign => match &arg_types[0] {
                t @ DataType::Decimal128(..) => vec![t.clone()],
                t if t.is_null() => vec![DataType::Float64],
                DataType::Decimal256(..) => vec![common_decimal(arg_types)],
                _ => vec![DataType::Float64],
            },
            Arith::WidthBucket => {
                let bounds = &arg_types[..3];
                let decimal = bounds
                    .iter()
                    .any(|t| matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)))
                    && !bounds.iter().any(is_float);
                let t = if decimal {
                    common_decimal(bounds)
                } else {
                    DataType::Float64
                };
                vec![t.clone(), t.clone(), t, DataType::Int32]
            }
        })
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.op {
            Arith::Mod => BinaryTypeCoercer::new(&arg_types[0], &Operator::Modulo, &arg_types[1])
                .get_result_type()?,
            Arith::Div => DataType::Decimal128(38, 0),
            Arith::Sign => match &arg_types[0] {
                DataType::Decimal128(..) => DataType::Decimal128(38, 0),
                _ => DataType::Float64,
            },
            Arith::WidthBucket => DataType::Int32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let returns = args.return_field.data_type().clone();
        let (values, scalar) = argument_arrays(&args)?;
        let out = match self.op {
            Arith::Mod => modulo(&values[0], &values[1], &returns)?,
            Arith::Div => div(&values[0], &values[1])?,
            Arith::Sign => sign(&values[0])?,
            Arith::WidthBucket => width_bucket(&values)?,
        };
        result_value(out, scalar)
    }
}

fn modulo(l: &ArrayRef, r: &ArrayRef, returns: &DataType) -> Result<ArrayRef> {
    let out = numeric::rem(l, r).map_err(|e| match e {
        datafusion::arrow::error::ArrowError::DivideByZero => division_by_zero(),
        e => e.into(),
    })?;
    if out.data_type() == returns {
        Ok(out)
    } else {
        Ok(cast(&out, returns)?)
    }
}

/// The integer quotient of two numerics of one scale, truncated toward zero.
fn div(l: &ArrayRef, r: &ArrayRef) -> Result<ArrayRef> {
    let (l, r) = (
        l.as_primitive::<Decimal128Type>(),
        r.as_primitive::<Decimal128Type>(),
    );
    let mut out = Vec::with_capacity(l.len());
    for i in 0..l.len() {
        if l.is_null(i) || r.is_null(i) {
            out.push(None);
            continue;
        }
        let d = r.value(i);
        if d == 0 {
            return Err(division_by_zero());
        }
        out.push(Some(l.value(i) / d));
    }
    Ok(Arc::new(
        Decimal128Array::from(out).with_precision_and_scale(38, 0)?,
    ))
}

fn sign(a: &ArrayRef) -> Result<ArrayRef> {
    Ok(match a.data_type() {
        DataType::Decimal128(..) => {
            let a = a.as_primitive::<Decimal128Type>();
            Arc::new(
                a.unary::<_, Decimal128Type>(|v| v.signum())
                    .with_precision_and_scale(38, 0)?,
            )
        }
        _ => {
            let a = a.as_primitive::<Float64Type>();
            // PostgreSQL's sign of NaN is 0: neither comparison holds.
            Arc::new(a.unary::<_, Float64Type>(|v| {
                if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }))
        }
    })
}

fn bucket_error(message: &str) -> datafusion::error::DataFusionError {
    error(
        SqlState::INVALID_ARGUMENT_FOR_WIDTH_BUCKET_FUNCTION,
        message,
    )
}

fn width_bucket(values: &[ArrayRef]) -> Result<ArrayRef> {
    let counts = values[3].as_primitive::<Int32Type>();
    let rows = counts.len();
    let mut out = Vec::with_capacity(rows);
    let decimal = matches!(values[0].data_type(), DataType::Decimal128(..));
    for i in 0..rows {
        if values.iter().any(|a| a.is_null(i)) {
            out.push(None);
            continue;
        }
        let count = counts.value(i);
        if count <= 0 {
            return Err(bucket_error("count must be greater than zero"));
        }
        let bucket = if decimal {
            let v = |k: usize| values[k].as_primitive::<Decimal128Type>().value(i);
            decimal_bucket(v(0), v(1), v(2), count)?
        } else {
            let v = |k: usize| values[k].as_primitive::<Float64Type>().value(i);
            float_bucket(v(0), v(1), v(2), count)?
        };
        out.push(Some(bucket));
    }
    Ok(Arc::new(Int32Array::from(out)))
}

/// The bucket past the last, which PostgreSQL refuses to number past
/// `integer`'s range.
fn after_last(count: i32) -> Result<i32> {
    count
        .checked_add(1)
        .ok_or_else(|| error(SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "integer out of range"))
}

/// Bucket 0 for an operand before `low`, `count + 1` for one at or past
/// `high`, measured from `low` toward `high` whichever way round they are;
/// `None` within.
fn outside_bucket<T: PartialOrd>(operand: T, low: T, high: T, count: i32) -> Option<Result<i32>> {
    let (before, at_or_past) = if low < high {
        (operand < low, operand >= high)
    } else {
        (operand > low, operand <= high)
    };
    if before {
        Some(Ok(0))
    } else if at_or_past {
        Some(after_last(count))
    } else {
        None
    }
}

fn float_bucket(operand: f64, low: f64, high: f64, count: i32) -> Result<i32> {
    if operand.is_nan() || low.is_nan() || high.is_nan() {
        return Err(bucket_error(
            "operand, lower bound, and upper bound cannot be NaN",
        ));
    }
    if !low.is_finite() || !high.is_finite() {
        return Err(bucket_error("lower and upper bounds must be finite"));
    }
    if low == high {
        return Err(bucket_error("lower bound cannot equal upper bound"));
    }
    if let Some(outside) = outside_bucket(operand, low, high, count) {
        return outside;
    }
    let span = high - low;
    let quotient = if span.is_infinite() {
        operand / span - low / span
    } else {
        (operand - low) / span
    };
    let bucket = ((count as f64) * quotient) as i32;
    Ok(bucket.min(count - 1) + 1)
}

fn decimal_bucket(operand: i128, low: i128, high: i128, count: i32) -> Result<i32> {
    if low == high {
        return Err(bucket_error("lower bound cannot equal upper bound"));
    }
    if let Some(outside) = outside_bucket(operand, low, high, count) {
        return outside;
    }
    // floor(count * (operand - low) / (high - low)), both differences of one
    // sign, computed exactly while it fits.
    let (offset, span) = ((operand - low).abs(), (high - low).abs());
    let bucket = match offset.checked_mul(i128::from(count)) {
        Some(scaled) => scaled / span,
        None => ((count as f64) * (offset as f64 / span as f64)) as i128,
    };
    Ok(bucket.min(i128::from(count) - 1) as i32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_postgresql() {
        assert_eq!(float_bucket(5.35, 0.024, 10.06, 5).unwrap(), 3);
        assert_eq!(float_bucket(-1.0, 0.0, 10.0, 5).unwrap(), 0);
        assert_eq!(float_bucket(10.0, 0.0, 10.0, 5).unwrap(), 6);
        assert_eq!(float_bucket(5.0, 10.0, 0.0, 5).unwrap(), 3);
        assert_eq!(float_bucket(10.0, 10.0, 0.0, 5).unwrap(), 1);
        assert!(float_bucket(1.0, 1.0, 1.0, 5).is_err());
        // 5.35 in [0.024, 10.06) at scale 3.
        assert_eq!(decimal_bucket(5350, 24, 10060, 5).unwrap(), 3);
        assert_eq!(decimal_bucket(10060, 24, 10060, 5).unwrap(), 6);
        assert_eq!(decimal_bucket(0, 10, 0, 5).unwrap(), 6);
    }
}
