//! The `pg_catalog` relations that describe Tempora's own objects —
//! namespaces, relations, columns, defaults, indexes, constraints, comments,
//! chunk inheritance and sequences — built from the catalog snapshot a
//! statement plans against, so that psql's `\d` family and drivers' metadata
//! queries see what PostgreSQL would show them.
//!
//! Rows take the column layout the generic `pg_catalog` emulation declares
//! for each relation (its schemas are what the rest of the emulation, and
//! clients, were written against); Tempora fills the columns it knows and
//! leaves the others at PostgreSQL's neutral values.
//!
//! Object ids: tables, views and sequences keep the oid the catalog gave
//! them. Objects the catalog keeps no oid for get one derived from what
//! names them, so it is the same in every session and after a restart:
//! chunks from their id, indexes, constraints and schemas from a hash of
//! their names. System relations (pg_catalog, information_schema,
//! timescaledb_information) are numbered below 16384, PostgreSQL's first
//! user oid, with pg_catalog's best-known tables at their real oids.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::datasource::MemTable;
use tempora_catalog::{CatalogState, IndexDef, TableDef, CHUNK_SCHEMA, PUBLIC_SCHEMA};

/// `pg_namespace.oid` of `pg_catalog`.
pub const PG_CATALOG_NAMESPACE: u32 = 11;
/// `pg_namespace.oid` of `public`.
pub const PUBLIC_NAMESPACE: u32 = 2200;
/// The bootstrap superuser, owner of every object.
pub const OWNER: u32 = 10;
/// `pg_class.oid` of `pg_class` (the `classoid` of relation comments).
pub const PG_CLASS_OID: u32 = 1259;

/// `pg_class.oid` of `pg_extension` (the `classoid` of extension descriptions).
pub const PG_EXTENSION_OID: u32 = 3079;

/// Schemas every database has besides `public`, with their oids.
const SYSTEM_NAMESPACES: &[(&str, u32)] = &[
    ("pg_catalog", PG_CATALOG_NAMESPACE),
    ("information_schema", 13_000),
    (crate::information::SCHEMA, 13_001),
    (CHUNK_SCHEMA, 13_002),
];

/// First oid of chunks (chunk ids are unique across hypertables).
const CHUNK_OID_BASE: u32 = 0x3000_0000;
/// Oids derived from names lie in [DERIVED_OID_BASE, i32::MAX).
const DERIVED_OID_BASE: u32 = 0x4000_0000;

/// pg_catalog tables at the oids PostgreSQL gives them (clients and the
/// static parts of the emulation refer to some by number).
const WELL_KNOWN: &[(&str, u32)] = &[
    ("pg_am", 2601),
    ("pg_attrdef", 2604),
    ("pg_attribute", 1249),
    ("pg_authid", 1260),
    ("pg_cast", 2605),
    ("pg_class", PG_CLASS_OID),
    ("pg_collation", 3456),
    ("pg_constraint", 2606),
    ("pg_database", 1262),
    ("pg_depend", 2608),
    ("pg_description", 2609),
    ("pg_enum", 3501),
    ("pg_extension", PG_EXTENSION_OID),
    ("pg_index", 2610),
    ("pg_inherits", 2611),
    ("pg_language", 2612),
    ("pg_namespace", 2615),
    ("pg_operator", 2617),
    ("pg_proc", 1255),
    ("pg_range", 3541),
    ("pg_rewrite", 2618),
    ("pg_sequence", 2224),
    ("pg_tablespace", 1213),
    ("pg_trigger", 2620),
    ("pg_type", 1247),
];

/// pg_catalog relations PostgreSQL defines as views.
const PG_CATALOG_VIEWS: &[&str] = &[
    "pg_available_extensions",
    "pg_indexes",
    "pg_matviews",
    "pg_replication_slots",
    "pg_roles",
    "pg_sequences",
    "pg_settings",
    "pg_stats",
    "pg_tables",
    "pg_user",
    "pg_views",
];

/// A stable oid for an object named by `parts`: FNV-1a of the parts, in
/// [`DERIVED_OID_BASE`, `i32::MAX`).
pub fn derived_oid(kind: &str, parts: &[&str]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let bytes = kind.bytes().chain(
        parts
            .iter()
            .flat_map(|p| std::iter::once(0).chain(p.bytes())),
    );
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    DERIVED_OID_BASE + h % (i32::MAX as u32 - DERIVED_OID_BASE)
}

/// `pg_namespace.oid` of a schema.
pub fn namespace_oid(schema: &str) -> u32 {
    if schema == PUBLIC_SCHEMA {
        return PUBLIC_NAMESPACE;
    }
    SYSTEM_NAMESPACES
        .iter()
        .find(|(n, _)| *n == schema)
        .map_or_else(|| derived_oid("schema", &[schema]), |(_, o)| *o)
}

/// `pg_class.oid` of an index (or of a constraint's index).
pub fn index_oid(schema: &str, name: &str) -> u32 {
    derived_oid("index", &[schema, name])
}

/// `pg_constraint.oid` of a PRIMARY KEY or UNIQUE constraint.
pub fn constraint_oid(table: u32, name: &str) -> u32 {
    derived_oid("constraint", &[&table.to_string(), name])
}

/// `pg_class.oid` of a chunk.
pub fn chunk_oid(chunk_id: u32) -> u32 {
    CHUNK_OID_BASE + chunk_id
}

