//! The DataFusion session of one client connection: Tempora's tables, its
//! TimescaleDB functions and the `pg_catalog` that clients introspect.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{
    CatalogProvider, MemTable, SchemaProvider, TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use datafusion::error::Result as DfResult;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;
use parking_lot::RwLock;
use tempora_catalog::CatalogState;
use tempora_common::TemporaError;
use tempora_storage::Engine;

use crate::chunks::ChunkSelection;
use crate::provider::{TemporaTable, STORE_URL};

/// The one database every connection sees, as PostgreSQL names it.
/// The first database (the name of the others is their engine's).
pub const DATABASE: &str = tempora_catalog::FIRST_DATABASE;
/// The default schema.
pub const PUBLIC: &str = "public";

/// Resolves the tables of one schema from the catalog at lookup time, so
/// tables created by other sessions are seen at once.
#[derive(Debug)]
struct TemporaSchema {
    engine: Arc<Engine>,
    schema: String,
    state: Weak<RwLock<SessionState>>,
}

#[async_trait]
impl SchemaProvider for TemporaSchema {
    fn table_names(&self) -> Vec<String> {
        let cat = self.engine.catalog().snapshot();
        cat.tables
            .values()
            .filter(|t| t.schema == self.schema)
            .map(|t| t.name.clone())
            .chain(
                cat.views
                    .values()
                    .filter(|v| v.schema == self.schema)
                    .map(|v| v.name.clone()),
            )
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let cat = self.engine.catalog().snapshot();
        if let Some(def) = cat.table(&self.schema, name) {
            return Ok(Some(Arc::new(TemporaTable::new(
                self.engine.clone(),
                def.clone(),
                &self.state,
            ))));
        }
        if let Some(seq) = cat.sequence(&self.schema, name) {
            return sequence_relation(&self.engine, seq).await.map(Some);
        }
        let Some(view) = cat.view(&self.schema, name) else {
            return Ok(None);
        };
        if let Some(m) = &view.materialized {
            // Its rows as of the last refresh, read as a table's.
            if !m.populated {
                return Err(TemporaError::new(
                    tempora_common::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE,
                    format!("materialized view \"{name}\" has not been populated"),
                )
                .with_hint("Use the REFRESH MATERIALIZED VIEW command.")
                .into_datafusion());
            }
            let Some(def) = cat.table_by_oid(m.table_oid) else {
                return Ok(None);
            };
            return Ok(Some(Arc::new(TemporaTable::new(
                self.engine.clone(),
                def.clone(),
                &self.state,
            ))));
        }
        // Planned again on every read, against the tables as they are now.
        let Some(state) = self.state.upgrade() else {
            return Ok(None);
        };
        let state = state.read().clone();
        let sql = match &view.continuous {
            Some(c) => crate::caggs::read_sql(&cat, view, c)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
            None => view.sql.clone(),
        };
        let dialect = tempora_common::sql_parser::TemporaDialect::for_text(&sql);
        let mut statements =
            datafusion::sql::parser::DFParser::parse_sql_with_dialect(&sql, &dialect)?;
        let statement = statements.pop_front().ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("view \"{name}\" has no query"))
        })?;
        let plan = state.statement_to_plan(statement).await?;
        Ok(Some(Arc::new(ViewTable::new(
            plan,
            Some(view.definition.clone()),
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        let cat = self.engine.catalog().snapshot();
        cat.table(&self.schema, name).is_some()
            || cat.view(&self.schema, name).is_some()
            || cat.sequence(&self.schema, name).is_some()
    }
}

#[derive(Debug)]
struct TemporaCatalog {
    engine: Arc<Engine>,
    state: Weak<RwLock<SessionState>>,
    public: Arc<dyn SchemaProvider>,
    /// System schemas registered by the session (pg_catalog, ...).
    others: RwLock<Vec<(String, Arc<dyn SchemaProvider>)>>,
}

impl CatalogProvider for TemporaCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![PUBLIC.to_string()];
        names.extend(self.others.read().iter().map(|(n, _)| n.clone()));
        names.extend(self.engine.catalog().snapshot().schemas.iter().cloned());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == PUBLIC {
            return Some(self.public.clone());
        }
        if let Some(s) = self
            .others
            .read()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
        {
            return Some(s);
        }
        // Schemas made by CREATE SCHEMA, seen by every session at once, and
        // the one holding continuous aggregates' materializations.
        let cat = self.engine.catalog().snapshot();
        (cat.schema_exists(name) || name == tempora_catalog::CHUNK_SCHEMA).then(|| {
            Arc::new(TemporaSchema {
                engine: self.engine.clone(),
                schema: name.to_string(),
                state: self.state.clone(),
            }) as Arc<dyn SchemaProvider>
        })
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        let mut others = self.others.write();
        let old = others
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| others.remove(i).1);
        others.push((name.to_string(), schema));
        Ok(old)
    }
}

/// `pg_catalog` with Tempora's own answers where the generic one falls
/// short: the relations describing Tempora's objects
/// ([`crate::pg_relations`]), extensions and `pg_indexes`.
#[derive(Debug)]
struct PgCatalogOverlay {
    inner: Arc<dyn SchemaProvider>,
    engine: Arc<Engine>,
    state: Weak<RwLock<SessionState>>,
}

impl PgCatalogOverlay {
    /// The schemas holding relations every database has.
    fn system_schemas(&self) -> Vec<(&'static str, Arc<dyn SchemaProvider>)> {
        // Listing needs only its views' columns.
        let info: Arc<dyn SchemaProvider> =
            Arc::new(crate::information_schema::InformationSchemaViews {
                source: None,
                database: self.engine.options().database.clone(),
            });
        vec![
            ("pg_catalog", self.inner.clone()),
            ("information_schema", info),
            (
                crate::information::SCHEMA,
                Arc::new(crate::information::InformationSchema::new(
                    self.engine.clone(),
                )),
            ),
        ]
    }

