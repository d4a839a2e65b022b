//! PostgreSQL's catalog functions over Tempora's objects, answering by the
//! oids `pg_class` and friends give them (see [`crate::pg_relations`]):
//! `pg_table_is_visible`, `pg_get_indexdef`, `pg_get_constraintdef`,
//! `pg_get_viewdef`, `obj_description`, `col_description`, the relation
//! size functions, and `regclassout` (the name an oid prints as when cast
//! to `regclass`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use tempora_catalog::{quote_identifier, CatalogState, TableDef, CHUNK_SCHEMA, PUBLIC_SCHEMA};
use tempora_common::{SqlState, TemporaError};
use tempora_storage::Engine;

use crate::pg_relations::{self, text, Relation};

/// What the functions look objects up in: one catalog snapshot.
struct Lookup {
    state: Arc<CatalogState>,
    relations: Vec<Relation>,
    by_oid: HashMap<u32, usize>,
    visible: HashSet<u32>,
    /// The session's role.
    user: Option<String>,
}

impl Lookup {
    /// For functions that look no relation up (the snapshot is there).
    fn bare(engine: &Engine) -> Self {
        Lookup {
            state: engine.catalog().snapshot(),
            relations: Vec::new(),
            by_oid: HashMap::new(),
            visible: HashSet::new(),
            user: None,
        }
    }

    fn new(engine: &Engine, search_path: &[String]) -> Self {
        let state = engine.catalog().snapshot();
        let mut relations = pg_relations::user_relations(&state, &HashMap::new());
        if let Some(system) = pg_relations::known_system_relations() {
            // Names suffice here: no system relation's columns are asked for.
            relations.extend(
                system
                    .iter()
                    .map(|r| Relation::new(r.oid, r.schema, &r.name, r.kind)),
            );
        }
        let by_oid = relations
            .iter()
            .enumerate()
            .map(|(i, r)| (r.oid, i))
            .collect();
        let names: Vec<(&str, &str, u32)> = relations
            .iter()
            .map(|r| (r.schema.as_str(), r.name.as_str(), r.oid))
            .collect();
        let visible = pg_relations::visible(&names, search_path);
        Lookup {
            state,
            relations,
            by_oid,
            visible,
            user: None,
        }
    }

    fn relation(&self, oid: u32) -> Option<&Relation> {
        self.by_oid.get(&oid).map(|&i| &self.relations[i])
    }

    /// An oid given as a number, or a relation named as text (`'t'`, `'s.t'`).
    fn oid(&self, v: &ScalarValue) -> Option<u32> {
        match v {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
                s.trim().parse::<u32>().ok().or_else(|| {
                    let (schema, name) = crate::split_qualified(s);
                    self.relations
                        .iter()
                        .find(|r| r.schema == schema && r.name == name)
                        .map(|r| r.oid)
                })
            }
            v if v.is_null() => None,
            v => v.cast_to(&DataType::Int64).ok().and_then(|v| match v {
                ScalarValue::Int64(Some(n)) => u32::try_from(n).ok(),
                _ => None,
            }),
        }
    }

    /// The table owning an index or constraint named `name` in `schema`.
    fn table_of_index(&self, schema: &str, name: &str) -> Option<&TableDef> {
        self.state
            .tables
            .values()
            .find(|t| t.schema == schema && t.all_indexes().iter().any(|i| i.name == name))
    }
}

type Eval = fn(&Lookup, &Engine, &[ScalarValue]) -> ScalarValue;

struct CatalogFunction {
    name: &'static str,
    signature: Signature,
    returns: DataType,
    engine: Arc<Engine>,
    /// The session's settings: `search_path` decides what is visible.
    variables: Arc<crate::variables::SessionVariables>,
    /// The session's transaction block: its new relations are found too.
    tx: Arc<tempora_catalog::TxCatalog>,
    eval: Eval,
    /// Whether `eval` looks objects up (else it gets a bare [`Lookup`]).
    reads_catalog: bool,
}

impl std::fmt::Debug for CatalogFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogFunction")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for CatalogFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CatalogFunction {}

impl std::hash::Hash for CatalogFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl ScalarUDFImpl for CatalogFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let mut lookup = self.tx.sync_scope(|| {
            if self.reads_catalog {
                Lookup::new(&self.engine, &self.variables.search_path())
            } else {
                Lookup::bare(&self.engine)
            }
        });
        lookup.user = self.variables.get("session_authorization");
        crate::pg_types::map_rows(&args, &self.returns, |values| {
            Ok((self.eval)(&lookup, &self.engine, values))
        })
    }
}

/// `pg_table_is_visible(oid)`: whether the relation is found by its bare name.
fn table_is_visible(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let oid = args.first().and_then(|a| l.oid(a));
    ScalarValue::Boolean(
        oid.filter(|o| l.by_oid.contains_key(o))
            .map(|o| l.visible.contains(&o)),
    )
}

