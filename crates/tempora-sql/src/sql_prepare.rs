//! SQL-level prepared statements: `PREPARE name [(types)] AS statement`,
//! `EXECUTE name [(args)]`, `DEALLOCATE [PREPARE] name | ALL`, kept per
//! session (the extended protocol's prepared statements are separate).
//!
//! Declared parameter types become casts of the `$n` placeholders, so the
//! statement is planned knowing them; EXECUTE's arguments are cast to the
//! parameter types (declared or inferred) with PostgreSQL's input rules.
//! The types a client declares in the extended protocol's Parse message are
//! read the same way ([`SqlSession::prepare_declared`]).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, Expr as SqlExpr, Statement, Value, VisitMut, VisitorMut,
};
use tempora_common::{Result, SqlState, TemporaError};

use crate::{ParsedStatement, Prepared, SqlSession};

/// The session's prepared statements, by name.
#[derive(Debug, Default)]
pub struct SqlPrepared {
    statements: HashMap<String, Arc<Prepared>>,
    /// When each was prepared (microseconds since the Unix epoch) and the
    /// PREPARE command that made it.
    prepared_at: HashMap<String, (i64, String)>,
}

impl SqlPrepared {
    pub fn get(&self, name: &str) -> Result<Arc<Prepared>> {
        self.statements.get(name).cloned().ok_or_else(|| {
            TemporaError::new(
                SqlState::INVALID_SQL_STATEMENT_NAME,
                format!("prepared statement \"{name}\" does not exist"),
            )
        })
    }