    /// `pg_proc`: the built-in functions, and TimescaleDB's that Tempora
    /// implements once the extension has been created.
    async fn pg_proc(&self) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let mut rows = builtin_rows(self.inner.as_ref(), "pg_proc").await?;
        let Some(schema) = rows.first().map(RecordBatch::schema) else {
            return self.inner.table("pg_proc").await;
        };
        let state = self.engine.catalog().snapshot();
        if state.extensions.iter().any(|e| e == "timescaledb") {
            rows.push(crate::extension_functions::pg_proc_rows(&schema)?);
        }
        if !state.functions.is_empty() {
            rows.push(crate::extension_functions::sql_function_rows(
                &schema, &state,
            )?);
        }
        Ok(Some(Arc::new(MemTable::try_new(schema, vec![rows])?)))
    }

    /// `pg_settings`: the session's parameters, their built-in defaults
    /// (`boot_val`) and whether the session changed them (`source`).
    fn settings(&self) -> DfResult<Arc<dyn TableProvider>> {
        let mut all = self
            .state
            .upgrade()
            .and_then(|s| {
                s.read()
                    .config()
                    .get_extension::<crate::variables::SessionVariables>()
            })
            .map(|v| v.all())
            .unwrap_or_default();
        all.sort_by_key(|(name, _, _)| name.to_lowercase());
        // (name, built-in default, current value)
        type Setting = (String, String, String);
        let text = |f: &dyn Fn(&Setting) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(all.iter().map(f).collect::<Vec<_>>()))
        };
        let null_text =
            || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; all.len()])) };
        let fields = [
            "name",
            "setting",
            "unit",
            "category",
            "short_desc",
            "extra_desc",
            "context",
            "vartype",
            "source",
            "min_val",
            "max_val",
            "enumvals",
            "boot_val",
            "reset_val",
            "sourcefile",
        ];
        let mut schema: Vec<Field> = fields
            .iter()
            .map(|f| Field::new(*f, DataType::Utf8, true))
            .collect();
        schema.push(Field::new("sourceline", DataType::Int32, true));
        schema.push(Field::new("pending_restart", DataType::Boolean, false));
        let cols: Vec<ArrayRef> = vec![
            text(&|(n, _, _)| Some(n.clone())),
            text(&|(_, _, v)| Some(v.clone())),
            null_text(),
            text(&|_| Some("Tempora".into())),
            text(&|_| Some(String::new())),
            null_text(),
            text(&|_| Some("user".into())),
            text(&|_| Some("string".into())),
            text(&|(_, d, v)| Some(if d == v { "default" } else { "session" }.into())),
            null_text(),
            null_text(),
            null_text(),
            text(&|(_, d, _)| Some(d.clone())),
            text(&|(_, d, _)| Some(d.clone())),
            null_text(),
            Arc::new(Int32Array::from(vec![None::<i32>; all.len()])),
            Arc::new(BooleanArray::from(vec![false; all.len()])),
        ];
        let schema = Arc::new(Schema::new(schema));
        crate::information::table_of(schema, cols)
    }

    /// `pg_prepared_statements`: the session's PREPAREd statements.
    fn prepared_statements(&self) -> DfResult<Arc<dyn TableProvider>> {
        use datafusion::arrow::array::{
            BooleanArray, Int64Array, ListBuilder, StringBuilder, TimestampMicrosecondArray,
        };
        let list = self
            .state
            .upgrade()
            .and_then(|s| {
                s.read()
                    .config()
                    .get_extension::<crate::variables::SessionPrepared>()
            })
            .map(|p| p.list())
            .unwrap_or_default();
        let text_list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("statement", DataType::Utf8, false),
            Field::new(
                "prepare_time",
                DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                false,
            ),
            Field::new("parameter_types", text_list, false),
            Field::new("from_sql", DataType::Boolean, false),
            Field::new("generic_plans", DataType::Int64, false),
            Field::new("custom_plans", DataType::Int64, false),
        ]));
        let mut types = ListBuilder::new(StringBuilder::new());
        for p in &list {
            for t in &p.parameter_types {
                types.values().append_value(t);
            }
            types.append(true);
        }
        let n = list.len();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(list.iter().map(|p| &p.name))),
            Arc::new(StringArray::from_iter_values(
                list.iter().map(|p| &p.statement),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(list.iter().map(|p| p.prepare_time))
                    .with_timezone("UTC"),
            ),
            Arc::new(types.finish()),
            Arc::new(BooleanArray::from(vec![true; n])),
            Arc::new(Int64Array::from(vec![0; n])),
            Arc::new(Int64Array::from(vec![0; n])),
        ];
        crate::information::table_of(schema, cols)
    }

    /// The columns of every view, from planning it (a view that no longer
    /// plans lists none).
    async fn view_columns(
        &self,
        state: &CatalogState,
    ) -> std::collections::HashMap<u32, datafusion::arrow::datatypes::SchemaRef> {
        let mut out = std::collections::HashMap::new();
        for v in state.views.values() {
            let schema = TemporaSchema {
                engine: self.engine.clone(),
                schema: v.schema.clone(),
                state: self.state.clone(),
            };
            if let Ok(Some(t)) = schema.table(&v.name).await {
                out.insert(v.oid, t.schema());
            }
        }
        out
    }

    /// Whether the session runs as a superuser.
    fn superuser(&self) -> bool {
        self.state.upgrade().is_some_and(|state| {
            state
                .read()
                .config()
                .get_extension::<crate::variables::SessionVariables>()
                .and_then(|v| v.get("is_superuser"))
                .as_deref()
                == Some("on")
        })
    }

    /// One of the relations built from Tempora's catalog, or None for the
    /// generic emulation's.
    async fn described(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        const DESCRIBED: &[&str] = &[
            "pg_namespace",
            "pg_class",
            "pg_attribute",
            "pg_attrdef",
            "pg_index",
            "pg_constraint",
            "pg_description",
            "pg_inherits",
            "pg_sequence",
            "pg_policy",
            "pg_statistic_ext",
            "pg_roles",
            "pg_authid",
        ];
        let Some(&name) = DESCRIBED.iter().find(|n| n.eq_ignore_ascii_case(name)) else {
            return Ok(None);
        };
        if name == "pg_authid" && !self.superuser() {
            // It holds the password hashes.
            return Err(TemporaError::new(
                tempora_common::SqlState::INSUFFICIENT_PRIVILEGE,
                "permission denied for table pg_authid",
            )
            .into_datafusion());
        }
        let layout = crate::pg_relations::layout(self.inner.as_ref(), name).await?;
        let with_view_columns = matches!(name, "pg_class" | "pg_attribute");
        let (state, system, user) =
            crate::information_schema::RelationSource::with_snapshot(self, with_view_columns)
                .await?;
        if name == "pg_attribute" {
            let schema = crate::pg_relations::Snapshot::pg_attribute_layout(&layout);
            return Ok(Some(Arc::new(crate::pg_relations::FilteredCatalogTable {
                schema,
                key: "attrelid",
                build: Box::new(move |only| {
                    let snapshot = crate::pg_relations::Snapshot {
                        state: &state,
                        system: &system,
                        user: user.clone(),
                    };
                    snapshot.pg_attribute_rows(&layout, only)
                }),
            })));
        }
        let snapshot = crate::pg_relations::Snapshot {
            state: &state,
            system: &system,
            user,
        };
        Ok(Some(match name {
            "pg_namespace" => snapshot.pg_namespace(layout)?,
            "pg_class" => snapshot.pg_class(layout)?,
            "pg_attrdef" => snapshot.pg_attrdef(layout)?,
            "pg_index" => snapshot.pg_index(layout)?,
            "pg_constraint" => snapshot.pg_constraint(layout)?,
            "pg_description" => {
                let builtin = builtin_rows(self.inner.as_ref(), name).await?;
                snapshot.pg_description(layout, builtin)?
            }
            "pg_inherits" => snapshot.pg_inherits(layout)?,
            "pg_roles" => crate::pg_relations::pg_roles(layout, &state, true)?,
            "pg_authid" => crate::pg_relations::pg_roles(layout, &state, false)?,
            "pg_policy" => {
                crate::pg_relations::empty_with_arrays(&layout, &[("polroles", DataType::Int32)])?
            }
            "pg_statistic_ext" => crate::pg_relations::empty_with_arrays(
                &layout,
                &[("stxkind", DataType::Utf8), ("stxkeys", DataType::Int16)],
            )?,
            _ => snapshot.pg_sequence(layout)?,
        }))
    }
}

