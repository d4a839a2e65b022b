//! `information_schema` as PostgreSQL defines it — `tables`, `columns`,
//! `schemata`, `views` — over the same relations `pg_class` lists
//! ([`crate::pg_relations`]): BI tools' query builders and ORMs read column
//! types from here (`data_type` is `timestamp with time zone`, not the Arrow
//! type a value travels as).

use std::sync::{Arc, Weak};

use crate::pg_relations::{text, Attribute, Relation, Rows, SystemRelation};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::{Result as DfResult, ScalarValue};

pub const SCHEMA: &str = "information_schema";

const TABLES: &[&str] = &["columns", "schemata", "tables", "views"];

/// The columns of each view, all text but the numbers.
fn layout(name: &str) -> SchemaRef {
    let int = |n: &str| Field::new(n, DataType::Int32, true);
    let text = |n: &str| Field::new(n, DataType::Utf8, true);
    let columns: Vec<Field> = match name {
        "tables" => [
            "table_catalog",
            "table_schema",
            "table_name",
            "table_type",
            "self_referencing_column_name",
            "reference_generation",
            "user_defined_type_catalog",
            "user_defined_type_schema",
            "user_defined_type_name",
            "is_insertable_into",
            "is_typed",
            "commit_action",
        ]
        .into_iter()
        .map(text)
        .collect(),
        "schemata" => [
            "catalog_name",
            "schema_name",
            "schema_owner",
            "default_character_set_catalog",
            "default_character_set_schema",
            "default_character_set_name",
            "sql_path",
        ]
        .into_iter()
        .map(text)
        .collect(),
        "views" => [
            "table_catalog",
            "table_schema",
            "table_name",
            "view_definition",
            "check_option",
            "is_updatable",
            "is_insertable_into",
            "is_trigger_updatable",
            "is_trigger_deletable",
            "is_trigger_insertable_into",
        ]
        .into_iter()
        .map(text)
        .collect(),
        _ => {
            let numbers = [
                "ordinal_position",
                "character_maximum_length",
                "character_octet_length",
                "numeric_precision",
                "numeric_precision_radix",
                "numeric_scale",
                "datetime_precision",
                "interval_precision",
                "maximum_cardinality",
            ];
            [
                "table_catalog",
                "table_schema",
                "table_name",
                "column_name",
                "ordinal_position",
                "column_default",
                "is_nullable",
                "data_type",
                "character_maximum_length",
                "character_octet_length",
                "numeric_precision",
                "numeric_precision_radix",
                "numeric_scale",
                "datetime_precision",
                "interval_type",
                "interval_precision",
                "character_set_catalog",
                "character_set_schema",
                "character_set_name",
                "collation_catalog",
                "collation_schema",
                "collation_name",
                "domain_catalog",
                "domain_schema",
                "domain_name",
                "udt_catalog",
                "udt_schema",
                "udt_name",
                "scope_catalog",
                "scope_schema",
                "scope_name",
                "maximum_cardinality",
                "dtd_identifier",
                "is_self_referencing",
                "is_identity",
                "identity_generation",
                "identity_start",
                "identity_increment",
                "identity_maximum",
                "identity_minimum",
                "identity_cycle",
                "is_generated",
                "generation_expression",
                "is_updatable",
            ]
            .into_iter()
            .map(|n| {
                if numbers.contains(&n) {
                    int(n)
                } else {
                    text(n)
                }
            })
            .collect()
        }
    };
    Arc::new(Schema::new(columns))
}

/// What `information_schema.columns` says of a column's type, by its
/// `pg_type` oid and modifier.
struct TypeFacts {
    data_type: String,
    udt_name: &'static str,
    character_maximum_length: Option<i32>,
    character_octet_length: Option<i32>,
    numeric_precision: Option<i32>,
    numeric_precision_radix: Option<i32>,
    numeric_scale: Option<i32>,
    datetime_precision: Option<i32>,
}