/// `regclassout(oid)`: the relation's name, schema-qualified when not visible.
fn regclass_out(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let Some(oid) = args.first().and_then(|a| l.oid(a)) else {
        return ScalarValue::Utf8(None);
    };
    match l.relation(oid) {
        Some(r) if l.visible.contains(&oid) => text(quote_identifier(&r.name)),
        Some(r) => text(format!(
            "{}.{}",
            quote_identifier(&r.schema),
            quote_identifier(&r.name)
        )),
        None => text(oid.to_string()),
    }
}

/// `pg_get_indexdef(oid [, column, pretty])`: the CREATE INDEX, or with a
/// column number, that key's column or expression.
fn get_indexdef(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let Some(rel) = args
        .first()
        .and_then(|a| l.oid(a))
        .and_then(|o| l.relation(o))
        .filter(|r| r.kind == "i")
    else {
        return ScalarValue::Utf8(None);
    };
    let Some(table) = l.table_of_index(&rel.schema, &rel.name) else {
        return ScalarValue::Utf8(None);
    };
    let Some(index) = table.all_indexes().into_iter().find(|i| i.name == rel.name) else {
        return ScalarValue::Utf8(None);
    };
    let column = args
        .get(1)
        .and_then(|a| a.cast_to(&DataType::Int64).ok())
        .and_then(|v| match v {
            ScalarValue::Int64(Some(n)) => Some(n),
            _ => None,
        })
        .unwrap_or(0);
    if column == 0 {
        return text(index.definition(table));
    }
    let keys: Vec<String> = index
        .columns
        .iter()
        .map(|c| {
            if c.expression {
                c.column.clone()
            } else {
                quote_identifier(&c.column)
            }
        })
        .chain(index.include.iter().map(|c| quote_identifier(c)))
        .collect();
    usize::try_from(column - 1)
        .ok()
        .and_then(|i| keys.get(i))
        .map_or(ScalarValue::Utf8(None), |k| text(k.clone()))
}

