//! PostgreSQL's `sum` of `real`, which is `real`.
//!
//! DataFusion sums a `real` (Float32) as `double precision`, so the sum of
//! 0.1, 0.2 and 0.3 stored as `real` printed `0.6000000163912773` where
//! PostgreSQL prints `0.6`. This `sum` adds the values as DataFusion does,
//! in `double precision` (its accumulators, grouped, sliding and DISTINCT,
//! run unchanged on the values widened), and gives the result as `real`.
//! Every other input type is handed to DataFusion's `sum` unchanged.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, ReversedUDAF,
    Signature, Volatility,
};

/// `sum` (register with `ctx.register_udaf`; it replaces DataFusion's).
pub fn pg_sum_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(PgSum {
        inner: sum_udaf(),
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSum {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

fn is_real(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float16)
}

/// `field` as `double precision`.
fn widened(field: &FieldRef) -> FieldRef {
    Arc::new(field.as_ref().clone().with_data_type(DataType::Float64))
}

/// Whether the (coerced) argument is a `real`.
fn real_input(fields: &[FieldRef]) -> bool {
    fields.first().map(|f| f.data_type()) == Some(&DataType::Float32)
}

impl PgSum {
    /// DataFusion's accumulator of the widened values, made by `make`.
    fn widened<T>(
        &self,
        args: &AccumulatorArgs,
        make: impl FnOnce(&AggregateUDF, AccumulatorArgs) -> Result<T>,
    ) -> Result<T> {
        let fields: Vec<FieldRef> = args.expr_fields.iter().map(widened).collect();
        let args = AccumulatorArgs {
            return_field: widened(&args.return_field),
            expr_fields: &fields,
            ..*args
        };
        make(&self.inner, args)
    }
}

impl AggregateUDFImpl for PgSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if let [t] = arg_types {
            if is_real(t) {
                return Ok(vec![DataType::Float32]);
            }
        }
        crate::pg_avg::inner_coercion(&self.inner, arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::Float32] => Ok(DataType::Float32),
            _ => self.inner.return_type(arg_types),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !real_input(args.expr_fields) {
            return self.inner.accumulator(args);
        }
        let inner = self.widened(&args, |f, a| f.accumulator(a))?;
        Ok(Box::new(RealSum(inner)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if !real_input(args.input_fields) {
            return self.inner.state_fields(args);
        }
        let fields: Vec<FieldRef> = args.input_fields.iter().map(widened).collect();
        self.inner.state_fields(StateFieldsArgs {
            input_fields: &fields,
            return_field: widened(&args.return_field),
            ..args
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if !real_input(args.expr_fields) {
            return self.inner.groups_accumulator_supported(args);
        }
        self.widened(&args, |f, a| Ok(f.groups_accumulator_supported(a)))
            .unwrap_or(false)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if !real_input(args.expr_fields) {
            return self.inner.create_groups_accumulator(args);
        }
        let inner = self.widened(&args, |f, a| f.create_groups_accumulator(a))?;
        Ok(Box::new(RealSumGroups(inner)))
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if !real_input(args.expr_fields) {
            return self.inner.create_sliding_accumulator(args);
        }
        let inner = self.widened(&args, |f, a| f.create_sliding_accumulator(a))?;
        Ok(Box::new(RealSum(inner)))
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }
}

/// The first argument widened to `double precision`.
fn widened_values(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    let mut values = values.to_vec();
    if let Some(v) = values.first_mut() {
        *v = cast(v, &DataType::Float64)?;
    }
    Ok(values)
}

/// DataFusion's accumulator of the widened values; its result as `real`.
#[derive(Debug)]
struct RealSum(Box<dyn Accumulator>);

impl Accumulator for RealSum {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(&widened_values(values)?)
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.retract_batch(&widened_values(values)?)
    }

    fn supports_retract_batch(&self) -> bool {
        self.0.supports_retract_batch()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.evaluate()?.cast_to(&DataType::Float32)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.0.size()
    }
}

/// The grouped form of [`RealSum`].
struct RealSumGroups(Box<dyn GroupsAccumulator>);

impl GroupsAccumulator for RealSumGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.update_batch(
            &widened_values(values)?,
            group_indices,
            opt_filter,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(cast(&self.0.evaluate(emit_to)?, &DataType::Float32)?)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.0
            .convert_to_state(&widened_values(values)?, opt_filter)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.0.size()
    }
}