#[async_trait]
impl crate::information_schema::RelationSource for PgCatalogOverlay {
    async fn with_snapshot(
        &self,
        view_columns: bool,
    ) -> DfResult<crate::information_schema::RelationsSnapshot> {
        let system = crate::pg_relations::system_relations(&self.system_schemas()).await?;
        let state = self.engine.catalog().snapshot();
        let views = if view_columns {
            self.view_columns(&state).await
        } else {
            Default::default()
        };
        let user = crate::pg_relations::user_relations(&state, &views);
        Ok((state, system, user))
    }
}

/// The rows the generic emulation holds for one of its static relations,
/// read once per process.
async fn builtin_rows(inner: &dyn SchemaProvider, name: &str) -> DfResult<Vec<RecordBatch>> {
    static CACHE: std::sync::OnceLock<
        parking_lot::Mutex<std::collections::HashMap<String, Vec<RecordBatch>>>,
    > = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(rows) = cache.lock().get(name) {
        return Ok(rows.clone());
    }
    let Some(table) = inner.table(name).await? else {
        return Ok(vec![]);
    };
    let ctx = SessionContext::new();
    let rows = ctx.read_table(table)?.collect().await?;
    cache.lock().insert(name.to_string(), rows.clone());
    Ok(rows)
}

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if let Some(t) = self.described(name).await? {
            return Ok(Some(t));
        }
        if name.eq_ignore_ascii_case("pg_extension") {
            return pg_extension(&self.engine.catalog().snapshot()).map(Some);
        }
        if name.eq_ignore_ascii_case("pg_available_extensions") {
            return pg_available_extensions(&self.engine.catalog().snapshot()).map(Some);
        }
        if name.eq_ignore_ascii_case("pg_proc") {
            return self.pg_proc().await;
        }
        if name.eq_ignore_ascii_case("pg_database") {
            return pg_database(&self.engine.catalog().snapshot()).map(Some);
        }
        if name.eq_ignore_ascii_case("pg_settings") {
            return self.settings().map(Some);
        }
        if name.eq_ignore_ascii_case("pg_db_role_setting") {
            return pg_db_role_setting(&self.engine.catalog().snapshot()).map(Some);
        }
        if name.eq_ignore_ascii_case("pg_prepared_statements") {
            return self.prepared_statements().map(Some);
        }
        if name.eq_ignore_ascii_case("pg_indexes") {
            return pg_indexes(&self.engine.catalog().snapshot()).map(Some);
        }
        if name.eq_ignore_ascii_case("pg_sequences") {
            return pg_sequences(&self.engine).await.map(Some);
        }
        if name.eq_ignore_ascii_case("pg_matviews") {
            return pg_matviews(&self.engine.catalog().snapshot()).map(Some);
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// `pg_database`: the first database and those `CREATE DATABASE` made
/// (every catalog keeps a copy of the list).
fn pg_database(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    use datafusion::arrow::array::ListArray;
    use datafusion::arrow::datatypes::Int32Type;
    let schema = Arc::new(Schema::new(vec![
        Field::new("oid", DataType::Int32, false),
        Field::new("datname", DataType::Utf8, false),
        Field::new("datdba", DataType::Int32, false),
        Field::new("encoding", DataType::Int32, false),
        Field::new("datlocprovider", DataType::Utf8, false),
        Field::new("datcollate", DataType::Utf8, false),
        Field::new("datctype", DataType::Utf8, false),
        Field::new("datistemplate", DataType::Boolean, false),
        Field::new("datallowconn", DataType::Boolean, false),
        Field::new("datconnlimit", DataType::Int32, false),
        Field::new("datlastsysoid", DataType::Int32, false),
        Field::new("datfrozenxid", DataType::Int32, false),
        Field::new("datminmxid", DataType::Int32, false),
        Field::new("dattablespace", DataType::Int32, false),
        Field::new("daticulocale", DataType::Utf8, true),
        Field::new("daticurules", DataType::Utf8, true),
        Field::new(
            "datacl",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        ),
    ]));
    let all = state.all_databases();
    let dbs: Vec<&tempora_catalog::DatabaseDef> = all.iter().collect();
    let n = dbs.len();
    let int = |f: &dyn Fn(&tempora_catalog::DatabaseDef) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(dbs.iter().map(|d| f(d))))
    };
    let text = |f: &dyn Fn(&tempora_catalog::DatabaseDef) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(dbs.iter().map(|d| f(d))))
    };
    let cols: Vec<ArrayRef> = vec![
        int(&|d| d.oid as i32),
        text(&|d| &d.name),
        int(&|d| d.owner as i32),
        // UTF8
        int(&|_| 6),
        text(&|_| "c"),
        text(&|d| &d.collate),
        text(&|d| &d.ctype),
        Arc::new(BooleanArray::from(vec![false; n])),
        Arc::new(BooleanArray::from_iter(
            dbs.iter().map(|d| Some(d.allow_connections)),
        )),
        int(&|d| d.connection_limit),
        int(&|_| 16383),
        int(&|_| 716),
        int(&|_| 1),
        // pg_default
        int(&|_| 1663),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..n).map(|_| None::<Vec<Option<i32>>>),
        )),
    ];
    crate::information::table_of(schema, cols)
}