/// `pg_get_constraintdef(oid [, pretty])` for PRIMARY KEY, UNIQUE and FOREIGN KEY constraints.
fn get_constraintdef(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let Some(oid) = args.first().and_then(|a| l.oid(a)) else {
        return ScalarValue::Utf8(None);
    };
    for t in l.state.tables.values() {
        for k in t.unique_keys.iter().filter(|k| !k.index) {
            if pg_relations::constraint_oid(t.oid, &k.name) == oid {
                let cols: Vec<String> = k.columns.iter().map(|c| quote_identifier(c)).collect();
                let kind = if k.primary { "PRIMARY KEY" } else { "UNIQUE" };
                return text(format!("{kind} ({})", cols.join(", ")));
            }
        }
        for fk in &t.foreign_keys {
            if pg_relations::constraint_oid(t.oid, &fk.name) != oid {
                continue;
            }
            let list = |names: &[String]| -> String {
                names
                    .iter()
                    .map(|c| quote_identifier(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let Some(referenced) = l.state.table_by_oid(fk.ref_oid) else {
                return ScalarValue::Utf8(None);
            };
            let target = if referenced.schema == "public" {
                quote_identifier(&referenced.name)
            } else {
                format!(
                    "{}.{}",
                    quote_identifier(&referenced.schema),
                    quote_identifier(&referenced.name)
                )
            };
            let mut def = format!(
                "FOREIGN KEY ({}) REFERENCES {target}({})",
                list(&fk.columns),
                list(&fk.ref_columns)
            );
            for (verb, action) in [("UPDATE", fk.on_update), ("DELETE", fk.on_delete)] {
                if action != tempora_catalog::RefAction::NoAction {
                    def.push_str(&format!(" ON {verb} {}", action.sql()));
                }
            }
            return text(def);
        }
    }
    ScalarValue::Utf8(None)
}

/// `pg_get_viewdef(view [, pretty])`: the view's query.
fn get_viewdef(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let view = args
        .first()
        .and_then(|a| l.oid(a))
        .and_then(|o| l.state.views.get(&o));
    match view {
        Some(v) => text(pg_relations::view_definition(v)),
        None => ScalarValue::Utf8(None),
    }
}

/// `pg_extension.oid` of the extension at `index` in the catalog's list.
pub fn extension_oid(index: usize) -> u32 {
    13_500 + index as u32
}

/// `obj_description(oid [, catalog])`: a relation's comment, or an
/// extension's description.
fn obj_description(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let catalog = match args.get(1) {
        Some(ScalarValue::Utf8(Some(c))) => c.as_str(),
        _ => "pg_class",
    };
    if catalog == "pg_extension" {
        let oid = args.first().and_then(|a| l.oid(a));
        let ext = l
            .state
            .extensions
            .iter()
            .enumerate()
            .find(|(i, _)| Some(extension_oid(*i)) == oid);
        return match ext.map(|(_, e)| e.as_str()) {
            Some("plpgsql") => text("PL/pgSQL procedural language"),
            Some("timescaledb") => text(
                "Enables scalable inserts and complex queries for time-series data (Community Edition)",
            ),
            _ => ScalarValue::Utf8(None),
        };
    }
    let of_relations = catalog == "pg_class";
    args.first()
        .and_then(|a| l.oid(a))
        .filter(|_| of_relations)
        .and_then(|o| l.relation(o))
        .and_then(|r| r.comment.clone())
        .map_or(ScalarValue::Utf8(None), text)
}

/// `col_description(table, column number)`: a column's comment.
/// A role's name; PostgreSQL's placeholder for an oid that is no role.
fn user_by_id(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let Some(oid) = args.first().and_then(|a| l.oid(a)) else {
        return ScalarValue::Utf8(None);
    };
    match l.state.roles.get(&oid) {
        Some(role) => text(&role.name),
        None => text(format!("unknown (OID={oid})")),
    }
}

/// `pg_has_role([user,] role, privilege)`: a superuser holds every role, a
/// role itself (Tempora has no role membership); NULL for a role or user
/// that does not exist.
fn has_role(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let name = |v: &ScalarValue| v.try_as_str().flatten().map(str::to_string);
    let (user, role) = match args {
        [role, _] => (l.user.clone(), name(role)),
        [user, role, _] => (name(user), name(role)),
        _ => (None, None),
    };
    let (Some(user), Some(role)) = (user, role) else {
        return ScalarValue::Boolean(None);
    };
    let find = |n: &str| l.state.roles.values().find(|r| r.name == n);
    // PostgreSQL's predefined roles (pg_read_all_stats, ...) exist too.
    let exists = |n: &str| find(n).is_some() || n.starts_with("pg_");
    if !exists(&user) || !exists(&role) {
        return ScalarValue::Boolean(None);
    }
    ScalarValue::Boolean(Some(
        user == role || find(&user).is_some_and(|r| r.superuser),
    ))
}

fn col_description(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let rel = args
        .first()
        .and_then(|a| l.oid(a))
        .and_then(|o| l.relation(o));
    let num = args.get(1).and_then(|a| l.oid(a));
    match (rel, num) {
        (Some(r), Some(n)) if r.schema != CHUNK_SCHEMA => n
            .checked_sub(1)
            .and_then(|i| r.columns.get(i as usize))
            .and_then(|c| c.comment.clone())
            .map_or(ScalarValue::Utf8(None), text),
        _ => ScalarValue::Utf8(None),
    }
}

/// `pg_database_size(name | oid)`: the bytes of the database's directory
/// (the first database's without the others'); NULL for no such database.
fn database_size(l: &Lookup, engine: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let all = l.state.all_databases();
    let db = match args.first() {
        Some(ScalarValue::Utf8(Some(name))) | Some(ScalarValue::Utf8View(Some(name))) => {
            all.iter().find(|d| &d.name == name)
        }
        Some(v) if !v.is_null() => {
            oid_value(Some(v)).and_then(|o| all.iter().find(|d| i64::from(d.oid) == i64::from(o)))
        }
        _ => None,
    };
    let Some(db) = db else {
        return ScalarValue::Int64(None);
    };
    let Some(root) = tempora_storage::server_dir(engine.options()) else {
        return ScalarValue::Int64(None);
    };
    let others = tempora_storage::other_databases_dir(&root);
    let dir = tempora_storage::database_dir(&root, db.oid);
    fn bytes(dir: &std::path::Path, skip: &std::path::Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                match e.metadata() {
                    Ok(m) if m.is_dir() && path != skip => bytes(&path, skip),
                    Ok(m) if m.is_file() => m.len(),
                    _ => 0,
                }
            })
            .sum()
    }
    ScalarValue::Int64(Some(bytes(&dir, &others) as i64))
}

/// Bytes a relation's own storage takes: a plain table's or a chunk's files
/// and buffered rows; nothing for a hypertable (its rows are in its chunks),
/// a view or an index (Tempora keeps no index structures).
fn relation_bytes(l: &Lookup, engine: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let Some(oid) = args.first().and_then(|a| l.oid(a)) else {
        return ScalarValue::Int64(None);
    };
    let Some(rel) = l.relation(oid) else {
        return ScalarValue::Int64(None);
    };
    if let Some(t) = l.state.table_by_oid(oid) {
        let bytes = crate::information::bytes_by_chunk(engine, t);
        return ScalarValue::Int64(Some(if t.is_hypertable() {
            0
        } else {
            bytes.values().sum()
        }));
    }
    if rel.schema == CHUNK_SCHEMA {
        for t in l.state.tables.values() {
            if let Some(c) = t
                .chunks
                .values()
                .find(|c| pg_relations::chunk_oid(c.id) == oid)
            {
                let bytes = crate::information::bytes_by_chunk(engine, t);
                return ScalarValue::Int64(Some(bytes.get(&Some(c.id)).copied().unwrap_or(0)));
            }
        }
    }
    // A sequence is one page in PostgreSQL; a materialized view its table's files.
    if l.state.sequences.contains_key(&oid) {
        return ScalarValue::Int64(Some(8192));
    }
    if let Some(t) = l
        .state
        .views
        .get(&oid)
        .and_then(|v| v.materialized.as_ref())
        .and_then(|m| l.state.table_by_oid(m.table_oid))
    {
        let bytes = crate::information::bytes_by_chunk(engine, t);
        return ScalarValue::Int64(Some(bytes.values().sum()));
    }
    ScalarValue::Int64(Some(0))
}

/// Functions are all in pg_catalog, which is always searched.
fn function_is_visible(_: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    ScalarValue::Boolean(args.first().filter(|a| !a.is_null()).map(|_| true))
}

/// The catalog functions, registered over the generic emulation's.
pub fn catalog_functions(
    engine: &Arc<Engine>,
    variables: &Arc<crate::variables::SessionVariables>,
    tx: &Arc<tempora_catalog::TxCatalog>,
) -> Vec<ScalarUDF> {
    let arities = |n: &[usize]| {
        Signature::one_of(
            n.iter()
                .map(|&k| match k {
                    0 => TypeSignature::Nullary,
                    k => TypeSignature::Any(k),
                })
                .collect(),
            Volatility::Stable,
        )
    };
    type Entry = (&'static str, &'static [usize], DataType, Eval);
    let looking_up: [Entry; 13] = [
        // `text::regclass` of a value known only when the statement runs
        // (tempora-sql/pg_compat.rs): the oid, NULL when nothing is named
        // so (`regclass(oid, name)` then raises PostgreSQL's error).
        ("regclassin", &[1], DataType::Int32, |l, _, args| {
            ScalarValue::Int32(args.first().and_then(|a| l.oid(a)).map(|o| o as i32))
        }),
        (
            "pg_table_is_visible",
            &[1],
            DataType::Boolean,
            table_is_visible,
        ),
        ("regclassout", &[1], DataType::Utf8, regclass_out),
        ("pg_get_indexdef", &[1, 3], DataType::Utf8, get_indexdef),
        (
            "pg_get_constraintdef",
            &[1, 2],
            DataType::Utf8,
            get_constraintdef,
        ),
        ("pg_get_viewdef", &[1, 2], DataType::Utf8, get_viewdef),
        ("obj_description", &[1, 2], DataType::Utf8, obj_description),
        ("col_description", &[2], DataType::Utf8, col_description),
        ("pg_relation_size", &[1, 2], DataType::Int64, relation_bytes),
        ("pg_table_size", &[1], DataType::Int64, relation_bytes),
        (
            "pg_total_relation_size",
            &[1],
            DataType::Int64,
            relation_bytes,
        ),
        (
            "pg_indexes_size",
            &[1],
            DataType::Int64,
            |l, _, args| match args.first().and_then(|a| l.oid(a)) {
                Some(o) if l.by_oid.contains_key(&o) => ScalarValue::Int64(Some(0)),
                _ => ScalarValue::Int64(None),
            },
        ),
        (
            "pg_get_serial_sequence",
            &[2],
            DataType::Utf8,
            serial_sequence,
        ),
    ];
    let computing: [Entry; 18] = [
        // Comments on databases, roles and tablespaces: Tempora keeps none
        // (COMMENT ON DATABASE is refused).
        ("shobj_description", &[2], DataType::Utf8, |_, _, _| {
            ScalarValue::Utf8(None)
        }),
        // Reads the data directory: the database's files (WAL included).
        ("pg_database_size", &[1], DataType::Int64, database_size),
        // Reads the snapshot's roles only: no relation list to build.
        ("pg_get_userbyid", &[1], DataType::Utf8, user_by_id),
        ("pg_has_role", &[2, 3], DataType::Boolean, has_role),
        (
            "pg_type_is_visible",
            &[1],
            DataType::Boolean,
            type_is_visible,
        ),
        (
            "pg_tablespace_location",
            &[1],
            DataType::Utf8,
            tablespace_location,
        ),
        (
            "pg_function_is_visible",
            &[1],
            DataType::Boolean,
            function_is_visible,
        ),
        ("pg_get_expr", &[2, 3], DataType::Utf8, get_expr),
        (
            "pg_get_function_result",
            &[1],
            DataType::Utf8,
            function_result,
        ),
        (
            "pg_get_function_arguments",
            &[1],
            DataType::Utf8,
            function_arguments,
        ),
        // Only functions with a SQL-standard body (`BEGIN ATOMIC`) have
        // one, and Tempora's SQL functions have none.
        (
            "pg_get_function_sqlbody",
            &[1],
            DataType::Utf8,
            |_, _, _| ScalarValue::Utf8(None),
        ),
        ("pg_get_functiondef", &[1], DataType::Utf8, function_def),
        ("pg_size_pretty", &[1], DataType::Utf8, size_pretty),
        ("version", &[0], DataType::Utf8, version),
        // `to_regclass('name')` after the SQL layer's rewrite
        // (tempora-sql/pg_compat.rs): the looked-up oid or NULL.
        ("to_regclass", &[1], DataType::Int32, found_oid),
        ("to_regtype", &[1], DataType::Int32, found_oid),
        ("to_regnamespace", &[1], DataType::Int32, found_oid),
        ("to_regproc", &[1], DataType::Int32, found_oid),
    ];
    let mut out: Vec<ScalarUDF> = looking_up
        .into_iter()
        .map(|f| (f, true))
        .chain(computing.into_iter().map(|f| (f, false)))
        .map(|((name, arity, returns, eval), reads_catalog)| {
            ScalarUDF::new_from_impl(CatalogFunction {
                name,
                signature: arities(arity),
                returns,
                engine: engine.clone(),
                variables: variables.clone(),
                tx: tx.clone(),
                eval,
                reads_catalog,
            })
        })
        .collect();
    // `'name'::regclass` after the SQL layer's rewrite: the looked-up oid,
    // and PostgreSQL's error when nothing is named so.
    for (name, kind, code) in [
        ("regclass", "relation", SqlState::UNDEFINED_TABLE),
        ("regtype", "type", SqlState::UNDEFINED_OBJECT),
        ("regnamespace", "schema", SqlState::INVALID_SCHEMA_NAME),
        ("regproc", "function", SqlState::UNDEFINED_FUNCTION),
    ] {
        out.push(ScalarUDF::new_from_impl(NamedOid {
            name,
            kind,
            code,
            signature: arities(&[2]),
        }));
    }
    out
}

/// `regclass(oid, name)` (and regtype, ...): the oid a name was looked up
/// as; nothing found is an error naming it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NamedOid {
    name: &'static str,
    kind: &'static str,
    code: SqlState,
    signature: Signature,
}