/// `pg_am.oid` of an index access method.
fn access_method_oid(method: &str) -> u32 {
    match method.to_ascii_lowercase().as_str() {
        "hash" => 405,
        "gist" => 783,
        "gin" => 2742,
        "spgist" => 4000,
        "brin" => 3580,
        _ => 403,
    }
}

/// One column as `pg_attribute` describes it.
#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
    pub length: i16,
    pub not_null: bool,
    pub default: Option<String>,
    pub comment: Option<String>,
}

impl Attribute {
    pub fn of_arrow(name: &str, t: &DataType, not_null: bool) -> Self {
        Attribute {
            name: name.to_string(),
            type_oid: crate::pg_types::pg_type_oid(t),
            typmod: -1,
            length: crate::pg_types::pg_type_length(t),
            not_null,
            default: None,
            comment: None,
        }
    }
}

/// A relation as `pg_class` describes it.
#[derive(Debug, Clone)]
pub struct Relation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `relkind`: r table, v view, m materialized view, i index, S sequence.
    pub kind: &'static str,
    pub access_method: u32,
    pub columns: Vec<Attribute>,
    pub has_index: bool,
    pub has_subclass: bool,
    /// Foreign keys are kept by triggers in PostgreSQL: psql lists a
    /// table's foreign keys only when it says it has some.
    pub has_triggers: bool,
    pub tuples: f64,
    pub comment: Option<String>,
}

impl Relation {
    pub fn new(oid: u32, schema: &str, name: &str, kind: &'static str) -> Self {
        Relation {
            oid,
            schema: schema.to_string(),
            name: name.to_string(),
            kind,
            access_method: if kind == "r" || kind == "m" { 2 } else { 0 },
            columns: Vec::new(),
            has_index: false,
            has_subclass: false,
            has_triggers: false,
            tuples: -1.0,
            comment: None,
        }
    }
}

/// A relation of pg_catalog, information_schema or timescaledb_information:
/// fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct SystemRelation {
    pub oid: u32,
    pub schema: &'static str,
    pub name: String,
    pub kind: &'static str,
    pub fields: Vec<FieldRef>,
}

impl SystemRelation {
    /// As a relation with its columns, like Tempora's own.
    pub fn relation(&self) -> Relation {
        let mut rel = Relation::new(self.oid, self.schema, &self.name, self.kind);
        rel.columns = self
            .fields
            .iter()
            .map(|f| Attribute::of_arrow(f.name(), f.data_type(), !f.is_nullable()))
            .collect();
        rel
    }
}

static SYSTEM_RELATIONS: OnceLock<Arc<Vec<SystemRelation>>> = OnceLock::new();