fn type_facts(a: &Attribute) -> TypeFacts {
    let mut f = TypeFacts {
        data_type: String::new(),
        udt_name: "",
        character_maximum_length: None,
        character_octet_length: None,
        numeric_precision: None,
        numeric_precision_radix: None,
        numeric_scale: None,
        datetime_precision: None,
    };
    let binary = |f: &mut TypeFacts, bits: i32, scale: Option<i32>| {
        f.numeric_precision = Some(bits);
        f.numeric_precision_radix = Some(2);
        f.numeric_scale = scale;
    };
    let (data_type, udt) = match a.type_oid {
        16 => ("boolean", "bool"),
        21 => {
            binary(&mut f, 16, Some(0));
            ("smallint", "int2")
        }
        23 => {
            binary(&mut f, 32, Some(0));
            ("integer", "int4")
        }
        20 => {
            binary(&mut f, 64, Some(0));
            ("bigint", "int8")
        }
        700 => {
            binary(&mut f, 24, None);
            ("real", "float4")
        }
        701 => {
            binary(&mut f, 53, None);
            ("double precision", "float8")
        }
        1700 => {
            if a.typmod >= 4 {
                let m = a.typmod - 4;
                f.numeric_precision = Some((m >> 16) & 0xffff);
                f.numeric_scale = Some(m & 0xffff);
            }
            f.numeric_precision_radix = Some(10);
            ("numeric", "numeric")
        }
        25 => {
            f.character_octet_length = Some(1_073_741_824);
            ("text", "text")
        }
        1043 => {
            if a.typmod >= 4 {
                f.character_maximum_length = Some(a.typmod - 4);
                f.character_octet_length = Some((a.typmod - 4) * 4);
            } else {
                f.character_octet_length = Some(1_073_741_824);
            }
            ("character varying", "varchar")
        }
        1184 => {
            f.datetime_precision = Some(6);
            ("timestamp with time zone", "timestamptz")
        }
        1114 => {
            f.datetime_precision = Some(6);
            ("timestamp without time zone", "timestamp")
        }
        1082 => {
            f.datetime_precision = Some(0);
            ("date", "date")
        }
        1083 => {
            f.datetime_precision = Some(6);
            ("time without time zone", "time")
        }
        1186 => {
            f.datetime_precision = Some(6);
            ("interval", "interval")
        }
        17 => ("bytea", "bytea"),
        114 => ("json", "json"),
        3802 => ("jsonb", "jsonb"),
        2950 => ("uuid", "uuid"),
        1000 => ("ARRAY", "_bool"),
        1005 => ("ARRAY", "_int2"),
        1007 => ("ARRAY", "_int4"),
        1016 => ("ARRAY", "_int8"),
        1022 => ("ARRAY", "_float8"),
        1009 => ("ARRAY", "_text"),
        _ => ("unknown", "unknown"),
    };
    f.data_type = data_type.to_string();
    f.udt_name = udt;
    f
}

fn int(v: Option<i32>) -> ScalarValue {
    ScalarValue::Int32(v)
}

fn table(name: &str, rows: Vec<Vec<ScalarValue>>) -> DfResult<Arc<dyn TableProvider>> {
    let mut out = Rows::new(layout(name));
    for row in rows {
        out.push_row(row)?;
    }
    out.table(vec![])
}

/// The catalog, the system relations and Tempora's relations at one moment.
pub(crate) type RelationsSnapshot = (
    Arc<tempora_catalog::CatalogState>,
    Arc<Vec<SystemRelation>>,
    Vec<Relation>,
);

/// Where the views find the relations to describe: the session's
/// `pg_catalog` overlay (which plans views for their columns).
#[async_trait]
pub(crate) trait RelationSource: Send + Sync + std::fmt::Debug {
    async fn with_snapshot(&self, view_columns: bool) -> DfResult<RelationsSnapshot>;
}

/// The `information_schema` of a session. Without a session (`None`) it
/// only answers for its views' columns (listing them in `pg_class`).
#[derive(Debug)]
pub struct InformationSchemaViews {
    pub(crate) source: Option<Weak<dyn RelationSource>>,
    /// The session's database (`table_catalog`).
    pub(crate) database: String,
}

