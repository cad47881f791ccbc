//! Offline checks of the non-Kubernetes deployment artifacts (docs/reference.md §7, issue 5):
//! the CloudFormation template (read with serde-saphyr, as the Rust code that creates local
//! tables reads it), the Dockerfile, and the GitHub Actions workflows.
//! `scripts/lint-artifacts.sh` runs cfn-lint and action-validator on the same files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Value};

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    namespace_scheduler::yaml::from_str(&read(rel))
        .unwrap_or_else(|e| panic!("{rel} is not plain YAML (short-form tags such as !Sub are not allowed): {e}"))
}

// ---------------------------------------------------------------------------------------
// CloudFormation
// ---------------------------------------------------------------------------------------

const TEMPLATE: &str = "infrastructure/dynamodb-tables.yaml";

fn template() -> Value {
    yaml(TEMPLATE)
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    let r = &t["Resources"][name];
    assert!(r.is_object(), "{TEMPLATE}: resource {name} missing");
    r
}

fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("KeySchema")
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_string(),
                k["KeyType"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(a, t)| (a.to_string(), t.to_string())).collect()
}

/// A table's AttributeDefinitions: name → type.
fn attribute_definitions(properties: &Value) -> BTreeMap<String, String> {
    properties["AttributeDefinitions"]
        .as_array()
        .expect("AttributeDefinitions")
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap().to_string(),
                a["AttributeType"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_table_basics(t: &Value, logical: &str, name_sub: &str) {
    let r = resource(t, logical);
    assert_eq!(r["Type"], "AWS::DynamoDB::Table", "{logical}: type");
    let p = &r["Properties"];
    assert_eq!(p["TableName"], json!({ "Fn::Sub": name_sub }), "{logical}: TableName");
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST", "{logical}: BillingMode");
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], true,
        "{logical}: point-in-time recovery"
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true, "{logical}: SSE");
    assert_eq!(
        r["DeletionPolicy"], "Retain",
        "{logical}: a stack deletion must keep the data"
    );
}

#[test]
fn template_is_plain_yaml_with_long_form_intrinsics() {
    let text = read(TEMPLATE);
    for (i, line) in text.lines().enumerate() {
        let code = line.split('#').next().unwrap();
        assert!(
            !code.contains(": !") && !code.trim_start().starts_with("- !"),
            "{TEMPLATE}:{}: short-form intrinsic tag; use Fn::Sub / Ref / Fn::GetAtt: {line}",
            i + 1
        );
    }
    let t = template();
    assert_eq!(t["AWSTemplateFormatVersion"], "2010-09-09");
    let params = &t["Parameters"];
    assert_eq!(params["Environment"]["Default"], "production");
    assert!(params["EnableTTL"].is_object(), "EnableTTL parameter");
    assert!(
        params["OidcProviderUrl"].is_object(),
        "OIDC provider parameter for IRSA"
    );
}

#[test]
fn audit_table_schema() {
    let t = template();
    assert_table_basics(&t, "AuditTable", "task-scheduler-logs-${Environment}");
    let p = &resource(&t, "AuditTable")["Properties"];
    assert_eq!(
        key_schema(&p["KeySchema"]),
        keys(&[("namespace_name", "HASH"), ("timestamp_start", "RANGE")])
    );
    let attrs = attribute_definitions(p);
    let want_attrs: BTreeMap<String, String> = [
        ("namespace_name", "S"),
        ("timestamp_start", "N"),
        ("cost_center", "S"),
        ("operation_type", "S"),
        ("cluster_name", "S"),
        ("requested_by", "S"),
    ]
    .iter()
    .map(|(a, t)| (a.to_string(), t.to_string()))
    .collect();
    assert_eq!(
        attrs, want_attrs,
        "AuditTable AttributeDefinitions (exactly the key attributes)"
    );

    let gsis: BTreeMap<String, &Value> = p["GlobalSecondaryIndexes"]
        .as_array()
        .expect("GlobalSecondaryIndexes")
        .iter()
        .map(|g| (g["IndexName"].as_str().unwrap().to_string(), g))
        .collect();
    let want = [
        ("cost-center-timestamp-index", "cost_center"),
        ("operation-type-timestamp-index", "operation_type"),
        ("cluster-timestamp-index", "cluster_name"),
        ("requested-by-timestamp-index", "requested_by"),
    ];
    assert_eq!(
        gsis.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        want.iter().map(|(n, _)| *n).collect::<BTreeSet<_>>(),
        "AuditTable GSIs"
    );
    for (name, hash) in want {
        let g = gsis[name];
        assert_eq!(
            key_schema(&g["KeySchema"]),
            keys(&[(hash, "HASH"), ("timestamp_start", "RANGE")]),
            "GSI {name} keys"
        );
        assert_eq!(g["Projection"]["ProjectionType"], "ALL", "GSI {name} projection");
        assert!(
            g.get("ProvisionedThroughput").is_none(),
            "GSI {name}: on-demand table, no provisioned throughput"
        );
    }

    assert_eq!(
        p["StreamSpecification"]["StreamViewType"], "NEW_AND_OLD_IMAGES",
        "AuditTable stream"
    );
    let ttl = &p["TimeToLiveSpecification"];
    assert_eq!(ttl["AttributeName"], "expires_at", "TTL attribute");
    assert_eq!(
        ttl["Enabled"],
        json!({ "Fn::If": ["TTLEnabled", true, false] }),
        "TTL follows the EnableTTL parameter"
    );
    assert_eq!(
        t["Conditions"]["TTLEnabled"],
        json!({ "Fn::Equals": [{ "Ref": "EnableTTL" }, "true"] })
    );
}

