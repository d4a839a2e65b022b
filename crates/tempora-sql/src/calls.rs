//! Function calls put in the shape DataFusion plans them as PostgreSQL
//! would: named arguments of TimescaleDB's chunk functions in their
//! positions, and untyped literals of `generate_series` typed like the
//! argument beside them (`generate_series('2024-01-01'::timestamptz,
//! '2024-01-02', INTERVAL '1 hour')`, where PostgreSQL resolves `unknown`).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, TableFactor,
    Value, VisitMut, VisitorMut,
};
use tempora_common::{Result, TemporaError};

/// Rewrites every call of the statement that needs it, in FROM and in expressions.
pub(crate) fn normalize(stmt: &mut Statement) -> Result<()> {
    match stmt.visit(&mut Normalizer) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct Normalizer;

impl VisitorMut for Normalizer {
    type Break = TemporaError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<TemporaError> {
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = factor
        {
            let function = crate::function_name(name);
            if let Err(e) = call(&function, &mut args.args) {
                return ControlFlow::Break(e);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<TemporaError> {
        if let SqlExpr::Function(f) = expr {
            let function = crate::function_name(&f.name);
            if let FunctionArguments::List(list) = &mut f.args {
                if let Err(e) = call(&function, &mut list.args) {
                    return ControlFlow::Break(e);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn call(function: &str, args: &mut Vec<FunctionArg>) -> Result<()> {
    match function {
        "show_chunks" | "drop_chunks" => crate::chunks::normalize(function, args),
        "generate_series" => {
            type_untyped_like_cast(args);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Casts quoted literals among the first two arguments to the type of the
/// other when that one is cast to a date/time type.
fn type_untyped_like_cast(args: &mut [FunctionArg]) {
    let expr = |a: &FunctionArg| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
        _ => None,
    };
    let temporal_cast = args.iter().take(2).filter_map(expr).find_map(|e| match e {
        SqlExpr::Cast { data_type, .. }
            if {
                let t = data_type.to_string().to_lowercase();
                t.starts_with("timestamp") || t == "date"
            } =>
        {
            Some(data_type)
        }
        _ => None,
    });
    let Some(data_type) = temporal_cast else {
        return;
    };
    for a in args.iter_mut().take(2) {
        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a {
            if matches!(e, SqlExpr::Value(v) if matches!(v.value, Value::SingleQuotedString(_))) {
                *e = SqlExpr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                    expr: Box::new(e.clone()),
                    data_type: data_type.clone(),
                    array: false,
                    format: None,
                };
            }
        }
    }
}