/// The system relations, listed from the schemas that hold them the first
/// time a statement reads `pg_class` or `pg_attribute`.
pub async fn system_relations(
    schemas: &[(&'static str, Arc<dyn SchemaProvider>)],
) -> DfResult<Arc<Vec<SystemRelation>>> {
    if let Some(s) = SYSTEM_RELATIONS.get() {
        return Ok(s.clone());
    }
    let mut names: Vec<(&'static str, String)> = Vec::new();
    for (schema, provider) in schemas {
        names.extend(provider.table_names().into_iter().map(|n| (*schema, n)));
    }
    names.sort();
    names.dedup();
    let mut next = 12_000;
    let mut out = Vec::with_capacity(names.len());
    for (schema, name) in names {
        let Some(provider) = schemas.iter().find(|(s, _)| *s == schema).map(|(_, p)| p) else {
            continue;
        };
        let Some(table) = provider.table(&name).await? else {
            continue;
        };
        let known = (schema == "pg_catalog")
            .then(|| WELL_KNOWN.iter().find(|(n, _)| *n == name).map(|(_, o)| *o))
            .flatten();
        let oid = known.unwrap_or_else(|| {
            next += 1;
            next
        });
        let kind = if schema != "pg_catalog"
            || PG_CATALOG_VIEWS.contains(&name.as_str())
            || name.starts_with("pg_stat")
        {
            "v"
        } else {
            "r"
        };
        out.push(SystemRelation {
            oid,
            schema,
            name,
            kind,
            fields: table.schema().fields().iter().cloned().collect(),
        });
    }
    Ok(SYSTEM_RELATIONS.get_or_init(|| Arc::new(out)).clone())
}

/// The system relations if a statement listed them already.
pub fn known_system_relations() -> Option<Arc<Vec<SystemRelation>>> {
    SYSTEM_RELATIONS.get().cloned()
}

/// Every relation of the catalog: tables, their indexes and chunks, views
/// and sequences. `view_columns` gives the columns of views (their types
/// come from planning them); views missing from it list no columns.
pub fn user_relations(
    state: &CatalogState,
    view_columns: &HashMap<u32, SchemaRef>,
) -> Vec<Relation> {
    let mut out = Vec::new();
    // Materialized views' own tables are not relations of their own.
    let storage: std::collections::HashSet<u32> = state
        .views
        .values()
        .filter_map(|v| v.materialized.as_ref().map(|m| m.table_oid))
        .collect();
    // Tables other tables' foreign keys point at.
    let referenced: std::collections::HashSet<u32> = state
        .tables
        .values()
        .flat_map(|t| t.foreign_keys.iter().map(|fk| fk.ref_oid))
        .collect();
    for t in state.tables.values() {
        if storage.contains(&t.oid) {
            continue;
        }
        let mut rel = Relation::new(t.oid, &t.schema, &t.name, "r");
        rel.columns = table_attributes(t);
        let indexes = t.all_indexes();
        rel.has_index = !indexes.is_empty();
        rel.has_subclass = !t.chunks.is_empty();
        rel.has_triggers = !t.foreign_keys.is_empty() || referenced.contains(&t.oid);
        rel.tuples = t.all_files().map(|f| f.rows as f64).sum();
        rel.comment = t.comment.clone();
        for index in &indexes {
            out.push(index_relation(t, index));
        }
        if let Some(h) = &t.hypertable {
            for c in t.chunks.values() {
                let mut chunk = Relation::new(chunk_oid(c.id), CHUNK_SCHEMA, &c.name(h.id), "r");
                chunk.columns = rel.columns.clone();
                chunk.tuples = c.files.iter().map(|f| f.rows as f64).sum();
                out.push(chunk);
            }
        }
        out.push(rel);
    }
    for v in state.views.values() {
        if let Some(t) = v
            .materialized
            .as_ref()
            .and_then(|m| state.table_by_oid(m.table_oid))
        {
            let mut rel = Relation::new(v.oid, &v.schema, &v.name, "m");
            rel.columns = table_attributes(t);
            rel.tuples = t.all_files().map(|f| f.rows as f64).sum();
            rel.comment = v.comment.clone();
            out.push(rel);
            continue;
        }
        let mut rel = Relation::new(v.oid, &v.schema, &v.name, "v");
        rel.comment = v.comment.clone();
        if let Some(schema) = view_columns.get(&v.oid) {
            rel.columns = schema
                .fields()
                .iter()
                .map(|f| Attribute::of_arrow(f.name(), f.data_type(), false))
                .collect();
        }
        out.push(rel);
    }
    for s in state.sequences.values() {
        let mut rel = Relation::new(s.oid, &s.schema, &s.name, "S");
        rel.comment = s.comment.clone();
        rel.columns = vec![
            Attribute::of_arrow("last_value", &DataType::Int64, true),
            Attribute::of_arrow("log_cnt", &DataType::Int64, true),
            Attribute::of_arrow("is_called", &DataType::Boolean, true),
        ];
        out.push(rel);
    }
    out
}

/// A column DEFAULT of type `ty` as PostgreSQL prints the expression it
/// stored: a sequence argument of `nextval` is a regclass
/// (`nextval('t_id_seq'::regclass)`), a quoted literal of a text-like type
/// carries its cast (`'h'::character varying`), and so does a negative
/// number (`'-1'::integer`). Other defaults print as written.
pub fn shown_default(default: &str, ty: &tempora_catalog::PgType) -> String {
    use tempora_catalog::PgType;
    let trimmed = default.trim();
    if let Some(arg) = trimmed
        .strip_prefix("nextval('")
        .and_then(|r| r.strip_suffix("')"))
    {
        if !arg.contains('\'') || arg.contains("''") {
            return format!("nextval('{arg}'::regclass)");
        }
    }
    // One quoted literal: its quotes only at its ends, or doubled.
    let quoted = trimmed.len() >= 2
        && trimmed.starts_with('\'')
        && trimmed.ends_with('\'')
        && !trimmed[1..trimmed.len() - 1]
            .replace("''", "")
            .contains('\'');
    let canonical_date = |lit: &str| {
        let b = lit.as_bytes();
        b.len() == 12
            && b[1..11].iter().enumerate().all(|(i, c)| {
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                }
            })
    };
    let cast = match ty {
        PgType::Text | PgType::Json | PgType::Jsonb => Some(ty.sql_name()),
        PgType::Varchar(_) => Some("character varying".to_string()),
        PgType::Date if canonical_date(trimmed) => Some(ty.sql_name()),
        _ => None,
    };
    if let (true, Some(cast)) = (quoted, cast) {
        return format!("{trimmed}::{cast}");
    }
    // A negative number is a constant PostgreSQL prints quoted, with its type.
    if let Some(digits) = trimmed.strip_prefix('-') {
        let digits = digits.trim();
        if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            let kind = match trimmed.replace(' ', "").parse::<i64>() {
                Ok(v) if i32::try_from(v).is_ok() => "integer",
                Ok(_) => "bigint",
                Err(_) => "numeric",
            };
            return format!("'-{digits}'::{kind}");
        }
        if digits.parse::<f64>().is_ok() && digits.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        {
            return format!("'-{digits}'::numeric");
        }
    }
    default.to_string()
}

fn table_attributes(t: &TableDef) -> Vec<Attribute> {
    t.columns
        .iter()
        .map(|c| Attribute {
            name: c.name.clone(),
            type_oid: c.ty.oid(),
            typmod: c.ty.typmod(),
            length: c.ty.length(),
            not_null: c.not_null,
            default: c.default.as_deref().map(|d| shown_default(d, &c.ty)),
            comment: c.comment.clone(),
        })
        .collect()
}

fn index_relation(t: &TableDef, index: &IndexDef) -> Relation {
    let mut rel = Relation::new(
        index_oid(&t.schema, &index.name),
        &t.schema,
        &index.name,
        "i",
    );
    rel.access_method = access_method_oid(&index.method);
    let key = |name: &str| -> Attribute {
        match t.columns.iter().find(|c| c.name == name) {
            Some(c) => Attribute {
                name: c.name.clone(),
                type_oid: c.ty.oid(),
                typmod: c.ty.typmod(),
                length: c.ty.length(),
                not_null: false,
                default: None,
                comment: None,
            },
            None => Attribute::of_arrow("expr", &DataType::Utf8, false),
        }
    };
    rel.columns = index
        .columns
        .iter()
        .map(|c| key(if c.expression { "" } else { &c.column }))
        .chain(index.include.iter().map(|c| key(c)))
        .collect();
    rel
}

/// `pg_index.indkey` (and `pg_constraint.conkey` without braces): the
/// 1-based positions of an index's columns, 0 for expressions.
fn column_positions(t: &TableDef, index: &IndexDef) -> Vec<i16> {
    let position = |name: &str| {
        t.columns
            .iter()
            .position(|c| c.name == name)
            .map_or(0, |i| i as i16 + 1)
    };
    index
        .columns
        .iter()
        .map(|c| if c.expression { 0 } else { position(&c.column) })
        .chain(index.include.iter().map(|c| position(c)))
        .collect()
}

/// Which relations `pg_table_is_visible` finds: those of pg_catalog, then
/// those of the search path's schemas, a name found only in the first
/// schema holding it.
pub fn visible(
    relations: &[(&str, &str, u32)],
    search_path: &[String],
) -> std::collections::HashSet<u32> {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut out = std::collections::HashSet::new();
    let order = std::iter::once("pg_catalog").chain(search_path.iter().map(String::as_str));
    for schema in order {
        for (s, name, oid) in relations {
            if *s == schema && !seen.contains(name) {
                out.insert(*oid);
            }
        }
        seen.extend(
            relations
                .iter()
                .filter(|(s, ..)| *s == schema)
                .map(|(_, n, _)| *n),
        );
    }
    out
}

/// Rows for one relation of the emulation's layout, filled by column name.
pub(crate) struct Rows {
    schema: SchemaRef,
    index: HashMap<String, usize>,
    columns: Vec<Vec<ScalarValue>>,
    len: usize,
}

impl Rows {
    pub(crate) fn new(schema: SchemaRef) -> Self {
        let index = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().clone(), i))
            .collect();
        let columns = vec![Vec::new(); schema.fields().len()];
        Rows {
            schema,
            index,
            columns,
            len: 0,
        }
    }

    /// Adds a row: the named values, and for every other column NULL
    /// where it may be, else its type's zero.
    fn push<const N: usize>(&mut self, values: [(&str, ScalarValue); N]) -> DfResult<()> {
        for (name, value) in values {
            if let Some(&i) = self.index.get(name) {
                self.set(i, value)?;
            }
        }
        self.fill_row()
    }

    /// Adds a row given column by column (NULLs where it stops short).
    pub(crate) fn push_row(&mut self, values: Vec<ScalarValue>) -> DfResult<()> {
        for (i, value) in values.into_iter().enumerate() {
            if !value.is_null() {
                self.set(i, value)?;
            }
        }
        self.fill_row()
    }

    /// The value of column `i` in the row being added.
    fn set(&mut self, i: usize, value: ScalarValue) -> DfResult<()> {
        let t = self.schema.field(i).data_type();
        let value = if value.data_type() == *t {
            value
        } else {
            value.cast_to(t)?
        };
        self.columns[i].push(value);
        Ok(())
    }

    /// Ends the row being added: every column not set is NULL where it may
    /// be, else its type's zero.
    fn fill_row(&mut self) -> DfResult<()> {
        self.len += 1;
        for (i, f) in self.schema.fields().iter().enumerate() {
            if self.columns[i].len() < self.len {
                let v = if f.is_nullable() {
                    ScalarValue::try_from(f.data_type())?
                } else {
                    ScalarValue::new_default(f.data_type())?
                };
                self.columns[i].push(v);
            }
        }
        Ok(())
    }

    fn batch(self) -> DfResult<RecordBatch> {
        let arrays = self
            .columns
            .into_iter()
            .zip(self.schema.fields())
            .map(|(values, f)| crate::pg_types::array_of(values, f.data_type()))
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        Ok(RecordBatch::try_new(self.schema, arrays)?)
    }

    /// The rows as a table, after `more` (rows of the same layout).
    pub(crate) fn table(self, more: Vec<RecordBatch>) -> DfResult<Arc<dyn TableProvider>> {
        let schema = self.schema.clone();
        let mut batches = more;
        batches.push(self.batch()?);
        Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
    }
}

