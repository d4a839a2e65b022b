//! `show_chunks(...)` and `drop_chunks(...)`: their named arguments put in
//! place, and `drop_chunks` run as a command.
//!
//! ```text
//! show_chunks(relation, older_than, newer_than, created_before, created_after)
//!     table function, tempora-query
//! drop_chunks(relation, older_than, newer_than, created_before, created_after)
//!     ─► Engine::drop_chunks
//! ```
//! Both select chunks with `tempora_query::chunks::ChunkSelection`.

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, FunctionArg, FunctionArgExpr, Value};
use tempora_common::{Result, SqlState, TemporaError};
use tempora_query::chunks::ChunkSelection;

use crate::{CommandCall, CommandOutput, Notice, Outcome, SqlSession};

/// The parameters of each call, in order; the first three are the ones
/// Tempora takes.
fn parameters(function: &str) -> Option<&'static [&'static str]> {
    match function {
        "show_chunks" => Some(&[
            "relation",
            "older_than",
            "newer_than",
            "created_before",
            "created_after",
        ]),
        "drop_chunks" => Some(&[
            "relation",
            "older_than",
            "newer_than",
            "verbose",
            "created_before",
            "created_after",
        ]),
        _ => None,
    }
}

/// Puts the arguments of a `show_chunks` / `drop_chunks` call in the
/// positional `(relation, older_than, newer_than, created_before,
/// created_after)` (NULL where not given),
/// which is what DataFusion's table functions receive.
pub(crate) fn normalize(function: &str, args: &mut Vec<FunctionArg>) -> Result<()> {
    let Some(params) = parameters(function) else {
        return Ok(());
    };
    let slots = crate::calls::slots(function, params, args)?;
    for slot in slots.iter().skip(1).take(2).flatten() {
        // A text value is refused whatever it holds; an untyped literal is
        // read as the time column's type.
        if let SqlExpr::Cast { data_type, .. } = slot {
            let t = data_type.to_string().to_lowercase();
            if ["text", "varchar", "character varying", "char", "character"]
                .iter()
                .any(|n| t == *n || t.starts_with(&format!("{n}(")))
            {
                return Err(TemporaError::new(
                    SqlState::INVALID_PARAMETER_VALUE,
                    "invalid time argument type \"text\"",
                ));
            }
        }
    }
    let null = || SqlExpr::Value(Value::Null.into());
    // (relation, older_than, newer_than, created_before, created_after);
    // drop_chunks' `verbose` changes nothing printed here.
    *args = params
        .iter()
        .zip(slots)
        .filter(|(p, _)| **p != "verbose")
        .map(|(_, s)| FunctionArg::Unnamed(FunctionArgExpr::Expr(s.unwrap_or_else(null))))
        .collect();
    Ok(())
}

/// A planned `drop_chunks` call.
#[derive(Debug, Clone)]
pub struct DropChunks {
    /// `(relation, older_than, newer_than, created_before, created_after)`
    /// after [`normalize`].
    args: Vec<SqlExpr>,
    output: CommandOutput,
}

impl DropChunks {
    pub(crate) fn from_call(call: CommandCall) -> Self {
        Self {
            args: call.args.into_iter().map(|(_, e)| e).collect(),
            output: CommandOutput::new(
                Field::new("drop_chunks", DataType::Utf8, false),
                call.select,
            ),
        }
    }

    /// Columns of the result, after the caller's projection.
    pub async fn result_schema(&self) -> Result<SchemaRef> {
        self.output.schema().await
    }

    pub(crate) async fn execute(&self, session: &SqlSession) -> Result<(Outcome, Vec<Notice>)> {
        let list: Vec<String> = self
            .args
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e} AS a{i}"))
            .collect();
        let plan = session
            .plan_sql(&format!("SELECT {}", list.join(", ")))
            .await?;
        let LogicalPlan::Projection(projection) = plan else {
            return Err(TemporaError::internal("drop_chunks arguments did not plan"));
        };
        let exprs: Vec<_> = projection.expr.into_iter().map(|e| e.unalias()).collect();
        let engine = session.engine();
        let state = session.context().state();
        let selection = ChunkSelection::resolve(&state, &engine.catalog().snapshot(), &exprs)?;
        if selection.older_than.is_none()
            && selection.newer_than.is_none()
            && selection.created_before.is_none()
            && selection.created_after.is_none()
        {
            return Err(TemporaError::new(
                SqlState::INVALID_PARAMETER_VALUE,
                "invalid time range for dropping chunks",
            )
            .with_hint("At least one of older_than and newer_than must be provided."));
        }
        let ids: Vec<u32> = selection.chunks().iter().map(|c| c.id).collect();
        let dropped = if ids.is_empty() {
            vec![]
        } else {
            engine.drop_chunks(selection.table.oid, &ids).await?
        };
        let names: Vec<String> = dropped.iter().map(|c| selection.chunk_name(c)).collect();
        self.output
            .rows(Arc::new(StringArray::from(names)), vec![])
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> Result<String> {
        let mut stmt = crate::parse(sql).unwrap().remove(0);
        crate::calls::normalize(&mut stmt, &tempora_copy::zone::PgTimeZone::utc())?;
        Ok(stmt.to_string())
    }

    #[test]
    fn named_arguments_take_their_positions() {
        assert_eq!(
            rewritten("SELECT show_chunks('d', newer_than => '2024-01-01'::timestamptz)").unwrap(),
            "SELECT show_chunks('d', NULL, '2024-01-01'::TIMESTAMPTZ(6), NULL, NULL)"
        );
        assert_eq!(
            rewritten("SELECT * FROM drop_chunks(older_than => INTERVAL '1 day', relation => 'd', verbose => true) c").unwrap(),
            "SELECT * FROM drop_chunks('d', CAST('1 day' AS INTERVAL), NULL, NULL, NULL) c"
        );
        assert_eq!(
            rewritten("SELECT count(*) FROM show_chunks('d')").unwrap(),
            "SELECT count(*) FROM show_chunks('d', NULL, NULL, NULL, NULL)"
        );
        assert_eq!(
            rewritten("SELECT show_chunks('d', created_before => now())").unwrap(),
            "SELECT show_chunks('d', NULL, NULL, now(), NULL)"
        );
        let e = rewritten("SELECT show_chunks('d', older => now())").unwrap_err();
        assert_eq!(e.code, SqlState::UNDEFINED_FUNCTION);
    }
}
