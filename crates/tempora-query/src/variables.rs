//! What of a session's SQL-layer state its queries read: the run-time
//! parameters (`current_setting(name [, missing_ok])`) and the SQL-level
//! prepared statements (`pg_prepared_statements`). The SQL layer owns
//! both and publishes every change here.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use parking_lot::RwLock;
use tempora_common::{SqlState, TemporaError};

/// Parameter values by lower-case name; one per session (a SessionConfig
/// extension).
#[derive(Debug, Default)]
pub struct SessionVariables(
    RwLock<BTreeMap<String, String>>,
    RwLock<Vec<(String, String)>>,
);

impl SessionVariables {
    /// Records a parameter's name as PostgreSQL spells it and its built-in
    /// default (`pg_settings.boot_val`).
    pub fn declare(&self, name: &str, default: &str) {
        self.1.write().push((name.to_string(), default.to_string()));
        self.publish(name, default);
    }

    /// Every declared parameter: (name, built-in default, current value).
    pub fn all(&self) -> Vec<(String, String, String)> {
        let declared = self.1.read().clone();
        declared
            .into_iter()
            .map(|(name, default)| {
                let current = self.get(&name).unwrap_or_else(|| default.clone());
                (name, default, current)
            })
            .collect()
    }

    pub fn publish(&self, name: &str, value: &str) {
        self.0
            .write()
            .insert(name.to_lowercase(), value.to_string());
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.0.read().get(&name.to_lowercase()).cloned()
    }

    /// The session's time zone (its `TimeZone` setting; UTC when unset).
    pub fn time_zone(&self) -> tempora_copy::zone::PgTimeZone {
        self.get("TimeZone").map_or_else(Default::default, |z| {
            tempora_copy::zone::PgTimeZone::of_setting(&z)
        })
    }

    /// The session's `search_path` as schema names.
    pub fn search_path(&self) -> Vec<String> {
        let user = self.get("session_authorization").unwrap_or_default();
        parse_search_path(
            self.get("search_path")
                .as_deref()
                .unwrap_or("\"$user\", public"),
            &user,
        )
    }
}

/// The schemas a `search_path` value names, in order: quoted names kept as
/// written, others folded to lower case, `$user` as the session's role.
pub fn parse_search_path(value: &str, user: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(
            |p| match p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => p.to_lowercase(),
            },
        )
        .map(|s| if s == "$user" { user.to_string() } else { s })
        .collect()
}

/// A session's variables as a function bound to them holds them: two are
/// equal when they are the same session's, so the functions that read them
/// (`current_setting`, `to_char`, ...) can derive equality and hashing.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle(pub(crate) Arc<SessionVariables>);

impl PartialEq for SessionHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SessionHandle {}

impl std::hash::Hash for SessionHandle {
    fn hash<H: std::hash::Hasher>(&self, _state: &mut H) {}
}

impl std::ops::Deref for SessionHandle {
    type Target = SessionVariables;

    fn deref(&self) -> &SessionVariables {
        &self.0
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    variables: SessionHandle,
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::pg_types::map_rows(&args, &DataType::Utf8, |values| {
            let missing_ok = matches!(values.get(1), Some(ScalarValue::Boolean(Some(true))));
            let Some(ScalarValue::Utf8(Some(name))) = values
                .first()
                .map(|v| v.cast_to(&DataType::Utf8))
                .transpose()?
            else {
                return Ok(ScalarValue::Utf8(None));
            };
            match self.variables.get(&name) {
                Some(v) => Ok(ScalarValue::Utf8(Some(v))),
                None if missing_ok => Ok(ScalarValue::Utf8(None)),
                None => Err(TemporaError::new(
                    SqlState::UNDEFINED_OBJECT,
                    format!("unrecognized configuration parameter \"{name}\""),
                )
                .into_datafusion()),
            }
        })
    }
}

/// `current_setting(text [, missing_ok boolean]) → text` over `variables`.
pub fn current_setting_udf(variables: Arc<SessionVariables>) -> ScalarUDF {
    ScalarUDF::new_from_impl(CurrentSetting {
        variables: SessionHandle(variables),
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
    })
}

/// One row of `pg_prepared_statements`.
#[derive(Debug, Clone)]
pub struct PreparedStatementInfo {
    pub name: String,
    /// The PREPARE command as the client sent it.
    pub statement: String,
    /// Microseconds since the Unix epoch.
    pub prepare_time: i64,
    /// PostgreSQL's names of the parameter types.
    pub parameter_types: Vec<String>,
}

/// The session's SQL-level prepared statements (a SessionConfig extension).
#[derive(Debug, Default)]
pub struct SessionPrepared(RwLock<Vec<PreparedStatementInfo>>);

impl SessionPrepared {
    pub fn publish(&self, statements: Vec<PreparedStatementInfo>) {
        *self.0.write() = statements;
    }

    pub fn list(&self) -> Vec<PreparedStatementInfo> {
        self.0.read().clone()
    }
}

/// `session_user` (and `current_user`, which the catalog emulation reads
/// as it): the role the session logged in as.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SessionUser {
    name: &'static str,
    variables: SessionHandle,
    signature: Signature,
}

impl ScalarUDFImpl for SessionUser {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
            self.variables.get("session_authorization"),
        )))
    }
}

/// `session_user`, `current_user` and `current_role` over `variables`.
pub fn session_user_udfs(variables: &Arc<SessionVariables>) -> Vec<ScalarUDF> {
    ["session_user", "current_user", "current_role"]
        .into_iter()
        .map(|name| {
            ScalarUDF::new_from_impl(SessionUser {
                name,
                variables: SessionHandle(variables.clone()),
                signature: Signature::exact(vec![], Volatility::Stable),
            })
        })
        .collect()
}