pub(crate) fn text(s: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(s.into()))
}

/// A view's query as `pg_get_viewdef` and `information_schema.views` show
/// it: as written, after a space, ending in `;`.
pub fn view_definition(v: &tempora_catalog::ViewDef) -> String {
    format!(" {};", v.definition.trim().trim_end_matches(';'))
}

fn oid(v: u32) -> ScalarValue {
    ScalarValue::Int32(Some(v as i32))
}

fn int2(v: i16) -> ScalarValue {
    ScalarValue::Int16(Some(v))
}

fn boolean(v: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(v))
}

/// The layout with `columns` as `text[]` (added where missing): storage
/// options and access privileges, which Tempora's objects have none of and
/// psql reads with array functions.
fn with_text_arrays(layout: &SchemaRef, columns: &[&str]) -> SchemaRef {
    let arrays: Vec<(&str, DataType)> = columns.iter().map(|c| (*c, DataType::Utf8)).collect();
    with_arrays(layout, &arrays)
}

/// The layout with `arrays` (name, element type) as list columns, added
/// where missing.
fn with_arrays(layout: &SchemaRef, arrays: &[(&str, DataType)]) -> SchemaRef {
    let list =
        |element: &DataType| DataType::List(Arc::new(Field::new("item", element.clone(), true)));
    let mut fields: Vec<FieldRef> = layout
        .fields()
        .iter()
        .map(|f| match arrays.iter().find(|(n, _)| n == f.name()) {
            Some((_, element)) => Arc::new(Field::new(f.name(), list(element), true)),
            None => f.clone(),
        })
        .collect();
    for (c, element) in arrays {
        if layout.field_with_name(c).is_err() {
            fields.push(Arc::new(Field::new(*c, list(element), true)));
        }
    }
    Arc::new(Schema::new(fields))
}

