//! PostgreSQL's `avg` over integers.
//!
//! PostgreSQL averages `smallint`, `integer` and `bigint` as `numeric`: the
//! exact sum divided by the count, rounded half away from zero. DataFusion's
//! `avg` returns `double precision` for them, which prints `2.625` where
//! PostgreSQL prints `2.6250000000000000` and hands drivers a float where they
//! expect a decimal. This `avg` keeps the exact sum (`i128`) and returns
//! `numeric` with 16 decimals, the scale PostgreSQL gives an average of one
//! to four integer digits (its scale shrinks by 4 for each 4 further digits
//! and grows below 1; a fixed-scale Arrow column cannot follow that per
//! value). Every other input type is handed to DataFusion's `avg` unchanged.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, FieldRef, Int64Type, UInt64Type,
};
use datafusion::common::{internal_datafusion_err, Result, ScalarValue};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::type_coercion::functions::fields_with_udf;
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, Volatility,
};
use datafusion::physical_expr::NullState;

/// Decimals of an integer average.
const AVG_SCALE: i8 = 16;
const AVG_TYPE: DataType = DataType::Decimal128(38, AVG_SCALE);
const SUM_TYPE: DataType = DataType::Decimal128(38, 0);

/// `avg` (register with `ctx.register_udaf`; it replaces DataFusion's).
pub fn pg_avg_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(PgAvg {
        inner: avg_udaf(),
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgAvg {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

/// The argument types `inner` (one of DataFusion's aggregates, which a
/// Tempora aggregate of the same name hands the types it does not take
/// itself) coerces `arg_types` to.
pub(crate) fn inner_coercion(
    inner: &AggregateUDF,
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    let fields: Vec<FieldRef> = arg_types
        .iter()
        .map(|t| Arc::new(Field::new("", t.clone(), true)))
        .collect();
    Ok(fields_with_udf(&fields, inner)?
        .iter()
        .map(|f| f.data_type().clone())
        .collect())
}

/// Integer types whose values fit `bigint` (PostgreSQL has no unsigned ones).
fn is_integer(t: &DataType) -> bool {
    t.is_integer() && t != &DataType::UInt64
}

/// Whether the (coerced) argument takes the integer path.
fn integer_input(args: &AccumulatorArgs) -> bool {
    args.expr_fields.first().map(|f| f.data_type()) == Some(&DataType::Int64)
}

impl AggregateUDFImpl for PgAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if let [t] = arg_types {
            if is_integer(t) {
                return Ok(vec![DataType::Int64]);
            }
        }
        inner_coercion(&self.inner, arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Int64] => Ok(AVG_TYPE),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        match (integer_input(&args), args.is_distinct) {
            (true, false) => Ok(Box::<IntAvg>::default()),
            (true, true) => Ok(Box::<DistinctIntAvg>::default()),
            (false, _) => self.inner.accumulator(args),
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let integer = args.input_fields.first().map(|f| f.data_type()) == Some(&DataType::Int64);
        if !integer {
            return self.inner.state_fields(args);
        }
        if args.is_distinct {
            let item = Arc::new(Field::new_list_field(DataType::Int64, true));
            return Ok(vec![Arc::new(Field::new(
                format_state_name(args.name, "avg distinct"),
                DataType::List(item),
                true,
            ))]);
        }
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "count"),
                DataType::UInt64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "sum"),
                SUM_TYPE,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if integer_input(&args) {
            !args.is_distinct
        } else {
            self.inner.groups_accumulator_supported(args)
        }
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if integer_input(&args) {
            Ok(Box::<IntAvgGroups>::default())
        } else {
            self.inner.create_groups_accumulator(args)
        }
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if integer_input(&args) {
            self.accumulator(args)
        } else {
            self.inner.create_sliding_accumulator(args)
        }
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// `sum / count` at [`AVG_SCALE`] decimals, rounded half away from zero as
/// PostgreSQL's numeric division rounds. `count` is never 0.
fn average(sum: i128, count: u64) -> i128 {
    let count = i128::from(count);
    let unit = 10i128.pow(AVG_SCALE as u32);
    let (whole, rest) = (sum / count, sum % count);
    // |rest| < count <= 2^64, so rest * 10^16 stays far below i128::MAX.
    let scaled = rest * unit;
    let (mut frac, left) = (scaled / count, scaled % count);
    if 2 * left.abs() >= count {
        frac += scaled.signum();
    }
    whole * unit + frac
}

fn average_scalar(sum: i128, count: u64) -> ScalarValue {
    let value = (count > 0).then(|| average(sum, count));
    ScalarValue::Decimal128(value, 38, AVG_SCALE)
}

#[derive(Debug, Default)]
struct IntAvg {
    sum: i128,
    count: u64,
}

impl Accumulator for IntAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<Int64Type>();
        for v in values.iter().flatten() {
            self.sum += i128::from(v);
            self.count += 1;
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<Int64Type>();
        for v in values.iter().flatten() {
            self.sum -= i128::from(v);
            self.count -= 1;
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(average_scalar(self.sum, self.count))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::UInt64(Some(self.count)),
            ScalarValue::Decimal128(Some(self.sum), 38, 0),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let counts = states[0].as_primitive::<UInt64Type>();
        let sums = states[1].as_primitive::<Decimal128Type>();
        for (count, sum) in counts.iter().zip(sums.iter()) {
            if let (Some(count), Some(sum)) = (count, sum) {
                self.count += count;
                self.sum += sum;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct DistinctIntAvg {
    values: HashSet<i64>,
}

impl DistinctIntAvg {
    fn add(&mut self, values: &Int64Array) {
        self.values.extend(values.iter().flatten());
    }
}

impl Accumulator for DistinctIntAvg {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(values[0].as_primitive::<Int64Type>());
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let sum = self.values.iter().map(|v| i128::from(*v)).sum();
        Ok(average_scalar(sum, self.values.len() as u64))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.values.capacity() * size_of::<i64>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .values
            .iter()
            .map(|v| ScalarValue::Int64(Some(*v)))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &DataType::Int64,
        ))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for list in states[0].as_list::<i32>().iter().flatten() {
            self.add(list.as_primitive::<Int64Type>());
        }
        Ok(())
    }
}

/// Per-group exact sums and counts.
#[derive(Debug, Default)]
struct IntAvgGroups {
    sums: Vec<i128>,
    counts: Vec<u64>,
    nulls: NullState,
}

impl GroupsAccumulator for IntAvgGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let values = values[0].as_primitive::<Int64Type>();
        self.sums.resize(total_num_groups, 0);
        self.counts.resize(total_num_groups, 0);
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        self.nulls.accumulate(
            group_indices,
            values,
            opt_filter,
            total_num_groups,
            |group, value| {
                sums[group] += i128::from(value);
                counts[group] += 1;
            },
        );
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = emit_to.take_needed(&mut self.sums);
        let counts = emit_to.take_needed(&mut self.counts);
        let nulls = self.nulls.build(emit_to);
        let averages: Vec<i128> = sums
            .into_iter()
            .zip(counts)
            .map(|(sum, count)| if count == 0 { 0 } else { average(sum, count) })
            .collect();
        let array = Decimal128Array::new(averages.into(), nulls).with_data_type(AVG_TYPE);
        Ok(Arc::new(array))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let nulls = self.nulls.build(emit_to);
        let counts = emit_to.take_needed(&mut self.counts);
        let sums = emit_to.take_needed(&mut self.sums);
        Ok(vec![
            Arc::new(UInt64Array::new(counts.into(), nulls.clone())),
            Arc::new(Decimal128Array::new(sums.into(), nulls).with_data_type(SUM_TYPE)),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [counts_in, sums_in] = values else {
            return Err(internal_datafusion_err!(
                "avg: a state of {} arrays",
                values.len()
            ));
        };
        let counts_in = counts_in.as_primitive::<UInt64Type>();
        let sums_in = sums_in.as_primitive::<Decimal128Type>();
        self.sums.resize(total_num_groups, 0);
        self.counts.resize(total_num_groups, 0);
        let counts = &mut self.counts;
        self.nulls.accumulate(
            group_indices,
            counts_in,
            None,
            total_num_groups,
            |group, count| counts[group] += count,
        );
        let sums = &mut self.sums;
        self.nulls.accumulate(
            group_indices,
            sums_in,
            None,
            total_num_groups,
            |group, sum| sums[group] += sum,
        );
        Ok(())
    }

    /// Each row as a state of its own: count 1 and the value, or a NULL
    /// state where the value is NULL or the filter drops the row.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<Int64Type>();
        let kept =
            |i: usize| values.is_valid(i) && opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i));
        let nulls: NullBuffer = (0..values.len()).map(kept).collect();
        let sums: Vec<i128> = values.values().iter().map(|v| i128::from(*v)).collect();
        Ok(vec![
            Arc::new(UInt64Array::new(
                vec![1; values.len()].into(),
                Some(nulls.clone()),
            )),
            Arc::new(Decimal128Array::new(sums.into(), Some(nulls)).with_data_type(SUM_TYPE)),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * size_of::<i128>()
            + self.counts.capacity() * size_of::<u64>()
            + self.nulls.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_round_half_away_from_zero() {
        let unit = 10i128.pow(16);
        assert_eq!(average(21, 8), 2_625 * unit / 1000);
        assert_eq!(average(33, 9), 36_666_666_666_666_667);
        assert_eq!(average(-33, 9), -36_666_666_666_666_667);
        assert_eq!(average(2, 3), 6_666_666_666_666_667);
        assert_eq!(average(-1, 2), -5 * unit / 10);
        // An average of i64::MAX keeps every digit.
        let max = i128::from(i64::MAX);
        assert_eq!(average(max * 2, 2), max * unit);
    }
}
