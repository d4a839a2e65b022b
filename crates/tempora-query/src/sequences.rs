//! `nextval`, `currval`, `setval` and `lastval`: the values of sequences,
//! `CREATE SEQUENCE`'s and of `serial` and identity
//! columns (their DEFAULT is `nextval('<table>_<column>_seq')`). The engine
//! hands values out (`Engine::next_values`); `currval` is per session.
//! `nextval` ignores arguments after the first: the SQL layer numbers each
//! call of a statement with one, so that DataFusion keeps them apart.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use parking_lot::Mutex;
use tempora_common::{SqlState, TemporaError};
use tempora_storage::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Call {
    Next,
    Current,
    Set,
    Last,
}

/// The values this session's `nextval` calls gave, per sequence, and the
/// sequence of the latest (for `lastval`).
#[derive(Debug, Default)]
struct SessionValues {
    by_sequence: HashMap<u32, i64>,
    latest: Option<u32>,
}

#[derive(Debug)]
struct SequenceCall {
    engine: Arc<Engine>,
    /// The session's transaction block: calls run in its scope (DataFusion
    /// may run them on another task), so a sequence the block created is
    /// found and advanced there.
    tx: Arc<tempora_catalog::TxCatalog>,
    /// The last value `nextval` gave this session, per sequence.
    last: Arc<Mutex<SessionValues>>,
    call: Call,
    signature: Signature,
}

impl PartialEq for SequenceCall {
    fn eq(&self, other: &Self) -> bool {
        self.call == other.call
    }
}

impl Eq for SequenceCall {}

impl std::hash::Hash for SequenceCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.call.hash(state)
    }
}

