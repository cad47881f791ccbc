//! `populate [--file F]`: seed the cost-center permissions table with conditional puts
//! (`attribute_not_exists(cost_center)`: an existing item is never overwritten). Without `--file`
//! the six cost centers of docs/reference.md §5; with it, a JSON or YAML list of the same fields, validated in
//! full before anything is written (a bad field is exit 2, naming the item and the field).
//! With `DYNAMODB_ENDPOINT_URL` (a local DynamoDB for the demo) it first creates the tables if
//! absent, with the schema of infrastructure/dynamodb-tables.yaml.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;
use serde_json::Value;

use super::Context;
use crate::cli::{OutputFormat, PopulateArgs};
use crate::error::{Error, Exit, Result};
use crate::permissions::{default_cost_centers, is_valid_glob, CostCenter, PermissionsStore};

/// What happened (or would happen) to one cost center.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Kept,
    WouldCreate,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Kept => "kept (already present)",
            Outcome::WouldCreate => "would create",
            Outcome::Failed => "failed",
        }
    }
}

pub async fn execute(ctx: &Context, args: PopulateArgs) -> Result<Exit> {
    let now = chrono::Utc::now().timestamp();
    let (source, items) = match &args.file {
        Some(path) => (path.display().to_string(), load_file(path, now)?),
        None => ("the six default cost centers".to_string(), default_cost_centers(now)),
    };
    let table = ctx.config.permissions_table.clone();
    let client = crate::dynamo::client(&ctx.config).await;
    if ctx.config.dynamodb_endpoint.is_some() && !ctx.dry_run {
        // A local DynamoDB (demo, tests): create the tables from the CloudFormation template
        // first. Real tables come from CloudFormation, never from here.
        crate::dynamo::ensure_local_tables(&client, crate::dynamo::TableNames::of(&ctx.config)).await?;
    }
    let store = PermissionsStore::new(client, &table);

    let (seeded, errors) = seed(&store, items, ctx.dry_run).await;
    let count = |o: Outcome| seeded.iter().filter(|x| x.outcome == o).count();
    tracing::info!(
        table = %table,
        created = count(Outcome::Created),
        kept = count(Outcome::Kept),
        failed = count(Outcome::Failed),
        dry_run = ctx.dry_run,
        "populate finished"
    );
    match ctx.output {
        OutputFormat::Json => {
            let names = |o: Outcome| -> Vec<&str> {
                seeded
                    .iter()
                    .filter(|x| x.outcome == o)
                    .map(|x| x.item.cost_center.as_str())
                    .collect()
            };
            let summary = json!({
                "command": "populate",
                "table": table,
                "source": source,
                "dry_run": ctx.dry_run,
                "created": names(Outcome::Created),
                "kept": names(Outcome::Kept),
                "would_create": names(Outcome::WouldCreate),
                "failed": names(Outcome::Failed),
                "errors": errors,
            });
            println!("{}", serde_json::to_string(&summary)?);
        }
        OutputFormat::Text | OutputFormat::Csv => {
            print_text(&seeded);
            println!(
                "{}populate {table} from {source}: {} created, {} kept, {} would be created, {} failed",
                if ctx.dry_run { "[dry run] " } else { "" },
                count(Outcome::Created),
                count(Outcome::Kept),
                count(Outcome::WouldCreate),
                count(Outcome::Failed)
            );
        }
    }
    if errors.is_empty() {
        Ok(Exit::Ok)
    } else {
        Err(Error::dynamo(format!(
            "{} of {} cost centers could not be written: {}",
            errors.len(),
            seeded.len(),
            errors.join("; ")
        )))
    }
}

/// One item of the seed and what became of it.
struct Seeded {
    item: CostCenter,
    outcome: Outcome,
}

/// Writes each item unless its cost center exists (a dry run only reads which exist); returns
/// every item with its outcome, and the errors of those that could not be written.
async fn seed(store: &PermissionsStore, items: Vec<CostCenter>, dry_run: bool) -> (Vec<Seeded>, Vec<String>) {
    let mut seeded = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    if dry_run {
        // Reading is harmless: tell which ones exist; if the table cannot be read, say so.
        let names: BTreeSet<String> = items.iter().map(|c| c.cost_center.clone()).collect();
        let existing = match store.fetch(&names).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "dry run: cannot read the permissions table; assuming every item is absent");
                Default::default()
            }
        };
        for item in items {
            let outcome = if existing.contains_key(&item.cost_center) {
                Outcome::Kept
            } else {
                Outcome::WouldCreate
            };
            seeded.push(Seeded { item, outcome });
        }
        return (seeded, errors);
    }
    for item in items {
        let outcome = match store.put_if_absent(&item).await {
            Ok(true) => Outcome::Created,
            Ok(false) => Outcome::Kept,
            Err(e) => {
                tracing::error!(cost_center = %item.cost_center, error = %e, "cost center could not be written");
                errors.push(format!("{}: {e}", item.cost_center));
                Outcome::Failed
            }
        };
        seeded.push(Seeded { item, outcome });
    }
    (seeded, errors)
}