    pub fn add(&mut self, name: &str, p: Arc<Prepared>, text: &str) -> Result<()> {
        if self.statements.contains_key(name) {
            return Err(TemporaError::new(
                SqlState::DUPLICATE_PREPARED_STATEMENT,
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        self.statements.insert(name.to_string(), p);
        self.prepared_at.insert(
            name.to_string(),
            (chrono::Utc::now().timestamp_micros(), text.to_string()),
        );
        Ok(())
    }

    /// The rows of `pg_prepared_statements`, by name.
    pub fn rows(&self) -> Vec<tempora_query::variables::PreparedStatementInfo> {
        let mut rows: Vec<_> = self
            .statements
            .iter()
            .map(
                |(name, p)| tempora_query::variables::PreparedStatementInfo {
                    name: name.clone(),
                    statement: self
                        .prepared_at
                        .get(name)
                        .map_or_else(|| p.sql.clone(), |(_, text)| text.clone()),
                    prepare_time: self.prepared_at.get(name).map_or(0, |(t, _)| *t),
                    parameter_types: p
                        .param_types
                        .iter()
                        .map(|t| {
                            t.as_ref()
                                .map_or("unknown", tempora_query::pg_types::pg_type_name)
                                .to_string()
                        })
                        .collect(),
                },
            )
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// DEALLOCATE name (None: ALL).
    pub fn remove(&mut self, name: Option<&str>) -> Result<()> {
        match name {
            None => {
                self.statements.clear();
                self.prepared_at.clear();
            }
            Some(n) => {
                self.prepared_at.remove(n);
                if self.statements.remove(n).is_none() {
                    return Err(TemporaError::new(
                        SqlState::INVALID_SQL_STATEMENT_NAME,
                        format!("prepared statement \"{n}\" does not exist"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl SqlSession {
    /// Plans one statement of a client's Parse message with the parameter
    /// types the client declared: `declared[n - 1]` names the SQL type of
    /// `$n`, or is None where the server is to infer it. As in PostgreSQL, a
    /// declared type is the parameter's type, whatever the statement around
    /// it would suggest: `$n` is read as `$n::type`.
    pub async fn prepare_declared(
        &self,
        sql: &str,
        mut stmt: ParsedStatement,
        declared: &[Option<&str>],
    ) -> Result<Prepared> {
        if let ParsedStatement::Sql { stmt, .. } = &mut stmt {
            let types = declared
                .iter()
                .map(|name| name.map(parse_type).transpose())
                .collect::<Result<Vec<_>>>()?;
            cast_parameters(stmt, &types);
        }
        self.prepare_statement(sql, stmt).await
    }
}

impl SqlSession {
    /// `p` planned again from its text, its parameters keeping the types it
    /// was prepared with (as PostgreSQL analyses a prepared statement again
    /// after a change to a table it uses). 0A000 when its parameters or
    /// result columns would change, as in PostgreSQL. None when its text
    /// holds several statements (one of a simple query's, run just after it
    /// was planned).
    pub(crate) async fn prepare_again(&self, p: &Prepared) -> Result<Option<Prepared>> {
        let mut stmts = crate::parse_query(&p.sql)?;
        if stmts.len() != 1 {
            return Ok(None);
        }
        let declared: Vec<Option<&str>> = p
            .param_types
            .iter()
            .map(|t| t.as_ref().and_then(sql_type_name))
            .collect();
        let again = self
            .prepare_declared(&p.sql, stmts.remove(0), &declared)
            .await?;
        let names = |t: &[Option<DataType>]| -> Vec<&'static str> {
            t.iter()
                .map(|t| {
                    t.as_ref()
                        .map_or("unknown", tempora_query::pg_types::pg_type_name)
                })
                .collect()
        };
        if names(&again.param_types) != names(&p.param_types) {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "cached plan must not change parameter types",
            ));
        }
        let columns = |s: &Option<datafusion::arrow::datatypes::SchemaRef>| {
            s.iter()
                .flat_map(|s| s.fields().iter())
                .map(|f| {
                    (
                        f.name().clone(),
                        tempora_query::pg_types::pg_type_name(f.data_type()),
                    )
                })
                .collect::<Vec<_>>()
        };
        if columns(&again.result_schema) != columns(&p.result_schema) {
            return Err(TemporaError::new(
                SqlState::FEATURE_NOT_SUPPORTED,
                "cached plan must not change result type",
            ));
        }
        Ok(Some(again))
    }
}

/// A type name as SQL spells it (`timestamptz`, `double precision`).
fn parse_type(name: &str) -> Result<SqlType> {
    use tempora_common::sql_parser::{parser, TemporaDialect};
    parser(&TemporaDialect::for_text(name), name)
        .and_then(|mut p| p.parse_data_type())
        .map_err(|e| TemporaError::internal(format!("type name {name}: {e}")))
}

/// Wraps each `$n` of the statement in a cast to the declared type of
/// parameter n.
pub(crate) fn cast_parameters(stmt: &mut Statement, types: &[Option<SqlType>]) {
    struct Casts<'a>(&'a [Option<SqlType>]);
    impl VisitorMut for Casts<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut SqlExpr) -> ControlFlow<()> {
            if let SqlExpr::Value(v) = e {
                if let Value::Placeholder(p) = &v.value {
                    let n = p.trim_start_matches('$').parse::<usize>().ok();
                    if let Some(t) = n.and_then(|n| self.0.get(n.checked_sub(1)?)?.as_ref()) {
                        *e = SqlExpr::Cast {
                            kind: CastKind::DoubleColon,
                            expr: Box::new(e.clone()),
                            data_type: t.clone(),
                            array: false,
                            format: None,
                        };
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    if types.iter().any(Option::is_some) {
        let _ = stmt.visit(&mut Casts(types));
    }
}

/// EXECUTE's arguments as the statement's parameter values.
pub(crate) async fn arguments(
    session: &crate::SqlSession,
    name: &str,
    prepared: &Prepared,
    args: &[SqlExpr],
) -> Result<Option<ParamValues>> {
    let expected = prepared.param_types.len();
    if args.len() != expected {
        return Err(TemporaError::new(
            SqlState::SYNTAX_ERROR,
            format!("wrong number of parameters for prepared statement \"{name}\""),
        )
        .with_detail(format!(
            "Expected {expected} parameters but got {}.",
            args.len()
        )));
    }
    if args.is_empty() {
        return Ok(None);
    }
    let mut values: Vec<ScalarValue> = Vec::with_capacity(args.len());
    for (arg, ty) in args.iter().zip(&prepared.param_types) {
        let sql = match ty.as_ref().and_then(sql_type_name) {
            Some(t) => format!("CAST({arg} AS {t})"),
            None => arg.to_string(),
        };
        let v = session.eval_sql(&sql).await?;
        values.push(match ty {
            Some(t) if v.data_type() != *t => {
                v.cast_to(t).map_err(TemporaError::from_datafusion)?
            }
            _ => v,
        });
    }
    Ok(Some(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    )))
}

/// The SQL name to cast an argument to for a parameter of Arrow type `t`.
fn sql_type_name(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Boolean => "boolean",
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Date32 => "date",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Interval(_) => "interval",
        _ => return None,
    })
}