/// Everything the relation-describing tables are built from.
pub struct Snapshot<'a> {
    pub state: &'a CatalogState,
    pub system: &'a [SystemRelation],
    pub user: Vec<Relation>,
}

impl Snapshot<'_> {
    fn namespaces(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = SYSTEM_NAMESPACES
            .iter()
            .map(|(n, o)| (n.to_string(), *o))
            .collect();
        out.push((PUBLIC_SCHEMA.to_string(), PUBLIC_NAMESPACE));
        out.extend(
            self.state
                .schemas
                .iter()
                .map(|s| (s.clone(), namespace_oid(s))),
        );
        out
    }

    pub fn pg_namespace(&self, layout: SchemaRef) -> DfResult<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(with_text_arrays(&layout, &["nspacl"]));
        for (name, o) in self.namespaces() {
            rows.push([
                ("oid", oid(o)),
                ("nspname", text(&name)),
                ("nspowner", oid(OWNER)),
            ])?;
        }
        rows.table(vec![])
    }

    pub fn pg_class(&self, layout: SchemaRef) -> DfResult<Arc<dyn TableProvider>> {
        // Storage options (`WITH (...)`), which Tempora's relations take
        // none of; psql's `\d` reads them.
        let mut rows = Rows::new(with_text_arrays(&layout, &["reloptions", "relacl"]));
        for r in self.system {
            push_class(&mut rows, &r.relation())?;
        }
        for rel in &self.user {
            push_class(&mut rows, rel)?;
        }
        rows.table(vec![])
    }

    /// The columns of the relations in `only` (all when None): psql and
    /// drivers ask for one relation's, and a hypertable's chunks each list
    /// every column.
    pub fn pg_attribute_rows(
        &self,
        layout: &SchemaRef,
        only: Option<&std::collections::HashSet<u32>>,
    ) -> DfResult<RecordBatch> {
        let wanted = |oid: u32| only.is_none_or(|o| o.contains(&oid));
        let mut rows = Rows::new(with_text_arrays(layout, &["attacl"]));
        let system = self
            .system
            .iter()
            .filter(|r| wanted(r.oid))
            .map(SystemRelation::relation);
        for rel in system
            .collect::<Vec<_>>()
            .iter()
            .chain(&self.user)
            .filter(|r| wanted(r.oid))
        {
            for (i, a) in rel.columns.iter().enumerate() {
                push_attribute(&mut rows, rel.oid, i, a)?;
            }
        }
        rows.batch()
    }

    /// The layout `pg_attribute` rows take.
    pub fn pg_attribute_layout(layout: &SchemaRef) -> SchemaRef {
        with_text_arrays(layout, &["attacl"])
    }

    pub fn pg_attrdef(&self, layout: SchemaRef) -> DfResult<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(layout);
        for rel in self.user.iter().filter(|r| r.kind == "r") {
            for (i, a) in rel.columns.iter().enumerate() {
                if let Some(d) = &a.default {
                    let num = (i + 1).to_string();
                    rows.push([
                        (
                            "oid",
                            oid(derived_oid("default", &[&rel.oid.to_string(), &num])),
                        ),
                        ("adrelid", oid(rel.oid)),
                        ("adnum", int2(i as i16 + 1)),
                        ("adbin", text(d)),
                    ])?;
                }
            }
        }
        rows.table(vec![])
    }

    pub fn pg_index(&self, layout: SchemaRef) -> DfResult<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(layout);
        for t in self.state.tables.values() {
            for index in t.all_indexes() {
                let primary = t
                    .unique_keys
                    .iter()
                    .any(|k| k.primary && k.name == index.name);
                let positions = column_positions(t, &index);
                let key_count = index.columns.len() as i16;
                let list = |f: &dyn Fn(usize) -> String| -> String {
                    (0..positions.len()).map(f).collect::<Vec<_>>().join(" ")
                };
                let expressions: Vec<&str> = index
                    .columns
                    .iter()
                    .filter(|c| c.expression)
                    .map(|c| c.column.as_str())
                    .collect();
                rows.push([
                    ("indexrelid", oid(index_oid(&t.schema, &index.name))),
                    ("indrelid", oid(t.oid)),
                    ("indnatts", int2(positions.len() as i16)),
                    ("indnkeyatts", int2(key_count)),
                    ("indisunique", boolean(index.unique)),
                    ("indnullsnotdistinct", boolean(false)),
                    ("indisprimary", boolean(primary)),
                    ("indisexclusion", boolean(false)),
                    ("indimmediate", boolean(true)),
                    ("indisclustered", boolean(false)),
                    ("indisvalid", boolean(true)),
                    ("indcheckxmin", boolean(false)),
                    ("indisready", boolean(true)),
                    ("indislive", boolean(true)),
                    ("indisreplident", boolean(false)),
                    ("indkey", text(list(&|i| positions[i].to_string()))),
                    ("indcollation", text(list(&|_| "0".to_string()))),
                    ("indclass", text(list(&|_| "0".to_string()))),
                    (
                        "indoption",
                        text(list(&|i| {
                            let desc = index.columns.get(i).is_some_and(|c| c.desc);
                            // INDOPTION_DESC | INDOPTION_NULLS_FIRST, as
                            // DESC orders NULLs first by default.
                            if desc { "3" } else { "0" }.to_string()
                        })),
                    ),
                    (
                        "indexprs",
                        if expressions.is_empty() {
                            ScalarValue::Utf8(None)
                        } else {
                            text(expressions.join(", "))
                        },
                    ),
                    ("indpred", ScalarValue::Utf8(index.predicate.clone())),
                ])?;
            }
        }
        rows.table(vec![])
    }

    pub fn pg_constraint(&self, layout: SchemaRef) -> DfResult<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(layout);
        for t in self.state.tables.values() {
            for k in t.unique_keys.iter().filter(|k| !k.index) {
                let keys: Vec<String> = k
                    .columns
                    .iter()
                    .filter_map(|c| t.columns.iter().position(|d| d.name == *c))
                    .map(|i| (i + 1).to_string())
                    .collect();
                rows.push([
                    ("oid", oid(constraint_oid(t.oid, &k.name))),
                    ("conname", text(&k.name)),
                    ("connamespace", oid(namespace_oid(&t.schema))),
                    ("contype", text(if k.primary { "p" } else { "u" })),
                    ("condeferrable", boolean(false)),
                    ("condeferred", boolean(false)),
                    ("convalidated", boolean(true)),
                    ("conrelid", oid(t.oid)),
                    ("contypid", oid(0)),
                    ("conindid", oid(index_oid(&t.schema, &k.name))),
                    ("conparentid", oid(0)),
                    ("confrelid", oid(0)),
                    ("confupdtype", text(" ")),
                    ("confdeltype", text(" ")),
                    ("confmatchtype", text(" ")),
                    ("conislocal", boolean(true)),
                    ("coninhcount", int2(0)),
                    ("connoinherit", boolean(true)),
                    ("conkey", text(format!("{{{}}}", keys.join(",")))),
                ])?;
            }
            for fk in &t.foreign_keys {
                let Some(referenced) = self.state.table_by_oid(fk.ref_oid) else {
                    continue;
                };
                let positions = |table: &TableDef, names: &[String]| -> String {
                    let p: Vec<String> = names
                        .iter()
                        .filter_map(|c| table.columns.iter().position(|d| d.name == *c))
                        .map(|i| (i + 1).to_string())
                        .collect();
                    format!("{{{}}}", p.join(","))
                };
                // The referenced key's index backs the constraint.
                let mut sorted = fk.ref_columns.clone();
                sorted.sort();
                let index = referenced.unique_keys.iter().find(|k| {
                    let mut c = k.columns.clone();
                    c.sort();
                    c == sorted
                });
                rows.push([
                    ("oid", oid(constraint_oid(t.oid, &fk.name))),
                    ("conname", text(&fk.name)),
                    ("connamespace", oid(namespace_oid(&t.schema))),
                    ("contype", text("f")),
                    ("condeferrable", boolean(false)),
                    ("condeferred", boolean(false)),
                    ("convalidated", boolean(true)),
                    ("conrelid", oid(t.oid)),
                    ("contypid", oid(0)),
                    (
                        "conindid",
                        oid(index.map_or(0, |k| index_oid(&referenced.schema, &k.name))),
                    ),
                    ("conparentid", oid(0)),
                    ("confrelid", oid(fk.ref_oid)),
                    ("confupdtype", text(fk.on_update.code().to_string())),
                    ("confdeltype", text(fk.on_delete.code().to_string())),
                    ("confmatchtype", text("s")),
                    ("conislocal", boolean(true)),
                    ("coninhcount", int2(0)),
                    ("connoinherit", boolean(true)),
                    ("conkey", text(positions(t, &fk.columns))),
                    ("confkey", text(positions(referenced, &fk.ref_columns))),
                ])?;
            }
        }
        rows.table(vec![])
    }

    /// Comments of tables and columns, after the emulation's own
    /// (`builtin`: descriptions of built-in functions and types).
    pub fn pg_description(
        &self,
        layout: SchemaRef,
        builtin: Vec<RecordBatch>,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(layout);
        for rel in &self.user {
            if let Some(c) = &rel.comment {
                rows.push([
                    ("objoid", oid(rel.oid)),
                    ("classoid", oid(PG_CLASS_OID)),
                    ("objsubid", ScalarValue::Int32(Some(0))),
                    ("description", text(c)),
                ])?;
            }
            // A chunk shares its hypertable's columns, not their comments.
            if rel.schema == CHUNK_SCHEMA {
                continue;
            }
            for (i, a) in rel.columns.iter().enumerate() {
                if let Some(c) = &a.comment {
                    rows.push([
                        ("objoid", oid(rel.oid)),
                        ("classoid", oid(PG_CLASS_OID)),
                        ("objsubid", ScalarValue::Int32(Some(i as i32 + 1))),
                        ("description", text(c)),
                    ])?;
                }
            }
        }
        for (i, e) in self.state.extensions.iter().enumerate() {
            let description = match e.as_str() {
                "plpgsql" => "PL/pgSQL procedural language",
                "timescaledb" => {
                    "Enables scalable inserts and complex queries for time-series data (Community Edition)"
                }
                _ => continue,
            };
            rows.push([
                ("objoid", oid(crate::pg_functions::extension_oid(i))),
                ("classoid", oid(PG_EXTENSION_OID)),
                ("objsubid", ScalarValue::Int32(Some(0))),
                ("description", text(description)),
            ])?;
        }
        rows.table(builtin)
    }

    pub fn pg_inherits(&self, layout: SchemaRef) -> DfResult<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(layout);
        for t in self.state.tables.values().filter(|t| t.is_hypertable()) {
            for c in t.chunks.values() {
                rows.push([
                    ("inhrelid", oid(chunk_oid(c.id))),
                    ("inhparent", oid(t.oid)),
                    ("inhseqno", ScalarValue::Int32(Some(1))),
                    ("inhdetachpending", boolean(false)),
                ])?;
            }
        }
        rows.table(vec![])
    }

    pub fn pg_sequence(&self, layout: SchemaRef) -> DfResult<Arc<dyn TableProvider>> {
        let mut rows = Rows::new(layout);
        for s in self.state.sequences.values() {
            rows.push([
                ("seqrelid", oid(s.oid)),
                ("seqtypid", oid(s.value_type_oid())),
                ("seqstart", ScalarValue::Int64(Some(s.start))),
                ("seqincrement", ScalarValue::Int64(Some(s.increment))),
                ("seqmax", ScalarValue::Int64(Some(s.max))),
                ("seqmin", ScalarValue::Int64(Some(s.min))),
                ("seqcache", ScalarValue::Int64(Some(s.cache))),
                ("seqcycle", boolean(s.cycle)),
            ])?;
        }
        rows.table(vec![])
    }
}

