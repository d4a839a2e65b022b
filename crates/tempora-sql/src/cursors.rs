//! Cursors: `DECLARE name [NO SCROLL] CURSOR [WITH HOLD] FOR query`,
//! `FETCH [FORWARD] [n | ALL | NEXT] FROM name`, `CLOSE name | ALL`. psql's
//! FETCH_COUNT and clients that page through large results use them. The
//! query runs as a stream that each FETCH reads the next rows of; the
//! files it reads stay on disk until the cursor closes.

use std::collections::VecDeque;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{
    CloseCursor, Declare, FetchDirection, Statement, Value, ValueWithSpan,
};
use futures::StreamExt;
use tempora_common::{Result, SqlState, TemporaError};

use crate::{Kind, Notice, Outcome, Prepared, SqlSession, TxState};

/// An open cursor of a session.
pub(crate) struct Cursor {
    name: String,
    schema: SchemaRef,
    /// Behind a lock only so that a session stays Sync; FETCH has the
    /// session to itself and reaches the stream through `get_mut`.
    stream: std::sync::Mutex<SendableRecordBatchStream>,
    /// Rows read from the stream and not fetched yet.
    pending: VecDeque<RecordBatch>,
    /// WITH HOLD: outlives the transaction block that declared it.
    hold: bool,
    /// Declared in the open transaction block (a ROLLBACK closes it).
    in_block: bool,
    _pin: tempora_storage::ReadPin,
}

/// A parsed cursor statement.
#[derive(Debug, Clone)]
pub enum CursorCommand {
    Declare {
        name: String,
        hold: bool,
        query: Box<Prepared>,
    },
    /// FETCH: None fetches every remaining row.
    Fetch { name: String, count: Option<u64> },
    /// CLOSE: None closes every cursor.
    Close(Option<String>),
}

fn undefined(name: &str) -> TemporaError {
    TemporaError::new(
        SqlState("34000"),
        format!("cursor \"{name}\" does not exist"),
    )
}

fn count_of(limit: &ValueWithSpan) -> Result<u64> {
    match &limit.value {
        Value::Number(n, _) => n
            .parse::<u64>()
            .map_err(|_| TemporaError::syntax(format!("invalid FETCH count {n}"))),
        other => Err(TemporaError::syntax(format!("invalid FETCH count {other}"))),
    }
}

impl SqlSession {
    /// Plans a cursor statement, or gives it back when it is none.
    pub(crate) async fn prepare_cursor(
        &self,
        sql: &str,
        stmt: Statement,
    ) -> Result<std::result::Result<Prepared, Statement>> {
        let command = match stmt {
            Statement::Declare { stmts } => {
                let [d]: [Declare; 1] = stmts.try_into().map_err(|_| {
                    TemporaError::not_supported("DECLARE of several cursors at once")
                })?;
                if d.scroll == Some(true) {
                    return Err(TemporaError::not_supported("SCROLL cursors"));
                }
                let (Some(query), [name]) = (d.for_query, d.names.as_slice()) else {
                    return Err(TemporaError::syntax("DECLARE needs CURSOR FOR a query"));
                };
                let query = Box::pin(self.prepare_statement(sql, Statement::Query(query))).await?;
                if !matches!(query.kind, Kind::Query(_) | Kind::Gapfill(_)) {
                    return Err(TemporaError::not_supported("a cursor over this statement"));
                }
                CursorCommand::Declare {
                    name: crate::ddl::ident_name(name),
                    hold: d.hold == Some(true),
                    query: Box::new(query),
                }
            }
            Statement::Fetch {
                name,
                direction,
                into: None,
                ..
            } => {
                let count = match &direction {
                    FetchDirection::Next | FetchDirection::Forward { limit: None } => Some(1),
                    FetchDirection::Count { limit }
                    | FetchDirection::Forward { limit: Some(limit) } => Some(count_of(limit)?),
                    FetchDirection::All | FetchDirection::ForwardAll => None,
                    _ => {
                        return Err(TemporaError::new(
                            SqlState("55000"),
                            "cursor can only scan forward",
                        )
                        .with_hint("Tempora's cursors are NO SCROLL."))
                    }
                };
                CursorCommand::Fetch {
                    name: crate::ddl::ident_name(&name),
                    count,
                }
            }
            Statement::Close { cursor } => CursorCommand::Close(match cursor {
                CloseCursor::All => None,
                CloseCursor::Specific { name } => Some(crate::ddl::ident_name(&name)),
            }),
            other => return Ok(Err(other)),
        };
        // FETCH describes the rows of its cursor.
        let schema = match &command {
            CursorCommand::Fetch { name, .. } => self
                .cursors
                .iter()
                .find(|c| c.name == *name)
                .map(|c| c.schema.clone()),
            _ => None,
        };
        Ok(Ok(Prepared {
            sql: sql.to_string(),
            kind: Kind::Cursor(Box::new(command)),
            param_types: vec![],
            result_schema: schema,
            definitions: self.engine.catalog().definitions(),
        }))
    }