#[test]
fn permissions_table_schema() {
    let t = template();
    assert_table_basics(&t, "PermissionsTable", "cost-center-permissions-${Environment}");
    let p = &resource(&t, "PermissionsTable")["Properties"];
    assert_eq!(key_schema(&p["KeySchema"]), keys(&[("cost_center", "HASH")]));
    assert_eq!(
        p["AttributeDefinitions"],
        json!([{ "AttributeName": "cost_center", "AttributeType": "S" }])
    );
}

#[test]
fn windows_table_schema() {
    let t = template();
    assert_table_basics(&t, "WindowsTable", "namespace-scheduler-windows-${Environment}");
    let r = resource(&t, "WindowsTable");
    assert_eq!(
        r["Properties"]["DeletionProtectionEnabled"], true,
        "WindowsTable: open windows are state, not a cache"
    );
    let p = &r["Properties"];
    assert_eq!(
        key_schema(&p["KeySchema"]),
        keys(&[("cost_center", "HASH"), ("window_key", "RANGE")])
    );
    let attrs = attribute_definitions(p);
    assert_eq!(
        attrs,
        [
            ("cost_center", "S"),
            ("window_key", "S"),
            ("cluster", "S"),
            ("namespace", "S")
        ]
        .iter()
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect(),
        "WindowsTable AttributeDefinitions (exactly the key attributes)"
    );
    let gsis = p["GlobalSecondaryIndexes"].as_array().expect("GlobalSecondaryIndexes");
    assert_eq!(gsis.len(), 1, "one GSI: one cluster's windows");
    assert_eq!(gsis[0]["IndexName"], "cluster-namespace-index");
    assert_eq!(
        key_schema(&gsis[0]["KeySchema"]),
        keys(&[("cluster", "HASH"), ("namespace", "RANGE")])
    );
    assert_eq!(gsis[0]["Projection"]["ProjectionType"], "ALL");
    // Expired windows stop counting by their `until`; the TTL only clears them, always on.
    assert_eq!(
        p["TimeToLiveSpecification"],
        json!({ "AttributeName": "expires_at", "Enabled": true })
    );
    assert!(p.get("StreamSpecification").is_none(), "no stream on the windows table");
}

/// Statement resources, as the template writes them.
fn statement_resources(s: &Value) -> Vec<Value> {
    match &s["Resource"] {
        Value::Array(a) => a.clone(),
        v => vec![v.clone()],
    }
}

fn statement_actions(s: &Value) -> Vec<String> {
    match &s["Action"] {
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        Value::String(x) => vec![x.clone()],
        v => panic!("Action {v}"),
    }
}