/// `pg_roles` (`hide_password`: the password as `********`, as that
/// view shows it) or `pg_authid`: the catalog's roles.
pub fn pg_roles(
    layout: SchemaRef,
    state: &CatalogState,
    hide_password: bool,
) -> DfResult<Arc<dyn TableProvider>> {
    let mut rows = Rows::new(layout);
    for role in state.roles.values() {
        // pg_roles hides the password, set or not, behind the same stars.
        let password = match &role.password {
            _ if hide_password => text("********"),
            Some(p) => text(p.as_str()),
            None => ScalarValue::Utf8(None),
        };
        // PostgreSQL's 'infinity' is the largest timestamp.
        let valid_until = ScalarValue::TimestampMicrosecond(role.valid_until, Some("UTC".into()));
        rows.push([
            ("rolname", text(&role.name)),
            ("rolsuper", boolean(role.superuser)),
            ("rolinherit", boolean(role.inherit)),
            ("rolcreaterole", boolean(role.create_role)),
            ("rolcreatedb", boolean(role.create_db)),
            ("rolcanlogin", boolean(role.login)),
            ("rolreplication", boolean(role.replication)),
            (
                "rolconnlimit",
                ScalarValue::Int32(Some(role.connection_limit)),
            ),
            ("rolpassword", password),
            ("rolvaliduntil", valid_until),
            ("rolbypassrls", boolean(role.bypass_rls)),
            ("oid", oid(role.oid)),
        ])?;
    }
    rows.table(vec![])
}