    pub(crate) async fn run_cursor(
        &mut self,
        command: &CursorCommand,
    ) -> Result<(Outcome, Vec<Notice>)> {
        match command {
            CursorCommand::Declare { name, hold, query } => {
                if self.tx == TxState::Idle && !hold {
                    return Err(TemporaError::new(
                        SqlState::NO_ACTIVE_SQL_TRANSACTION,
                        "DECLARE CURSOR can only be used in transaction blocks",
                    ));
                }
                if self.cursors.iter().any(|c| c.name == *name) {
                    return Err(TemporaError::new(
                        SqlState("42P03"),
                        format!("cursor \"{name}\" already exists"),
                    ));
                }
                let Kind::Query(plan) = &query.kind else {
                    return Err(TemporaError::not_supported(
                        "a cursor over a time_bucket_gapfill query",
                    ));
                };
                let schema = crate::output_schema(plan.schema().as_arrow());
                let (stream, pin) = self.start_stream(plan.as_ref().clone()).await?;
                self.cursors.push(Cursor {
                    name: name.clone(),
                    schema,
                    stream: std::sync::Mutex::new(stream),
                    pending: VecDeque::new(),
                    hold: *hold,
                    in_block: self.tx != TxState::Idle,
                    _pin: pin,
                });
                Ok((Outcome::Command("DECLARE CURSOR".into()), vec![]))
            }
            CursorCommand::Fetch { name, count } => {
                let cursor = self
                    .cursors
                    .iter_mut()
                    .find(|c| c.name == *name)
                    .ok_or_else(|| undefined(name))?;
                let mut wanted = count.unwrap_or(u64::MAX);
                let mut batches = Vec::new();
                while wanted > 0 {
                    let batch = match cursor.pending.pop_front() {
                        Some(b) => b,
                        None => match cursor
                            .stream
                            .get_mut()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .next()
                            .await
                        {
                            Some(b) => b.map_err(TemporaError::from_datafusion)?,
                            None => break,
                        },
                    };
                    let rows = batch.num_rows() as u64;
                    if rows <= wanted {
                        wanted -= rows;
                        batches.push(batch);
                    } else {
                        let take = wanted as usize;
                        batches.push(batch.slice(0, take));
                        cursor
                            .pending
                            .push_front(batch.slice(take, batch.num_rows() - take));
                        wanted = 0;
                    }
                }
                let schema = cursor.schema.clone();
                let batches = batches
                    .into_iter()
                    .map(|b| {
                        RecordBatch::try_new(schema.clone(), b.columns().to_vec())
                            .map_err(|e| TemporaError::internal(e.to_string()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((
                    Outcome::Rows {
                        schema,
                        batches,
                        tag: "FETCH".into(),
                    },
                    vec![],
                ))
            }
            CursorCommand::Close(None) => {
                self.cursors.clear();
                Ok((Outcome::Command("CLOSE CURSOR ALL".into()), vec![]))
            }
            CursorCommand::Close(Some(name)) => {
                let at = self
                    .cursors
                    .iter()
                    .position(|c| c.name == *name)
                    .ok_or_else(|| undefined(name))?;
                self.cursors.remove(at);
                Ok((Outcome::Command("CLOSE CURSOR".into()), vec![]))
            }
        }
    }

    /// The end of a transaction block: COMMIT keeps WITH HOLD cursors,
    /// ROLLBACK also closes those the block declared.
    pub(crate) fn end_block_cursors(&mut self, committed: bool) {
        self.cursors
            .retain(|c| c.hold && (committed || !c.in_block));
        for c in &mut self.cursors {
            c.in_block = false;
        }
    }
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("name", &self.name).finish()
    }
}