#[test]
fn irsa_role_is_least_privilege() {
    let t = template();
    let role = resource(&t, "SchedulerRole");
    assert_eq!(role["Type"], "AWS::IAM::Role");
    let p = &role["Properties"];

    // trust: only the scheduler's ServiceAccount through the cluster's OIDC provider
    let trust_text = p["AssumeRolePolicyDocument"]["Fn::Sub"]
        .as_str()
        .expect("AssumeRolePolicyDocument is a Fn::Sub JSON string");
    let trust: Value = serde_json::from_str(trust_text).expect("trust policy is JSON");
    let stmts = trust["Statement"].as_array().unwrap();
    assert_eq!(stmts.len(), 1, "one trust statement");
    let s = &stmts[0];
    assert_eq!(s["Effect"], "Allow");
    assert_eq!(s["Action"], "sts:AssumeRoleWithWebIdentity");
    assert_eq!(
        s["Principal"]["Federated"],
        "arn:${AWS::Partition}:iam::${AWS::AccountId}:oidc-provider/${OidcProviderUrl}"
    );
    assert_eq!(
        s["Condition"]["StringEquals"],
        json!({
            "${OidcProviderUrl}:sub": "system:serviceaccount:task-scheduler:namespace-scheduler",
            "${OidcProviderUrl}:aud": "sts.amazonaws.com"
        }),
        "trust conditions: exact ServiceAccount (StringEquals, no wildcard) and audience"
    );

    assert!(p.get("ManagedPolicyArns").is_none(), "no managed policies");
    let policies = p["Policies"].as_array().expect("inline Policies");
    let audit = json!({ "Fn::GetAtt": ["AuditTable", "Arn"] });
    let audit_index = json!({ "Fn::Sub": "${AuditTable.Arn}/index/*" });
    let permissions = json!({ "Fn::GetAtt": ["PermissionsTable", "Arn"] });
    let windows = json!({ "Fn::GetAtt": ["WindowsTable", "Arn"] });
    let windows_index = json!({ "Fn::Sub": "${WindowsTable.Arn}/index/*" });

    // (resource, action) pairs granted
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    for pol in policies {
        for s in pol["PolicyDocument"]["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            assert!(s.get("NotAction").is_none() && s.get("NotResource").is_none());
            let actions = statement_actions(s);
            for a in &actions {
                assert!(a.starts_with("dynamodb:"), "only DynamoDB actions, got {a}");
                assert!(!a.contains('*'), "no wildcard action, got {a}");
            }
            for r in statement_resources(s) {
                assert!(
                    [&audit, &audit_index, &permissions, &windows, &windows_index].contains(&&r),
                    "resource {r} is not one of the three tables or their indexes"
                );
                if let Some(text) = r.as_str() {
                    assert!(!text.contains('*'), "wildcard resource {text}");
                }
                for a in &actions {
                    granted.insert((r.to_string(), a.clone()));
                }
            }
        }
    }
    let want: BTreeSet<(String, String)> = [
        (&audit, "PutItem"),
        (&audit, "BatchWriteItem"),
        (&audit, "Query"),
        (&audit, "DescribeTable"),
        (&audit_index, "Query"),
        (&permissions, "GetItem"),
        (&permissions, "BatchGetItem"),
        (&permissions, "PutItem"),
        (&permissions, "Scan"),
        (&permissions, "DescribeTable"),
        // A grant's TransactWriteItems is authorized per element: Put, Update (the version
        // item), Delete (a replaced window). Releases are BatchWriteItem deletes.
        (&windows, "Query"),
        (&windows, "PutItem"),
        (&windows, "UpdateItem"),
        (&windows, "DeleteItem"),
        (&windows, "BatchWriteItem"),
        (&windows_index, "Query"),
    ]
    .iter()
    .map(|(r, a)| (r.to_string(), format!("dynamodb:{a}")))
    .collect();
    assert_eq!(granted, want, "DynamoDB grants must be exactly what the binary uses");
}