impl InformationSchemaViews {
    async fn rows(&self, name: &str) -> DfResult<Vec<Vec<ScalarValue>>> {
        let Some(source) = self.source.as_ref().and_then(Weak::upgrade) else {
            return Ok(vec![]);
        };
        let (state, system, user) = source.with_snapshot(name == "columns").await?;
        let db = self.database.as_str();
        let relations: Vec<Relation> = system
            .iter()
            .map(SystemRelation::relation)
            .chain(user)
            .filter(|r| r.kind == "r" || r.kind == "v")
            .collect();
        let yes_no = |b: bool| text(if b { "YES" } else { "NO" });
        Ok(match name {
            "tables" => relations
                .iter()
                .map(|r| {
                    let base = r.kind == "r";
                    vec![
                        text(db),
                        text(&r.schema),
                        text(&r.name),
                        text(if base { "BASE TABLE" } else { "VIEW" }),
                        ScalarValue::Null,
                        ScalarValue::Null,
                        ScalarValue::Null,
                        ScalarValue::Null,
                        ScalarValue::Null,
                        yes_no(base),
                        text("NO"),
                        ScalarValue::Null,
                    ]
                })
                .collect(),
            "columns" => {
                let mut rows = Vec::new();
                for r in &relations {
                    for (i, a) in r.columns.iter().enumerate() {
                        let t = type_facts(a);
                        let mut row = vec![
                            text(db),
                            text(&r.schema),
                            text(&r.name),
                            text(&a.name),
                            int(Some(i as i32 + 1)),
                            a.default.clone().map_or(ScalarValue::Null, text),
                            yes_no(!a.not_null),
                            text(&t.data_type),
                            int(t.character_maximum_length),
                            int(t.character_octet_length),
                            int(t.numeric_precision),
                            int(t.numeric_precision_radix),
                            int(t.numeric_scale),
                            int(t.datetime_precision),
                        ];
                        // interval_type .. domain_name: none.
                        row.extend(std::iter::repeat_n(ScalarValue::Null, 11));
                        row.extend([text(db), text("pg_catalog"), text(t.udt_name)]);
                        // scope_*, maximum_cardinality.
                        row.extend(std::iter::repeat_n(ScalarValue::Null, 4));
                        row.extend([text((i + 1).to_string()), text("NO"), text("NO")]);
                        // identity_generation .. identity_minimum.
                        row.extend(std::iter::repeat_n(ScalarValue::Null, 5));
                        row.extend([
                            text("NO"),
                            text("NEVER"),
                            ScalarValue::Null,
                            yes_no(r.kind == "r"),
                        ]);
                        rows.push(row);
                    }
                }
                rows
            }
            "schemata" => {
                let mut names: Vec<String> =
                    ["pg_catalog", "public", SCHEMA, crate::information::SCHEMA]
                        .iter()
                        .map(|s| s.to_string())
                        .chain(std::iter::once(tempora_catalog::CHUNK_SCHEMA.to_string()))
                        .chain(state.schemas.iter().cloned())
                        .collect();
                names.sort();
                names.dedup();
                names
                    .into_iter()
                    .map(|n| vec![text(db), text(n), text("postgres")])
                    .collect()
            }
            _ => state
                .views
                .values()
                .map(|v| {
                    vec![
                        text(db),
                        text(&v.schema),
                        text(&v.name),
                        text(crate::pg_relations::view_definition(v)),
                        text("NONE"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                        text("NO"),
                    ]
                })
                .collect(),
        })
    }
}

#[async_trait]
impl SchemaProvider for InformationSchemaViews {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(&name) = TABLES.iter().find(|t| t.eq_ignore_ascii_case(name)) else {
            return Ok(None);
        };
        Ok(Some(table(name, self.rows(name).await?)?))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.iter().any(|t| t.eq_ignore_ascii_case(name))
    }
}