fn push_class(rows: &mut Rows, rel: &Relation) -> DfResult<()> {
    rows.push([
        ("oid", oid(rel.oid)),
        ("relname", text(&rel.name)),
        ("relnamespace", oid(namespace_oid(&rel.schema))),
        ("reltype", oid(0)),
        ("reloftype", oid(0)),
        ("relowner", oid(OWNER)),
        ("relam", oid(rel.access_method)),
        (
            "relfilenode",
            oid(if rel.kind == "v" { 0 } else { rel.oid }),
        ),
        ("reltablespace", oid(0)),
        ("relpages", ScalarValue::Int32(Some(0))),
        ("reltuples", ScalarValue::Float64(Some(rel.tuples))),
        ("relallvisible", ScalarValue::Int32(Some(0))),
        ("reltoastrelid", oid(0)),
        ("relhasindex", boolean(rel.has_index)),
        ("relisshared", boolean(false)),
        ("relpersistence", text("p")),
        ("relkind", text(rel.kind)),
        ("relnatts", int2(rel.columns.len() as i16)),
        ("relchecks", int2(0)),
        ("relhasrules", boolean(rel.kind == "v" || rel.kind == "m")),
        ("relhastriggers", boolean(rel.has_triggers)),
        ("relhassubclass", boolean(rel.has_subclass)),
        ("relrowsecurity", boolean(false)),
        ("relforcerowsecurity", boolean(false)),
        ("relispopulated", boolean(true)),
        (
            "relreplident",
            text(if rel.kind == "r" || rel.kind == "m" {
                "d"
            } else {
                "n"
            }),
        ),
        ("relispartition", boolean(false)),
        ("relrewrite", oid(0)),
        ("relfrozenxid", ScalarValue::Int32(Some(0))),
        ("relminmxid", ScalarValue::Int32(Some(0))),
    ])
}