#[test]
fn outputs() {
    let t = template();
    for o in [
        "AuditTableName",
        "AuditTableArn",
        "PermissionsTableName",
        "PermissionsTableArn",
        "WindowsTableName",
        "WindowsTableArn",
        "RoleArn",
    ] {
        assert!(t["Outputs"][o]["Value"].is_object(), "output {o}");
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------

/// Dockerfile instructions (continuation lines joined, comments dropped).
fn dockerfile() -> Vec<(String, String)> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(stripped) = trimmed.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (ins, rest) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
        out.push((ins.to_ascii_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_static_and_non_root() {
    let ins = dockerfile();
    let froms: Vec<&String> = ins.iter().filter(|(i, _)| i == "FROM").map(|(_, a)| a).collect();
    assert!(froms.len() >= 2, "multi-stage build: {froms:?}");
    assert!(
        froms[0].starts_with("rust:") && froms[0].contains(" AS builder"),
        "builder on the official rust image: {}",
        froms[0]
    );

    // runtime: the last stage, minimal, pinned, not latest
    let runtime = froms.last().unwrap();
    let image = runtime.split_whitespace().next().unwrap();
    assert!(
        image.starts_with("gcr.io/distroless/static") || image == "scratch",
        "runtime image must be distroless/static or scratch: {image}"
    );
    assert!(
        image == "scratch" || (image.contains(':') && !image.ends_with(":latest")),
        "runtime image needs an explicit tag other than latest: {image}"
    );
    let last_from = ins.iter().rposition(|(i, _)| i == "FROM").unwrap();
    let runtime_ins = &ins[last_from..];
    assert!(
        !runtime_ins.iter().any(|(i, _)| i == "RUN"),
        "the runtime stage runs nothing (it has no shell)"
    );
    let user = runtime_ins
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, a)| a.as_str())
        .expect("runtime stage sets USER");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER must be a numeric non-root uid (runAsNonRoot needs it): {user}"
    );
    assert_eq!(uid, "65532", "USER matches the manifests' runAsUser");
    let entrypoint = runtime_ins
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, a)| a.as_str())
        .expect("ENTRYPOINT");
    assert!(
        entrypoint.starts_with('[') && entrypoint.contains("namespace-scheduler"),
        "exec-form ENTRYPOINT of the binary (no shell): {entrypoint}"
    );
    assert!(
        runtime_ins
            .iter()
            .any(|(i, a)| i == "COPY" && a.contains("--from=builder")),
        "runtime copies the binary from the builder"
    );

    // static release binary, dependencies cached in a layer before the sources
    let text = read("Dockerfile");
    assert!(text.contains("x86_64-unknown-linux-musl"), "static musl target");
    assert!(text.contains("rustup target add"), "adds the musl target");
    assert!(text.contains("musl-tools"), "musl-tools for C dependencies");
    let builds: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (i, a))| i == "RUN" && a.contains("cargo build --release"))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(builds.len(), 2, "a dependency build and an application build");
    let copy_src = ins
        .iter()
        .position(|(i, a)| i == "COPY" && a.starts_with("src "))
        .expect("COPY src");
    let copy_manifest = ins
        .iter()
        .position(|(i, a)| i == "COPY" && a.contains("Cargo.lock"))
        .expect("COPY Cargo.toml Cargo.lock");
    assert!(
        copy_manifest < builds[0] && builds[0] < copy_src && copy_src < builds[1],
        "dependency layer (manifests + build) must come before the sources"
    );
    for (_, a) in ins.iter().filter(|(i, a)| i == "RUN" && a.contains("cargo build")) {
        assert!(a.contains("--locked"), "builds use Cargo.lock: {a}");
    }

    // every workspace member's manifest reaches the dependency layer
    let cargo: toml_like::Members = toml_like::members(&read("Cargo.toml"));
    for m in cargo.0.iter().filter(|m| m.as_str() != ".") {
        assert!(
            text.contains(&format!("COPY {m}/Cargo.toml")),
            "Dockerfile must COPY workspace member {m}/Cargo.toml"
        );
    }
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "*"),
        ".dockerignore excludes by default"
    );
    assert!(!ignore.contains("!target"), "never send target/ to the daemon");
}

/// Just enough of Cargo.toml to list workspace members (no toml crate needed).
mod toml_like {
    pub struct Members(pub Vec<String>);

    pub fn members(text: &str) -> Members {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("members"))
            .unwrap_or("members = []");
        let list = line.split_once('=').unwrap().1;
        Members(
            list.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|s| s.trim().trim_matches('"').to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    }
}

// ---------------------------------------------------------------------------------------
// GitHub Actions
// ---------------------------------------------------------------------------------------

fn steps(job: &Value) -> Vec<&Value> {
    job["steps"].as_array().map(|s| s.iter().collect()).unwrap_or_default()
}

fn uses_of(wf: &Value) -> Vec<String> {
    wf["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|j| {
            steps(j)
                .into_iter()
                .filter_map(|s| s["uses"].as_str().map(str::to_string))
                .chain(j["uses"].as_str().map(str::to_string))
        })
        .collect()
}