impl ScalarUDFImpl for NamedOid {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::pg_types::map_rows(&args, &DataType::Int32, |values| {
            match (oid_value(values.first()), values.get(1)) {
                (None, Some(ScalarValue::Utf8(Some(name)))) => Err(TemporaError::new(
                    self.code,
                    format!("{} \"{name}\" does not exist", self.kind),
                )
                .into_datafusion()),
                (oid, _) => Ok(ScalarValue::Int32(oid)),
            }
        })
    }
}

/// `pg_get_expr(expression, relation [, pretty])`: Tempora's catalog keeps
/// expressions (defaults, index predicates) as SQL text, which is what it
/// prints.
fn get_expr(_: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    match args.first() {
        Some(v) if !v.is_null() => v
            .cast_to(&DataType::Utf8)
            .unwrap_or(ScalarValue::Utf8(None)),
        _ => ScalarValue::Utf8(None),
    }
}

fn oid_value(v: Option<&ScalarValue>) -> Option<i32> {
    match v?.cast_to(&DataType::Int32).ok()? {
        ScalarValue::Int32(Some(o)) => Some(o),
        _ => None,
    }
}

/// The oid a name was looked up as, or NULL (`to_regclass`).
fn found_oid(_: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    ScalarValue::Int32(oid_value(args.first()))
}