/// `pg_db_role_setting`: the databases' parameter defaults (`ALTER DATABASE
/// ... SET`); Tempora has no per-role defaults.
fn pg_db_role_setting(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    use datafusion::arrow::array::{ListBuilder, StringBuilder};
    let schema = Arc::new(Schema::new(vec![
        Field::new("setdatabase", DataType::Int32, false),
        Field::new("setrole", DataType::Int32, false),
        Field::new(
            "setconfig",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
    ]));
    let dbs: Vec<_> = state
        .all_databases()
        .into_iter()
        .filter(|d| !d.settings.is_empty())
        .collect();
    let mut config = ListBuilder::new(StringBuilder::new());
    for d in &dbs {
        for (name, value) in &d.settings {
            config.values().append_value(format!("{name}={value}"));
        }
        config.append(true);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            dbs.iter().map(|d| d.oid as i32),
        )),
        Arc::new(Int32Array::from(vec![0; dbs.len()])),
        Arc::new(config.finish()),
    ];
    crate::information::table_of(schema, cols)
}

fn pg_extension(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("oid", DataType::Int32, false),
        Field::new("extname", DataType::Utf8, false),
        Field::new("extowner", DataType::Int32, false),
        Field::new("extnamespace", DataType::Int32, false),
        Field::new("extrelocatable", DataType::Boolean, false),
        Field::new("extversion", DataType::Utf8, false),
    ]));
    let n = state.extensions.len();
    let versions: Vec<&str> = state
        .extensions
        .iter()
        .map(|e| extension_version(e).unwrap_or("1.0"))
        .collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            (0..n).map(|i| crate::pg_functions::extension_oid(i) as i32),
        )),
        Arc::new(StringArray::from_iter_values(state.extensions.iter())),
        Arc::new(Int32Array::from(vec![10; n])),
        // plpgsql lives in pg_catalog, timescaledb where it was created.
        Arc::new(Int32Array::from_iter_values(state.extensions.iter().map(
            |e| {
                if e == "plpgsql" {
                    crate::pg_relations::PG_CATALOG_NAMESPACE as i32
                } else {
                    crate::pg_relations::PUBLIC_NAMESPACE as i32
                }
            },
        ))),
        Arc::new(BooleanArray::from(vec![false; n])),
        Arc::new(StringArray::from(versions)),
    ];
    crate::information::table_of(schema, cols)
}

/// The extensions `CREATE EXTENSION` accepts: (name, version, comment).
const AVAILABLE_EXTENSIONS: &[(&str, &str, &str)] = &[
    ("plpgsql", "1.0", "PL/pgSQL procedural language"),
    (
        "timescaledb",
        crate::TIMESCALEDB_VERSION,
        "Enables scalable inserts and complex queries for time-series data (Community Edition)",
    ),
];

/// The version of an extension `CREATE EXTENSION` accepts; None for others.
pub fn extension_version(name: &str) -> Option<&'static str> {
    AVAILABLE_EXTENSIONS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, version, _)| *version)
}