fn all_runs(wf: &Value) -> String {
    wf["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(steps)
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_pinned(wf: &Value, file: &str) {
    for u in uses_of(wf) {
        if u.starts_with("./") {
            continue;
        }
        let (_, version) = u
            .split_once('@')
            .unwrap_or_else(|| panic!("{file}: {u} has no version"));
        assert!(
            version.starts_with('v') && version[1..].split('.').next().unwrap().parse::<u32>().is_ok(),
            "{file}: {u} must be pinned to a major version"
        );
    }
}

#[test]
fn ci_workflow() {
    let file = ".github/workflows/ci.yml";
    let wf = yaml(file);
    // serde-saphyr reads the key `on` as the string "on" (YAML 1.2)
    let on = &wf["on"];
    for trigger in ["push", "pull_request", "workflow_call"] {
        assert!(on.get(trigger).is_some(), "{file}: on.{trigger}");
    }
    let runs = all_runs(&wf);
    assert!(runs.contains("cargo fmt --all -- --check"), "{file}: fmt check");
    assert!(
        runs.contains("cargo clippy") && runs.contains("-D warnings"),
        "{file}: clippy -D warnings"
    );
    assert!(
        runs.contains("scripts/test.sh"),
        "{file}: tests through scripts/test.sh"
    );
    assert!(runs.contains("scripts/lint-artifacts.sh"), "{file}: artifact lint");
    let uses = uses_of(&wf);
    assert!(
        uses.iter().any(|u| u.starts_with("actions/setup-java@")),
        "{file}: Java for DynamoDB Local"
    );
    assert_pinned(&wf, file);
    assert_eq!(wf["permissions"]["contents"], "read", "{file}: read-only token");
}

#[test]
fn release_workflow() {
    let file = ".github/workflows/release.yml";
    let wf = yaml(file);
    assert_eq!(wf["on"]["push"]["branches"], json!(["main"]), "{file}: on push to main");
    assert_eq!(wf["permissions"]["id-token"], "write", "{file}: OIDC token");
    assert_eq!(
        wf["permissions"]["contents"], "write",
        "{file}: pushes the overlay commit"
    );
    let text = read(file);
    assert!(
        !text.contains("aws-access-key-id") && !text.contains("AWS_SECRET_ACCESS_KEY"),
        "{file}: no stored AWS keys"
    );
    let all_steps: Vec<&Value> = wf["jobs"].as_object().unwrap().values().flat_map(steps).collect();
    let creds = all_steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("aws-actions/configure-aws-credentials@"))
        })
        .expect("configure-aws-credentials step");
    assert!(
        creds["with"]["role-to-assume"].is_string(),
        "{file}: role-to-assume (OIDC)"
    );
    assert!(
        all_steps.iter().any(|s| s["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("aws-actions/amazon-ecr-login@"))),
        "{file}: ECR login"
    );
    let build = all_steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/build-push-action@"))
        })
        .expect("docker build-push step");
    assert_eq!(build["with"]["push"], true);
    assert!(
        build["with"]["tags"].as_str().unwrap().ends_with(":${{ github.sha }}"),
        "{file}: image tagged with the commit SHA"
    );
    let runs = all_runs(&wf);
    assert!(
        runs.contains("cd manifests/overlays/production") && runs.contains("kustomize edit set image"),
        "{file}: updates the production overlay's image"
    );
    assert!(
        runs.contains("[skip ci]"),
        "{file}: the overlay commit carries [skip ci]"
    );
    assert!(runs.contains("git push"), "{file}: pushes the overlay commit");
    // the image is built only after CI passed
    let image_job = wf["jobs"]
        .as_object()
        .unwrap()
        .values()
        .find(|j| {
            steps(j)
                .iter()
                .any(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("docker/")))
        })
        .unwrap();
    assert_eq!(image_job["needs"], "ci", "{file}: image job needs ci");
    assert_eq!(wf["jobs"]["ci"]["uses"], "./.github/workflows/ci.yml");
    assert_pinned(&wf, file);
}

/// Files the sources compile in (`include_str!`/`include_bytes!`) must reach the image build:
/// copied by the Dockerfile and not excluded by `.dockerignore`.
#[test]
fn dockerfile_copies_every_compiled_in_file() {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    let docker = read("Dockerfile");
    let ignore = read(".dockerignore");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for macro_name in ["include_str!(\"", "include_bytes!(\""] {
            for (i, _) in text.match_indices(macro_name) {
                let rest = &text[i + macro_name.len()..];
                let arg = &rest[..rest.find('"').unwrap()];
                // resolve relative to the including file, then make it repository-relative
                let mut parts: Vec<String> = f
                    .parent()
                    .unwrap()
                    .strip_prefix(&root)
                    .unwrap()
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                for seg in arg.split('/') {
                    match seg {
                        ".." => {
                            parts.pop();
                        }
                        "." | "" => {}
                        s => parts.push(s.to_string()),
                    }
                }
                let rel = parts.join("/");
                let covered =
                    |prefix_ok: &dyn Fn(&str) -> bool| (1..=parts.len()).any(|n| prefix_ok(&parts[..n].join("/")));
                assert!(
                    covered(&|p| docker.contains(&format!("COPY {p} "))),
                    "{} compiles in {rel}: the Dockerfile must COPY it",
                    f.display()
                );
                assert!(
                    covered(&|p| ignore
                        .lines()
                        .any(|l| l.trim() == format!("!{p}") || l.trim() == format!("!{p}/"))),
                    "{} compiles in {rel}: .dockerignore must let it through",
                    f.display()
                );
            }
        }
    }
}