/// The seed as a table, one row per item with its outcome.
fn print_text(seeded: &[Seeded]) {
    let width = seeded
        .iter()
        .map(|x| x.item.cost_center.len())
        .max()
        .unwrap_or(0)
        .max(11);
    println!(
        "{:<width$}  {:<10}  {:<10}  {:>4}  {:<28}  RESULT",
        "COST CENTER", "CODIGO", "AUTHORIZED", "MAX", "NAMESPACES"
    );
    for Seeded { item: cc, outcome } in seeded {
        println!(
            "{:<width$}  {:<10}  {:<10}  {:>4}  {:<28}  {}",
            cc.cost_center,
            cc.codigo.as_deref().unwrap_or("-"),
            if cc.is_authorized { "yes" } else { "no" },
            cc.max_concurrent_namespaces,
            cc.authorized_namespaces
                .as_ref()
                .map(|v| v.join(","))
                .unwrap_or_else(|| "(any)".into()),
            outcome.as_str()
        );
    }
}

const FIELDS: [&str; 10] = [
    "cost_center",
    "codigo-cost-center",
    "codigo",
    "is_authorized",
    "max_concurrent_namespaces",
    "authorized_namespaces",
    "allowed_clusters",
    "description",
    "created_at",
    "updated_at",
];

/// Reads and validates a seed file: a JSON or YAML list of cost centers. Any problem is an
/// `Error::Config` for `--file` naming the item (position and cost center) and the field.
pub fn load_file(path: &Path, now: i64) -> Result<Vec<CostCenter>> {
    let shown = path.display().to_string();
    let fail = |reason: String| Error::config("--file", &shown, reason);
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let doc: Value = crate::yaml::from_str(&text).map_err(|e| fail(format!("not valid JSON or YAML: {e}")))?;
    let list = doc
        .as_array()
        .ok_or_else(|| fail("expected a list of cost centers".to_string()))?;
    if list.is_empty() {
        return Err(fail("the list is empty".to_string()));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let cc = parse_item(item, now).map_err(|reason| {
            let name = item.get("cost_center").and_then(Value::as_str).unwrap_or("?");
            fail(format!("item {} (cost_center {name}): {reason}", i + 1))
        })?;
        if !seen.insert(cc.cost_center.clone()) {
            return Err(fail(format!(
                "item {} (cost_center {}): field cost_center: duplicate of an earlier item",
                i + 1,
                cc.cost_center
            )));
        }
        out.push(cc);
    }
    Ok(out)
}