/// A column of one of the catalog emulation's static tables, cast to `to`
/// and read as the array type `A`; None when it has no such column.
fn static_column<A: datafusion::arrow::array::Array + Clone + 'static>(
    batch: &datafusion::arrow::array::RecordBatch,
    name: &str,
    to: &DataType,
) -> Option<A> {
    let column = batch.column_by_name(name)?;
    let cast = datafusion::arrow::compute::cast(column, to).ok()?;
    cast.as_any().downcast_ref::<A>().cloned()
}

/// PostgreSQL's built-in types as the catalog emulation's `pg_type` lists
/// them (read once): oid → (typname, typelem).
fn builtin_types() -> &'static HashMap<i64, (String, i64)> {
    static TYPES: std::sync::LazyLock<HashMap<i64, (String, i64)>> =
        std::sync::LazyLock::new(|| {
            use datafusion::arrow::array::{Array, Int64Array, StringArray};
            let mut types = HashMap::new();
            let Ok(tables) = crate::session::pg_static_tables() else {
                return types;
            };
            for batch in tables.pg_type.data() {
                let (Some(oids), Some(names), Some(elems)) = (
                    static_column::<Int64Array>(batch, "oid", &DataType::Int64),
                    static_column::<StringArray>(batch, "typname", &DataType::Utf8),
                    static_column::<Int64Array>(batch, "typelem", &DataType::Int64),
                ) else {
                    continue;
                };
                for i in 0..oids.len() {
                    if oids.is_null(i) || names.is_null(i) {
                        continue;
                    }
                    let elem = if elems.is_null(i) { 0 } else { elems.value(i) };
                    types.insert(oids.value(i), (names.value(i).to_string(), elem));
                }
            }
            types
        });
    &TYPES
}