/// `pg_available_extensions`: what `CREATE EXTENSION` accepts, and the
/// version installed in this database if it was created. Tools (and
/// scripts checking for TimescaleDB before `CREATE EXTENSION`) read it.
fn pg_available_extensions(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("default_version", DataType::Utf8, true),
        Field::new("installed_version", DataType::Utf8, true),
        Field::new("comment", DataType::Utf8, true),
    ]));
    let installed = AVAILABLE_EXTENSIONS.iter().map(|(name, version, _)| {
        state
            .extensions
            .iter()
            .any(|e| e == name)
            .then_some(*version)
    });
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            AVAILABLE_EXTENSIONS.iter().map(|e| e.0),
        )),
        Arc::new(StringArray::from_iter_values(
            AVAILABLE_EXTENSIONS.iter().map(|e| e.1),
        )),
        Arc::new(installed.collect::<StringArray>()),
        Arc::new(StringArray::from_iter_values(
            AVAILABLE_EXTENSIONS.iter().map(|e| e.2),
        )),
    ];
    crate::information::table_of(schema, cols)
}

/// `pg_indexes`: every index of every table, constraints' included, with
/// the `CREATE INDEX` that would make it.
fn pg_indexes(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("schemaname", DataType::Utf8, true),
        Field::new("tablename", DataType::Utf8, true),
        Field::new("indexname", DataType::Utf8, true),
        Field::new("tablespace", DataType::Utf8, true),
        Field::new("indexdef", DataType::Utf8, true),
    ]));
    let mut rows: Vec<[String; 4]> = Vec::new();
    for t in state.tables.values() {
        for i in t.all_indexes() {
            rows.push([
                t.schema.clone(),
                t.name.clone(),
                i.name.clone(),
                i.definition(t),
            ]);
        }
    }
    let column = |k: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r[k].as_str()),
        ))
    };
    let cols: Vec<ArrayRef> = vec![
        column(0),
        column(1),
        column(2),
        Arc::new(StringArray::from(vec![None::<&str>; rows.len()])),
        column(3),
    ];
    crate::information::table_of(schema, cols)
}

/// The owner every object shows: the bootstrap superuser.
fn owner_name(state: &CatalogState) -> String {
    state
        .roles
        .get(&tempora_catalog::BOOTSTRAP_SUPERUSER_OID)
        .map_or_else(|| "postgres".to_string(), |r| r.name.clone())
}

/// `pg_sequences`: every sequence with its options and, once a value was
/// handed out, the last one.
async fn pg_sequences(engine: &Engine) -> DfResult<Arc<dyn TableProvider>> {
    use datafusion::arrow::array::Int64Array;
    let state = engine.catalog().snapshot();
    let owner = owner_name(state.as_ref());
    let schema = Arc::new(Schema::new(vec![
        Field::new("schemaname", DataType::Utf8, true),
        Field::new("sequencename", DataType::Utf8, true),
        Field::new("sequenceowner", DataType::Utf8, true),
        Field::new("data_type", DataType::Utf8, true),
        Field::new("start_value", DataType::Int64, true),
        Field::new("min_value", DataType::Int64, true),
        Field::new("max_value", DataType::Int64, true),
        Field::new("increment_by", DataType::Int64, true),
        Field::new("cycle", DataType::Boolean, true),
        Field::new("cache_size", DataType::Int64, true),
        Field::new("last_value", DataType::Int64, true),
    ]));
    let seqs: Vec<_> = state.sequences.values().collect();
    let mut last = Vec::with_capacity(seqs.len());
    for s in &seqs {
        let (value, called, _) = engine.sequence_position(s).await;
        // Values logged but not handed out since a restart count as used.
        last.push((called || (s.reserved.is_some() && !s.pending)).then_some(value));
    }
    let text = |f: &dyn Fn(&tempora_catalog::SequenceDef) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(seqs.iter().map(|s| f(s))))
    };
    let int = |f: &dyn Fn(&tempora_catalog::SequenceDef) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(seqs.iter().map(|s| f(s))))
    };
    let cols: Vec<ArrayRef> = vec![
        text(&|s| s.schema.clone()),
        text(&|s| s.name.clone()),
        text(&|_| owner.clone()),
        text(&|s| {
            match s.value_type_oid() {
                21 => "smallint",
                23 => "integer",
                _ => "bigint",
            }
            .to_string()
        }),
        int(&|s| s.start),
        int(&|s| s.min),
        int(&|s| s.max),
        int(&|s| s.increment),
        Arc::new(BooleanArray::from_iter(seqs.iter().map(|s| Some(s.cycle)))),
        int(&|s| s.cache),
        Arc::new(Int64Array::from(last)),
    ];
    crate::information::table_of(schema, cols)
}

/// `pg_matviews`: PostgreSQL's materialized views (not continuous aggregates).
fn pg_matviews(state: &CatalogState) -> DfResult<Arc<dyn TableProvider>> {
    let owner = owner_name(state);
    let schema = Arc::new(Schema::new(vec![
        Field::new("schemaname", DataType::Utf8, true),
        Field::new("matviewname", DataType::Utf8, true),
        Field::new("matviewowner", DataType::Utf8, true),
        Field::new("tablespace", DataType::Utf8, true),
        Field::new("hasindexes", DataType::Boolean, true),
        Field::new("ispopulated", DataType::Boolean, true),
        Field::new("definition", DataType::Utf8, true),
    ]));
    let views: Vec<_> = state
        .views
        .values()
        .filter_map(|v| v.materialized.as_ref().map(|m| (v, m)))
        .collect();
    let text = |f: &dyn Fn(&tempora_catalog::ViewDef) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(
            views.iter().map(|(v, _)| f(v)),
        ))
    };
    let cols: Vec<ArrayRef> = vec![
        text(&|v| v.schema.clone()),
        text(&|v| v.name.clone()),
        text(&|_| owner.clone()),
        Arc::new(StringArray::from(vec![None::<&str>; views.len()])),
        Arc::new(BooleanArray::from(vec![false; views.len()])),
        Arc::new(BooleanArray::from_iter(
            views.iter().map(|(_, m)| Some(m.populated)),
        )),
        text(&crate::pg_relations::view_definition),
    ];
    crate::information::table_of(schema, cols)
}