fn parse_item(item: &Value, now: i64) -> std::result::Result<CostCenter, String> {
    let map = item.as_object().ok_or("expected a mapping of fields")?;
    for key in map.keys() {
        match key.as_str() {
            k if FIELDS.contains(&k) => {}
            _ => {
                return Err(format!(
                    "field {}: unknown field (expected one of {})",
                    show(&Value::String(key.clone())),
                    FIELDS.join(", ")
                ))
            }
        }
    }
    let get = |k: &str| item.get(k).filter(|v| !v.is_null());
    let field = |k: &str, what: &str, v: &Value| format!("field {k}: expected {what}, got {}", show(v));
    let string = |k: &str| -> std::result::Result<Option<String>, String> {
        match get(k) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Some(v) => Err(field(k, "a non-empty string", v)),
        }
    };
    let strings = |k: &str, glob: bool| -> std::result::Result<Option<Vec<String>>, String> {
        let Some(v) = get(k) else { return Ok(None) };
        let list = v.as_array().ok_or_else(|| field(k, "a list of strings", v))?;
        list.iter()
            .map(|x| match x.as_str() {
                Some(s) if glob && !is_valid_glob(s) => Err(field(k, "glob patterns such as dev-*", x)),
                Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(field(k, "a list of non-empty strings", x)),
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Some)
    };
    let int = |k: &str, max: i64| -> std::result::Result<Option<i64>, String> {
        match get(k) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (0..=max).contains(&n) => Ok(Some(n)),
                _ => Err(field(k, &format!("a whole number from 0 to {max}"), v)),
            },
        }
    };
    let cost_center = string("cost_center")?.ok_or("field cost_center: missing")?;
    if !cost_center
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "field cost_center: {cost_center:?} may only contain A-Z a-z 0-9 - _ ."
        ));
    }
    let is_authorized = match get("is_authorized") {
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(field("is_authorized", "true or false", v)),
        None => return Err("field is_authorized: missing".to_string()),
    };
    let max = int("max_concurrent_namespaces", 10_000)?.ok_or("field max_concurrent_namespaces: missing")?;
    let codigo = match (string("codigo-cost-center")?, string("codigo")?) {
        (Some(_), Some(_)) => return Err("field codigo: give codigo-cost-center or codigo, not both".to_string()),
        (a, b) => a.or(b),
    };
    let created_at = int("created_at", i64::MAX)?.unwrap_or(now);
    Ok(CostCenter {
        cost_center,
        codigo,
        is_authorized,
        max_concurrent_namespaces: max as u32,
        authorized_namespaces: strings("authorized_namespaces", true)?,
        allowed_clusters: strings("allowed_clusters", false)?,
        description: string("description")?,
        created_at: Some(created_at),
        updated_at: Some(int("updated_at", i64::MAX)?.unwrap_or(now)),
    })
}

fn show(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, ext: &str) -> Result<Vec<CostCenter>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("seed.{ext}"));
        std::fs::write(&path, text).unwrap();
        load_file(&path, 1000)
    }

    #[test]
    fn yaml_and_json_seeds_are_read() {
        let yaml = "- cost_center: TEAM-A\n  is_authorized: true\n  max_concurrent_namespaces: 4\n  \
                    authorized_namespaces: [team-a-*]\n  codigo-cost-center: C1\n";
        let got = load(yaml, "yaml").unwrap();
        assert_eq!(got[0].cost_center, "TEAM-A");
        assert_eq!(got[0].codigo.as_deref(), Some("C1"));
        assert_eq!(got[0].created_at, Some(1000));
        let json = r#"[{"cost_center":"TEAM-B","is_authorized":false,"max_concurrent_namespaces":0,"allowed_clusters":["eks-a"]}]"#;
        let got = load(json, "json").unwrap();
        assert_eq!(got[0].allowed_clusters, Some(vec!["eks-a".to_string()]));
        assert_eq!(got[0].authorized_namespaces, None);
    }

    #[test]
    fn bad_fields_name_the_item_and_the_field() {
        let ok = "cost_center: OK\n  is_authorized: true\n  max_concurrent_namespaces: 1";
        let cases = [
            (
                "max_concurrent_namespaces",
                "ten",
                "item 2 (cost_center BAD): field max_concurrent_namespaces",
            ),
            ("max_concurrent_namespaces", "-1", "field max_concurrent_namespaces"),
            ("is_authorized", "yes", "item 2 (cost_center BAD): field is_authorized"),
            ("authorized_namespaces", "dev-*", "field authorized_namespaces"),
            ("authorized_namespaces", "['dev-[']", "field authorized_namespaces"),
            ("maximum", "3", "field \"maximum\": unknown field"),
        ];
        for (key, value, want) in cases {
            let mut fields = std::collections::BTreeMap::from([
                ("cost_center", "BAD"),
                ("is_authorized", "true"),
                ("max_concurrent_namespaces", "1"),
            ]);
            fields.insert(key, value);
            let item: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let text = format!("- {ok}\n- {}\n", item.join("\n  "));
            let err = load(&text, "yaml").unwrap_err();
            assert_eq!(err.exit(), Exit::Usage);
            assert!(err.to_string().contains(want), "{key}: {value}: {err}");
            assert!(err.to_string().contains("--file"), "{err}");
        }
        let dup = format!("- {ok}\n- {ok}\n");
        assert!(load(&dup, "yaml").unwrap_err().to_string().contains("duplicate"));
        assert!(load("{}", "json").unwrap_err().to_string().contains("list"));
        assert!(load("- cost_center: X\n", "yaml")
            .unwrap_err()
            .to_string()
            .contains("is_authorized: missing"));
    }
}