impl ScalarUDFImpl for SequenceCall {
    fn name(&self) -> &str {
        match self.call {
            Call::Next => "nextval",
            Call::Current => "currval",
            Call::Set => "setval",
            Call::Last => "lastval",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(
            TemporaError::internal(format!("{} runs asynchronously", self.name()))
                .into_datafusion(),
        )
    }
}

impl SequenceCall {
    /// The sequence a `regclass` argument names (`'s'`, `'public.s'`, `'"S"'`).
    fn resolve(&self, name: &str) -> Result<(u32, String), TemporaError> {
        let parts: Vec<String> = name
            .split('.')
            .map(|p| {
                let p = p.trim();
                match p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                    Some(quoted) => quoted.replace("\"\"", "\""),
                    None => p.to_lowercase(),
                }
            })
            .collect();
        let (schema, seq) = match parts.as_slice() {
            [s] => (crate::PUBLIC.to_string(), s.clone()),
            [schema, s] => (schema.clone(), s.clone()),
            _ => (String::new(), name.to_string()),
        };
        let state = self.engine.catalog().snapshot();
        match state.sequence(&schema, &seq) {
            Some(s) => Ok((s.oid, s.name.clone())),
            None if state.relation_exists(&schema, &seq) => Err(TemporaError::new(
                SqlState::WRONG_OBJECT_TYPE,
                format!("\"{seq}\" is not a sequence"),
            )),
            None => Err(TemporaError::new(
                SqlState::UNDEFINED_TABLE,
                format!("relation \"{seq}\" does not exist"),
            )),
        }
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for SequenceCall {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        self.tx.scope(self.invoke_in_scope(args)).await
    }
}

impl SequenceCall {
    async fn invoke_in_scope(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        if self.call == Call::Last {
            let last = self.last.lock();
            let state = self.engine.catalog().snapshot();
            let value = last
                .latest
                .filter(|oid| state.sequences.contains_key(oid))
                .and_then(|oid| last.by_sequence.get(&oid))
                .copied()
                .ok_or_else(|| {
                    TemporaError::new(
                        SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                        "lastval is not yet defined in this session",
                    )
                    .into_datafusion()
                })?;
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Int64(Some(value)),
            ));
        }
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<_>>()?;
        let names = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let names = names
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| TemporaError::internal("sequence argument").into_datafusion())?;
        let mut out: Vec<Option<i64>> = Vec::with_capacity(rows);
        match self.call {
            Call::Next => {
                // Runs of one sequence take their values in one call.
                let mut row = 0;
                while row < rows {
                    if names.is_null(row) {
                        out.push(None);
                        row += 1;
                        continue;
                    }
                    let name = names.value(row);
                    let run = (row..rows)
                        .take_while(|r| !names.is_null(*r) && names.value(*r) == name)
                        .count();
                    let (oid, _) = self.resolve(name).map_err(|e| e.into_datafusion())?;
                    let values = self
                        .engine
                        .next_values(oid, run as u64)
                        .await
                        .map_err(|e| e.into_datafusion())?;
                    if let Some(v) = values.last() {
                        let mut last = self.last.lock();
                        last.by_sequence.insert(oid, *v);
                        last.latest = Some(oid);
                    }
                    out.extend(values.into_iter().map(Some));
                    row += run;
                }
            }
            Call::Current => {
                for row in 0..rows {
                    if names.is_null(row) {
                        out.push(None);
                        continue;
                    }
                    let (oid, name) = self
                        .resolve(names.value(row))
                        .map_err(|e| e.into_datafusion())?;
                    match self.last.lock().by_sequence.get(&oid) {
                        Some(v) => out.push(Some(*v)),
                        None => {
                            return Err(TemporaError::new(
                                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                                format!(
                                "currval of sequence \"{name}\" is not yet defined in this session"
                            ),
                            )
                            .into_datafusion())
                        }
                    }
                }
            }
            Call::Last => {
                return Err(TemporaError::internal("lastval takes no sequence").into_datafusion())
            }
            Call::Set => {
                let values = datafusion::arrow::compute::cast(
                    arrays.get(1).ok_or_else(|| {
                        TemporaError::new(
                            SqlState::UNDEFINED_FUNCTION,
                            "function setval(regclass) does not exist",
                        )
                        .into_datafusion()
                    })?,
                    &DataType::Int64,
                )?;
                let values = values
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| TemporaError::internal("setval value").into_datafusion())?;
                let called = match arrays.get(2) {
                    Some(a) => Some(datafusion::arrow::compute::cast(a, &DataType::Boolean)?),
                    None => None,
                };
                let called = called
                    .as_ref()
                    .and_then(|a| a.as_any().downcast_ref::<BooleanArray>());
                for row in 0..rows {
                    if names.is_null(row) || values.is_null(row) {
                        out.push(None);
                        continue;
                    }
                    let (oid, _) = self
                        .resolve(names.value(row))
                        .map_err(|e| e.into_datafusion())?;
                    let is_called = called.is_none_or(|c| c.is_null(row) || c.value(row));
                    let v = values.value(row);
                    self.engine
                        .set_sequence(oid, v, is_called)
                        .await
                        .map_err(|e| e.into_datafusion())?;
                    if is_called {
                        self.last.lock().by_sequence.insert(oid, v);
                    }
                    out.push(Some(v));
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(out))))
    }
}

/// The session's `nextval`, `currval`, `setval` and `lastval`.
pub fn sequence_functions(
    engine: &Arc<Engine>,
    tx: &Arc<tempora_catalog::TxCatalog>,
) -> Vec<ScalarUDF> {
    let last = Arc::new(Mutex::new(SessionValues::default()));
    [Call::Next, Call::Current, Call::Set, Call::Last]
        .into_iter()
        .map(|call| {
            AsyncScalarUDF::new(Arc::new(SequenceCall {
                engine: engine.clone(),
                tx: tx.clone(),
                last: last.clone(),
                call,
                signature: match call {
                    Call::Last => Signature::nullary(Volatility::Volatile),
                    _ => Signature::variadic_any(Volatility::Volatile),
                },
            }))
            .into_scalar_udf()
        })
        .collect()
}