/// A sequence read as a relation (`SELECT last_value FROM s`): one row.
async fn sequence_relation(
    engine: &Engine,
    seq: &tempora_catalog::SequenceDef,
) -> DfResult<Arc<dyn TableProvider>> {
    use datafusion::arrow::array::Int64Array;
    let (last, called, log_cnt) = engine.sequence_position(seq).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("last_value", DataType::Int64, false),
        Field::new("log_cnt", DataType::Int64, false),
        Field::new("is_called", DataType::Boolean, false),
    ]));
    crate::information::table_of(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![last])),
            Arc::new(Int64Array::from(vec![log_cnt as i64])),
            Arc::new(BooleanArray::from(vec![called])),
        ],
    )
}

/// `show_chunks(relation [, older_than [, newer_than]])` as a table function.
#[derive(Debug)]
struct ShowChunks {
    engine: Arc<Engine>,
}

impl TableFunctionImpl for ShowChunks {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let state = self.engine.catalog().snapshot();
        let selection = ChunkSelection::resolve(args.session(), &state, args.exprs())
            .map_err(TemporaError::into_datafusion)?;
        let names: Vec<String> = selection
            .chunks()
            .into_iter()
            .map(|c| selection.chunk_name(c))
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "show_chunks",
            DataType::Utf8,
            false,
        )]));
        crate::information::table_of(schema, vec![Arc::new(StringArray::from(names))])
    }
}

/// Builds the DataFusion session of one connection.
pub fn new_session_context(engine: Arc<Engine>) -> Result<SessionContext, TemporaError> {
    session_context_with(engine, Arc::new(tempora_catalog::TxCatalog::default()))
}