/// `pg_type_is_visible(oid)`: every type Tempora has is a built-in one in
/// pg_catalog, which is always on the search path; NULL for an oid that is
/// no type, as PostgreSQL answers.
fn type_is_visible(_: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    match args.first().map(|a| a.cast_to(&DataType::Int64)) {
        Some(Ok(ScalarValue::Int64(Some(oid)))) if builtin_types().contains_key(&oid) => {
            ScalarValue::Boolean(Some(true))
        }
        _ => ScalarValue::Boolean(None),
    }
}

/// `pg_tablespace_location(oid)`: Tempora keeps everything in the data
/// directory, PostgreSQL's two built-in tablespaces, whose location is ''.
fn tablespace_location(_: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    const PG_DEFAULT: i64 = 1663;
    const PG_GLOBAL: i64 = 1664;
    match args.first().map(|a| a.cast_to(&DataType::Int64)) {
        Some(Ok(ScalarValue::Int64(Some(PG_DEFAULT | PG_GLOBAL)))) => text(""),
        _ => ScalarValue::Utf8(None),
    }
}

/// `version()`: PostgreSQL's form, which drivers and tools parse for the
/// server version (the `server_version` Tempora reports), naming Tempora.
fn version(_: &Lookup, _: &Engine, _: &[ScalarValue]) -> ScalarValue {
    text(format!(
        "PostgreSQL 15.6 (Tempora {}) on {}-pc-linux-gnu, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    ))
}

/// `pg_size_pretty(bytes)`: bytes below 10 kB, else the largest unit
/// (kB, MB, GB, TB, PB) leaving a number below 10240 (rounded half up),
/// as PostgreSQL prints it.
fn size_pretty(_: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let Some(ScalarValue::Int64(Some(size))) =
        args.first().and_then(|a| a.cast_to(&DataType::Int64).ok())
    else {
        return ScalarValue::Utf8(None);
    };
    const LIMIT: i64 = 10 * 1024;
    if size.abs() < LIMIT {
        return text(format!("{size} bytes"));
    }
    let half_rounded = |v: i64| (v + if v < 0 { -1 } else { 1 }) / 2;
    // One extra bit kept for rounding.
    let mut v = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if half_rounded(v).abs() < LIMIT {
            return text(format!("{} {unit}", half_rounded(v)));
        }
        v >>= 10;
    }
    text(format!("{} PB", half_rounded(v)))
}

/// `pg_get_serial_sequence(table, column)`: the sequence feeding a column.
fn serial_sequence(l: &Lookup, _: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let table = args.first().and_then(|a| l.oid(a));
    let column = match args.get(1) {
        Some(ScalarValue::Utf8(Some(c))) => c.clone(),
        _ => return ScalarValue::Utf8(None),
    };
    l.state
        .sequences
        .values()
        .find(|s| {
            s.owned_by
                .as_ref()
                .is_some_and(|(t, c)| Some(*t) == table && *c == column)
        })
        .map_or(ScalarValue::Utf8(None), |s| {
            let schema = if s.schema == PUBLIC_SCHEMA {
                PUBLIC_SCHEMA.to_string()
            } else {
                quote_identifier(&s.schema)
            };
            text(format!("{schema}.{}", quote_identifier(&s.name)))
        })
}

/// `format_type(type, typmod)`: the catalog emulation's names (with
/// typmods) for the types it knows; for the others, where it writes
/// `oid(N)`, the name pg_type gives them (`name[]` for arrays), and
/// PostgreSQL's `???` for an oid that is no type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FormatType {
    inner: ScalarUDF,
}

/// A built-in function as `pg_proc` describes it: return type, whether it
/// returns a set, argument types, and (for those with named or OUT
/// arguments) every argument's type, name and mode.
struct Proc {
    returns: i64,
    set: bool,
    args: Vec<i64>,
    all: Vec<i64>,
    names: Vec<String>,
    modes: Vec<String>,
}