fn push_attribute(rows: &mut Rows, rel: u32, i: usize, a: &Attribute) -> DfResult<()> {
    let varlena = a.length < 0;
    let collatable = matches!(a.type_oid, 25 | 1043 | 1042 | 19);
    rows.push([
        ("attrelid", oid(rel)),
        ("attname", text(&a.name)),
        ("atttypid", oid(a.type_oid)),
        ("attstattarget", ScalarValue::Int32(Some(-1))),
        ("attlen", int2(a.length)),
        ("attnum", int2(i as i16 + 1)),
        ("attndims", ScalarValue::Int32(Some(0))),
        ("attcacheoff", ScalarValue::Int32(Some(-1))),
        ("atttypmod", ScalarValue::Int32(Some(a.typmod))),
        ("attbyval", boolean(!varlena && a.length <= 8)),
        ("attalign", text(if a.length == 8 { "d" } else { "i" })),
        // PostgreSQL's typstorage: numeric prefers to stay inline.
        (
            "attstorage",
            text(match (varlena, a.type_oid) {
                (true, 1700) => "m",
                (true, _) => "x",
                (false, _) => "p",
            }),
        ),
        ("attcompression", text("")),
        ("attnotnull", boolean(a.not_null)),
        ("atthasdef", boolean(a.default.is_some())),
        ("atthasmissing", boolean(false)),
        ("attidentity", text("")),
        ("attgenerated", text("")),
        ("attisdropped", boolean(false)),
        ("attislocal", boolean(true)),
        ("attinhcount", ScalarValue::Int32(Some(0))),
        ("attcollation", oid(if collatable { 100 } else { 0 })),
    ])
}

/// The layout the emulation declares for one of its relations.
pub async fn layout(inner: &dyn SchemaProvider, name: &str) -> DfResult<SchemaRef> {
    Ok(match inner.table(name).await? {
        Some(t) => t.schema(),
        None => Arc::new(Schema::empty()),
    })
}

/// An empty relation of the emulation's layout with its array columns
/// typed as arrays (the emulation keeps them as text, which `= ANY(...)`
/// cannot search): `pg_policy`, `pg_statistic_ext` — Tempora has no row
/// security policies and no extended statistics.
pub fn empty_with_arrays(
    layout: &SchemaRef,
    arrays: &[(&str, DataType)],
) -> DfResult<Arc<dyn TableProvider>> {
    let schema = with_arrays(layout, arrays);
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}

/// A catalog relation built when scanned, for only the objects its filters
/// name by `key` (`attrelid = 16390`, `attrelid IN (...)`) where they do.
pub struct FilteredCatalogTable {
    pub schema: SchemaRef,
    pub key: &'static str,
    #[allow(clippy::type_complexity)]
    pub build:
        Box<dyn Fn(Option<&std::collections::HashSet<u32>>) -> DfResult<RecordBatch> + Send + Sync>,
}

impl std::fmt::Debug for FilteredCatalogTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilteredCatalogTable")
            .field("key", &self.key)
            .finish()
    }
}

impl FilteredCatalogTable {
    /// The oids an AND of `filters` restricts `key` to, if one does.
    fn oids(
        &self,
        filters: &[datafusion::logical_expr::Expr],
    ) -> Option<std::collections::HashSet<u32>> {
        use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
        let key = |e: &Expr| matches!(e, Expr::Column(c) if c.name == self.key);
        let value = |e: &Expr| -> Option<u32> {
            let mut e = e;
            while let Expr::Cast(c) = e {
                e = &c.expr;
            }
            let Expr::Literal(v, _) = e else {
                return None;
            };
            match v.cast_to(&DataType::Int64).ok()? {
                ScalarValue::Int64(Some(n)) => u32::try_from(n).ok(),
                _ => None,
            }
        };
        for f in filters {
            match f {
                Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Eq,
                    right,
                }) => {
                    let v = if key(left) {
                        value(right)
                    } else if key(right) {
                        value(left)
                    } else {
                        None
                    };
                    if let Some(v) = v {
                        return Some([v].into_iter().collect());
                    }
                }
                Expr::InList(l) if !l.negated && key(&l.expr) => {
                    let values: Option<std::collections::HashSet<u32>> =
                        l.list.iter().map(value).collect();
                    if values.is_some() {
                        return values;
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[async_trait::async_trait]
impl TableProvider for FilteredCatalogTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> DfResult<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        // Filters narrow what is built; DataFusion still applies them.
        Ok(vec![
            datafusion::logical_expr::TableProviderFilterPushDown::Inexact;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let batch = (self.build)(self.oids(filters).as_ref())?;
        Ok(
            datafusion::datasource::memory::MemorySourceConfig::try_new_exec(
                &[vec![batch]],
                self.schema.clone(),
                projection.cloned(),
            )?,
        )
    }
}