/// [`new_session_context`] with the transaction block state of a connection
/// that already runs in its scope.
pub fn session_context_with(
    engine: Arc<Engine>,
    tx_catalog: Arc<tempora_catalog::TxCatalog>,
) -> Result<SessionContext, TemporaError> {
    let notices = Arc::new(crate::compression::SessionNotices::default());
    let variables = Arc::new(crate::variables::SessionVariables::default());
    let prepared = Arc::new(crate::variables::SessionPrepared::default());
    let database = engine.options().database.clone();
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(&database, PUBLIC)
        .with_create_default_catalog_and_schema(false)
        // Tempora's own information_schema (PostgreSQL's types and layout)
        // is registered below.
        .with_information_schema(false)
        .with_extension(Arc::new(crate::provider::TxWrites::default()))
        .with_extension(tx_catalog.clone())
        .with_extension(Arc::new(crate::provider::ScanReport::default()))
        .with_extension(notices.clone())
        .with_extension(variables.clone())
        .with_extension(prepared);
    config.options_mut().execution.time_zone = Some("UTC".into());
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    // Every session of the engine shares its runtime, so the Parquet metadata
    // one statement reads serves the next, in this connection or another.
    let mut physical_rules = PhysicalOptimizer::new().rules;
    let after_join_selection = physical_rules
        .iter()
        .position(|r| r.name() == "join_selection")
        .map_or(physical_rules.len(), |i| i + 1);
    physical_rules.insert(
        after_join_selection,
        Arc::new(crate::last_point::CollectNewestTimes),
    );
    // `EXTRACT(field FROM value)` is planned before DataFusion's planners
    // see it, which would call their own `date_part`.
    let extract = Arc::new(crate::date_part::extract_udf(variables.clone()));
    // `real` arithmetic with integers is double precision before coercion
    // makes it `real` (pg_casts.rs).
    let mut analyzer_rules = datafusion::optimizer::Analyzer::new().rules;
    let coercion = analyzer_rules
        .iter()
        .position(|r| r.name() == "type_coercion")
        .unwrap_or(0);
    analyzer_rules.insert(
        coercion,
        Arc::new(crate::pg_casts::PgFloat4Arithmetic::BEFORE_COERCION),
    );
    // Decimal literals (numeric, as in PostgreSQL) beside floats become
    // floats before coercion would make the floats decimals
    // (operand_types.rs).
    analyzer_rules.insert(coercion, Arc::new(crate::operand_types::PgOperandTypes));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_analyzer_rules(analyzer_rules)
        .with_runtime_env(engine.runtime().clone())
        .with_expr_planners(vec![
            Arc::new(crate::unknown_literals::UnknownOperands),
            Arc::new(crate::date_part::ExtractPlanner {
                extract: extract.clone(),
            }),
            Arc::new(crate::jsonb::JsonOperators),
        ])
        .with_default_features()
        .with_physical_optimizer_rules(physical_rules)
        .with_query_planner(Arc::new(crate::small_scans::TemporaQueryPlanner))
        .build();
    let ctx = SessionContext::new_with_state(state);
    let weak = ctx.state_weak_ref();
    let public: Arc<dyn SchemaProvider> = Arc::new(TemporaSchema {
        engine: engine.clone(),
        schema: PUBLIC.into(),
        state: weak.clone(),
    });
    ctx.register_catalog(
        &database,
        Arc::new(TemporaCatalog {
            engine: engine.clone(),
            state: weak,
            public,
            others: RwLock::new(Vec::new()),
        }),
    );
    let store_url = datafusion::execution::object_store::ObjectStoreUrl::parse(STORE_URL)
        .map_err(TemporaError::from_datafusion)?;
    ctx.register_object_store(store_url.as_ref(), engine.store().clone());
    ctx.register_udf(crate::time_bucket::time_bucket_udf());
    ctx.register_udf(crate::expr_names::tempora_named_udf());
    ctx.register_udf(crate::variables::current_setting_udf(variables.clone()));
    ctx.register_udaf(crate::pg_avg::pg_avg_udaf());
    ctx.register_udaf(crate::pg_sum::pg_sum_udaf());
    ctx.register_udaf(crate::aggregates::first_udaf());
    ctx.register_udaf(crate::aggregates::last_udaf());
    ctx.register_udaf(crate::aggregates::histogram_udaf());
    ctx.register_udaf(crate::aggregates::subquery_value_udaf());
    ctx.register_udf(crate::aggregates::subquery_check_udf());
    ctx.register_udf(crate::sleep::pg_sleep_udf());
    for f in crate::pg_math::pg_math_udfs()
        .into_iter()
        .chain(crate::pg_strings::pg_string_udfs())
        .chain(crate::bytea_functions::bytea_udfs())
    {
        ctx.register_udf(f);
    }
    ctx.register_udf(crate::pg_strings::similar_to_escape_udf().as_ref().clone());
    ctx.register_udf(crate::newest_series::newest_per_series_udf());
    ctx.add_analyzer_rule(Arc::new(crate::pg_literals::PgTimestampLiterals {
        variables: variables.clone(),
    }));
    ctx.add_analyzer_rule(Arc::new(crate::zone_casts::SessionZoneCasts {
        variables: variables.clone(),
    }));
    ctx.add_analyzer_rule(Arc::new(crate::jsonb::JsonCasts));
    ctx.add_analyzer_rule(Arc::new(crate::pg_casts::PgIntegerCasts));
    ctx.add_analyzer_rule(Arc::new(crate::pg_casts::PgFloat4Arithmetic::default()));
    let pg_text = crate::pg_text::pg_text_udf(variables.clone());
    let pg_out = crate::pg_text::pg_out_udf(variables.clone());
    ctx.add_analyzer_rule(Arc::new(crate::pg_text::PgTextCasts {
        text: pg_text.clone(),
        out: pg_out.clone(),
    }));
    ctx.register_udf(pg_text.as_ref().clone());
    ctx.register_udf(pg_out.as_ref().clone());
    ctx.register_udf(crate::pg_text::format_udf(variables.clone()));
    ctx.add_analyzer_rule(Arc::new(crate::last_point::LastPointJoin));
    ctx.add_analyzer_rule(Arc::new(crate::set_comparisons::SetComparisonNames));
    ctx.register_udf(crate::pg_casts::pg_round().as_ref().clone());
    for f in crate::pg_casts::whole_numeric_udfs() {
        ctx.register_udf(f);
    }
    ctx.register_udf(crate::pg_types::pg_typeof_udf());
    ctx.register_udf(crate::at_time_zone::timezone_udf());
    ctx.register_udf(crate::to_char::to_char_udf(variables.clone()));
    ctx.register_udf(crate::from_char::to_timestamp_udf(variables.clone()));
    ctx.register_udf(crate::from_char::to_date_udf(variables.clone()));
    ctx.register_udf(crate::date_part::date_part_udf(variables.clone()));
    ctx.register_udf(extract.as_ref().clone());
    ctx.register_udf(crate::date_trunc::date_trunc_udf(variables.clone()));
    for f in crate::json::json_functions(variables.clone()) {
        ctx.register_udf(f);
    }
    for f in crate::jsonb::json_udfs() {
        ctx.register_udf(f);
    }
    ctx.register_udf(crate::jsonb::gen_random_uuid_udf());
    ctx.register_udf(crate::jsonb::plain_value_udf());
    for f in crate::interval_functions::interval_udfs(variables.clone()) {
        ctx.register_udf(f);
    }
    for f in crate::intervals::scale_udfs() {
        ctx.register_udf(f);
    }
    for f in crate::markers::marker_udfs() {
        ctx.register_udf(f);
    }
    for f in crate::information::relation_functions(&engine) {
        ctx.register_udf(f);
    }
    for f in crate::compression::chunk_functions(&engine, &notices) {
        ctx.register_udf(f);
    }
    for f in crate::sequences::sequence_functions(&engine, &tx_catalog) {
        ctx.register_udf(f);
    }
    for (name, chunks) in [
        ("hypertable_compression_stats", false),
        ("chunk_compression_stats", true),
        ("hypertable_columnstore_stats", false),
        ("chunk_columnstore_stats", true),
    ] {
        ctx.register_udtf(
            name,
            Arc::new(crate::compression::CompressionStats {
                engine: engine.clone(),
                chunks,
            }),
        );
    }
    for (name, chunks) in [
        ("hypertable_detailed_size", false),
        ("chunks_detailed_size", true),
    ] {
        ctx.register_udtf(
            name,
            Arc::new(crate::information::DetailedSize {
                engine: engine.clone(),
                chunks,
            }),
        );
    }
    ctx.register_udtf(
        "show_chunks",
        Arc::new(ShowChunks {
            engine: engine.clone(),
        }),
    );
    setup_pg_catalog(&ctx, &database)?;
    let catalog = ctx
        .catalog(&database)
        .ok_or_else(|| TemporaError::internal("database catalog missing"))?;
    catalog
        .register_schema(
            crate::information::SCHEMA,
            Arc::new(crate::information::InformationSchema::new(engine.clone())),
        )
        .map_err(TemporaError::from_datafusion)?;
    for f in crate::pg_functions::catalog_functions(&engine, &variables, &tx_catalog) {
        ctx.register_udf(f);
    }
    ctx.register_udf(crate::pg_functions::format_type_udf());
    for f in crate::variables::session_user_udfs(&variables) {
        ctx.register_udf(f);
    }
    if let Some(inner) = catalog.schema("pg_catalog") {
        let overlay = Arc::new(PgCatalogOverlay {
            inner,
            engine,
            state: ctx.state_weak_ref(),
        });
        let source: Arc<dyn crate::information_schema::RelationSource> = overlay.clone();
        catalog
            .register_schema(
                crate::information_schema::SCHEMA,
                Arc::new(crate::information_schema::InformationSchemaViews {
                    source: Some(Arc::downgrade(&source)),
                    database: database.clone(),
                }),
            )
            .map_err(TemporaError::from_datafusion)?;
        catalog
            .register_schema("pg_catalog", overlay)
            .map_err(TemporaError::from_datafusion)?;
    }
    Ok(ctx)
}