/// The emulation's `pg_proc` (read once), by oid.
fn builtin_procs() -> &'static HashMap<i64, Proc> {
    static PROCS: std::sync::LazyLock<HashMap<i64, Proc>> = std::sync::LazyLock::new(|| {
        use datafusion::arrow::array::{Array, BooleanArray, Int64Array, StringArray};
        let mut procs = HashMap::new();
        let Ok(tables) = crate::session::pg_static_tables() else {
            return procs;
        };
        let list = |text: Option<&str>| -> Vec<String> {
            text.unwrap_or("")
                .trim_matches(|c| c == '[' || c == ']' || c == '{' || c == '}')
                .split([',', ' '])
                .map(|p| p.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
                .filter(|p| !p.is_empty())
                .collect()
        };
        for batch in tables.pg_proc.data() {
            let ints = |name: &str| static_column::<Int64Array>(batch, name, &DataType::Int64);
            let texts = |name: &str| static_column::<StringArray>(batch, name, &DataType::Utf8);
            let (
                Some(oids),
                Some(rets),
                Some(sets),
                Some(args),
                Some(all),
                Some(names),
                Some(modes),
            ) = (
                ints("oid"),
                ints("prorettype"),
                static_column::<BooleanArray>(batch, "proretset", &DataType::Boolean),
                texts("proargtypes"),
                texts("proallargtypes"),
                texts("proargnames"),
                texts("proargmodes"),
            )
            else {
                continue;
            };
            let text = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
            for i in 0..oids.len() {
                let numbers = |t: Option<String>| -> Vec<i64> {
                    list(t.as_deref())
                        .iter()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                };
                procs.insert(
                    oids.value(i),
                    Proc {
                        returns: rets.value(i),
                        set: !sets.is_null(i) && sets.value(i),
                        args: numbers(text(&args, i)),
                        all: numbers(text(&all, i)),
                        names: list(text(&names, i).as_deref()),
                        modes: list(text(&modes, i).as_deref()),
                    },
                );
            }
        }
        procs
    });
    &PROCS
}

/// A type as `format_type` prints it, for the types functions take.
fn sql_type_name(oid: i64) -> String {
    match oid {
        16 => "boolean".into(),
        17 => "bytea".into(),
        18 => "\"char\"".into(),
        19 => "name".into(),
        20 => "bigint".into(),
        21 => "smallint".into(),
        23 => "integer".into(),
        25 => "text".into(),
        26 => "oid".into(),
        700 => "real".into(),
        701 => "double precision".into(),
        1042 => "character".into(),
        1043 => "character varying".into(),
        1082 => "date".into(),
        1083 => "time without time zone".into(),
        1114 => "timestamp without time zone".into(),
        1184 => "timestamp with time zone".into(),
        1186 => "interval".into(),
        1266 => "time with time zone".into(),
        1700 => "numeric".into(),
        2276 => "\"any\"".into(),
        other => type_name(other),
    }
}

/// The built-in function whose oid is the first argument.
fn proc_named_by(args: &[ScalarValue]) -> Option<&'static Proc> {
    let oid = oid_value(args.first())?;
    builtin_procs().get(&i64::from(oid))
}

/// The TimescaleDB function whose oid is the first argument.
fn extension_function_named_by(
    args: &[ScalarValue],
) -> Option<&'static crate::extension_functions::ExtensionFunction> {
    crate::extension_functions::by_oid(i64::from(oid_value(args.first())?))
}

/// The SQL function (`CREATE FUNCTION`) whose oid is the first argument.
fn sql_function_named_by(
    engine: &Engine,
    args: &[ScalarValue],
) -> Option<tempora_catalog::FunctionDef> {
    let oid = u32::try_from(oid_value(args.first())?).ok()?;
    engine.catalog().snapshot().functions.get(&oid).cloned()
}

/// `pg_get_function_result(oid)`: `SETOF integer`, `TABLE(a text, ...)`.
fn function_result(_: &Lookup, engine: &Engine, args: &[ScalarValue]) -> ScalarValue {
    if let Some(f) = extension_function_named_by(args) {
        return ScalarValue::Utf8(f.result_text());
    }
    if let Some(f) = sql_function_named_by(engine, args) {
        return text(f.returns);
    }
    let Some(p) = proc_named_by(args) else {
        return ScalarValue::Utf8(None);
    };
    if p.modes.iter().any(|m| m == "t") {
        let cols: Vec<String> = p
            .modes
            .iter()
            .enumerate()
            .filter(|(_, m)| *m == "t")
            .map(|(i, _)| {
                let name = p.names.get(i).cloned().unwrap_or_default();
                format!(
                    "{name} {}",
                    sql_type_name(p.all.get(i).copied().unwrap_or(0))
                )
            })
            .collect();
        return text(format!("TABLE({})", cols.join(", ")));
    }
    let ret = sql_type_name(p.returns);
    text(if p.set { format!("SETOF {ret}") } else { ret })
}

/// A SQL function's arguments as `pg_get_function_arguments` prints them:
/// `c double precision, k integer DEFAULT 0`.
fn sql_function_arguments(f: &tempora_catalog::FunctionDef) -> String {
    let shown: Vec<String> = f
        .args
        .iter()
        .map(|a| {
            let mut s = match &a.name {
                Some(n) => format!("{n} {}", a.type_name),
                None => a.type_name.clone(),
            };
            if let Some(d) = &a.default {
                s.push_str(&format!(" DEFAULT {d}"));
            }
            s
        })
        .collect();
    shown.join(", ")
}

/// `pg_get_functiondef(oid)`: the `CREATE OR REPLACE FUNCTION` of a SQL
/// function, laid out as PostgreSQL lays it out (psql's `\sf`, the
/// function editors of BI tools); NULL for a built-in one.
fn function_def(_: &Lookup, engine: &Engine, args: &[ScalarValue]) -> ScalarValue {
    let Some(f) = sql_function_named_by(engine, args) else {
        return ScalarValue::Utf8(None);
    };
    let arguments = sql_function_arguments(&f);
    let quote = tempora_catalog::quote_identifier;
    let mut def = format!(
        "CREATE OR REPLACE FUNCTION {}.{}({arguments})\n RETURNS {}\n LANGUAGE sql\n",
        quote(&f.schema),
        quote(&f.name),
        f.returns
    );
    let volatility = match f.volatility {
        'i' => Some("IMMUTABLE"),
        's' => Some("STABLE"),
        _ => None,
    };
    let attributes: Vec<&str> = volatility
        .into_iter()
        .chain(f.strict.then_some("STRICT"))
        .collect();
    if !attributes.is_empty() {
        def.push_str(&format!(" {}\n", attributes.join(" ")));
    }
    if f.source.starts_with("RETURN ") {
        def.push_str(&format!("{}\n", f.source));
    } else {
        def.push_str(&format!("AS $function${}$function$\n", f.source));
    }
    text(def)
}

/// `pg_get_function_arguments(oid)`: `integer, integer` or with names and
/// modes, `OUT word text, ...`.
fn function_arguments(_: &Lookup, engine: &Engine, args: &[ScalarValue]) -> ScalarValue {
    if let Some(f) = extension_function_named_by(args) {
        return text(f.arguments_text());
    }
    if let Some(f) = sql_function_named_by(engine, args) {
        return text(sql_function_arguments(&f));
    }
    let Some(p) = proc_named_by(args) else {
        return ScalarValue::Utf8(None);
    };
    let types = if p.all.is_empty() { &p.args } else { &p.all };
    let mut out = Vec::new();
    for (i, ty) in types.iter().enumerate() {
        let mode = p.modes.get(i).map(String::as_str).unwrap_or("i");
        let prefix = match mode {
            "t" => continue,
            "o" => "OUT ",
            "b" => "INOUT ",
            "v" => "VARIADIC ",
            _ => "",
        };
        let name = p.names.get(i).filter(|n| !n.is_empty());
        out.push(match name {
            Some(n) => format!("{prefix}{n} {}", sql_type_name(*ty)),
            None => format!("{prefix}{}", sql_type_name(*ty)),
        });
    }
    text(out.join(", "))
}

/// The name for type `oid` that the emulation could not give.
fn type_name(oid: i64) -> String {
    let types = builtin_types();
    match types.get(&oid) {
        Some((name, elem)) if name.starts_with('_') && *elem != 0 => {
            let element = types
                .get(elem)
                .map_or_else(|| "???".to_string(), |(n, _)| quote_identifier(n));
            format!("{element}[]")
        }
        Some((name, _)) => quote_identifier(name),
        None => "???".to_string(),
    }
}

impl ScalarUDFImpl for FormatType {
    fn name(&self) -> &str {
        "format_type"
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let oids = args.args[0].clone().into_array(rows)?;
        let oids = datafusion::arrow::compute::cast(&oids, &DataType::Int64)?;
        let named = self.inner.invoke_with_args(args)?.into_array(rows)?;
        let named = datafusion::arrow::compute::cast(&named, &DataType::Utf8)?;
        let (Some(oids), Some(named)) = (
            oids.as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>(),
            named
                .as_any()
                .downcast_ref::<datafusion::arrow::array::StringArray>(),
        ) else {
            return Err(TemporaError::internal("format_type: unexpected arrays").into_datafusion());
        };
        let out: datafusion::arrow::array::StringArray = named
            .iter()
            .zip(oids.iter())
            .map(|(name, oid)| match (name, oid) {
                (Some(n), Some(oid)) if n.starts_with("oid(") => Some(type_name(oid)),
                (n, _) => n.map(str::to_string),
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// [`FormatType`] over the emulation's `format_type`.
pub fn format_type_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(FormatType {
        inner: datafusion_pg_catalog::pg_catalog::format_type::create_format_type_udf(),
    })
}