/// The catalog emulation's static tables (`pg_proc`, `pg_type`, ...),
/// decoded once per process: every session reads the same immutable rows.
/// Decoding them took about half of a new connection's CPU.
pub(crate) fn pg_static_tables() -> Result<Arc<PgCatalogStaticTables>, TemporaError> {
    static TABLES: std::sync::OnceLock<Arc<PgCatalogStaticTables>> = std::sync::OnceLock::new();
    if let Some(t) = TABLES.get() {
        return Ok(t.clone());
    }
    let tables = Arc::new(PgCatalogStaticTables::try_new().map_err(TemporaError::from_datafusion)?);
    Ok(TABLES.get_or_init(|| tables).clone())
}

/// Registers the catalog emulation's `pg_catalog` schema and functions in a
/// session, as `datafusion_pg_catalog::setup_pg_catalog` does, but over the
/// process's one copy of its static tables.
fn setup_pg_catalog(ctx: &SessionContext, database: &str) -> Result<(), TemporaError> {
    use datafusion_pg_catalog::pg_catalog::{self as pgc, *};
    let static_tables = pg_static_tables()?;
    let pg_catalog = Arc::new(
        PgCatalogSchemaProvider::try_new(
            ctx.state().catalog_list().clone(),
            static_tables.clone(),
            EmptyContextProvider,
        )
        .map_err(TemporaError::from_datafusion)?,
    );
    ctx.catalog(database)
        .ok_or_else(|| TemporaError::internal("database catalog missing"))?
        .register_schema("pg_catalog", pg_catalog)
        .map_err(TemporaError::from_datafusion)?;
    let udfs = [
        create_current_database_udf(database),
        create_current_schema_udf(),
        create_current_schemas_udf(),
        create_pg_get_userbyid_udf(),
        pgc::has_privilege_udf::create_has_privilege_udf("has_table_privilege"),
        pgc::has_privilege_udf::create_has_privilege_udf("has_schema_privilege"),
        pgc::has_privilege_udf::create_has_privilege_udf("has_database_privilege"),
        pgc::has_privilege_udf::create_has_privilege_udf("has_any_column_privilege"),
        create_pg_table_is_visible(),
        pgc::format_type::create_format_type_udf(),
        create_session_user_udf(),
        pgc::pg_get_expr_udf::create_pg_get_expr_udf(),
        create_pg_get_partkeydef_udf(),
        create_pg_relation_is_publishable_udf(),
        create_pg_get_statisticsobjdef_columns_udf(),
        create_pg_encoding_to_char_udf(),
        create_pg_backend_pid_udf(),
        create_pg_relation_size_udf(),
        create_pg_total_relation_size_udf(),
        create_pg_stat_get_numscans(),
        create_pg_get_constraintdef(),
        create_pg_get_partition_ancestors_udf(),
        crate::pg_text::quote_ident_udf(),
        pgc::quote_ident_udf::create_parse_ident_udf(),
        pgc::array_bounds_udf::create_array_upper_udf(),
        pgc::array_bounds_udf::create_array_lower_udf(),
    ];
    for f in udfs {
        ctx.register_udf(f);
    }
    ctx.register_udtf("pg_get_keywords", static_tables.pg_get_keywords.clone());
    drop_replaced_aliases(ctx);
    // PostgreSQL's oid alias types (`regclass`, `regtype`, ...) as int4 in casts.
    let state = ctx.state_ref();
    let existing = state.read().clone();
    *state.write() = SessionStateBuilder::new_from_existing(existing)
        .with_type_planner(Arc::new(pgc::oid_type_planner::PgOidTypePlanner))
        .build();
    // `generate_series` / `range` bounds accept int4 as well as int8.
    pgc::generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);
    Ok(())
}

/// Removes the aliases under which DataFusion's own functions stay
/// registered after Tempora registered a function of the same name (`mean`
/// for `avg`, `datetrunc` for `date_trunc`). Rebuilding a state from an
/// existing one registers every function again in hash order, and such an
/// alias would take the name back from Tempora's function on some starts.
fn drop_replaced_aliases(ctx: &SessionContext) {
    let state = ctx.state();
    for key in replaced_aliases(state.scalar_functions(), |f| f.name()) {
        ctx.deregister_udf(&key);
    }
    for key in replaced_aliases(state.aggregate_functions(), |f| f.name()) {
        ctx.deregister_udaf(&key);
    }
}

/// Keys of `registry` naming a function that is no longer the one
/// registered under its own name.
fn replaced_aliases<F>(
    registry: &std::collections::HashMap<String, Arc<F>>,
    name: impl Fn(&F) -> &str,
) -> Vec<String> {
    registry
        .iter()
        .filter(|&(key, f)| {
            let own = name(f);
            key.as_str() != own && !registry.get(own).is_some_and(|g| Arc::ptr_eq(f, g))
        })
        .map(|(key, _)| key.clone())
        .collect()
}
