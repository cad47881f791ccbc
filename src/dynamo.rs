//! DynamoDB client construction (real AWS or `DYNAMODB_ENDPOINT_URL`) and local table creation
//! from `infrastructure/dynamodb-tables.yaml`.
//!
//! The CloudFormation template is embedded with `include_str!` and is the only description of the
//! three table schemas in the code base: [`ensure_local_tables`] derives its `CreateTable` calls
//! from it, so a local table cannot drift from the production one.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use crate::config::Config;
use crate::error::{Error, Result};

pub(crate) mod item;

/// The CloudFormation template of the tables, as deployed.
pub(crate) const TABLES_TEMPLATE: &str = include_str!("../infrastructure/dynamodb-tables.yaml");
/// Logical ids of the three tables in [`TABLES_TEMPLATE`].
pub const AUDIT_RESOURCE: &str = "AuditTable";
pub const PERMISSIONS_RESOURCE: &str = "PermissionsTable";
pub const WINDOWS_RESOURCE: &str = "WindowsTable";

/// The names of the three tables (`DYNAMODB_TABLE_NAME`, `PERMISSIONS_TABLE_NAME`,
/// `WINDOWS_TABLE_NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableNames<'a> {
    pub audit: &'a str,
    pub permissions: &'a str,
    pub windows: &'a str,
}

impl<'a> TableNames<'a> {
    pub fn of(config: &'a Config) -> Self {
        TableNames {
            audit: &config.audit_table,
            permissions: &config.permissions_table,
            windows: &config.windows_table,
        }
    }
}

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for the configured region, or for `DYNAMODB_ENDPOINT_URL` when set. With an endpoint
/// override and no `AWS_ACCESS_KEY_ID` in the environment, static dummy credentials are used
/// (DynamoDB Local accepts any), so a local demo never waits on the instance-metadata service.
pub async fn client(config: &Config) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(config.aws_region.clone()))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(endpoint) = &config.dynamodb_endpoint {
        loader = loader.endpoint_url(endpoint);
        let has_keys = std::env::var("AWS_ACCESS_KEY_ID").is_ok_and(|v| !v.is_empty());
        if !has_keys {
            loader = loader.credentials_provider(Credentials::new(
                "local",
                "local",
                None,
                None,
                "namespace-scheduler-local-endpoint",
            ));
        }
    }
    Client::new(&loader.load().await)
}

/// The parts of an `AWS::DynamoDB::Table` that `CreateTable` needs, read from the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// (attribute name, S|N|B), in template order.
    pub attributes: Vec<(String, String)>,
    /// (attribute name, HASH|RANGE).
    pub key_schema: Vec<(String, String)>,
    pub global_indexes: Vec<IndexSchema>,
    pub stream_view_type: Option<String>,
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: String,
    pub key_schema: Vec<(String, String)>,
    pub projection_type: String,
    pub non_key_attributes: Vec<String>,
}

/// Reads the schema of one table resource (`AuditTable`, `PermissionsTable`, `WindowsTable`)
/// from the template.
pub fn table_schema(resource: &str) -> Result<TableSchema> {
    let bad = |what: &str| Error::dynamo(format!("infrastructure/dynamodb-tables.yaml: {resource}: {what}"));
    let doc: Value = crate::yaml::from_str(TABLES_TEMPLATE).map_err(|e| bad(&format!("not valid YAML: {e}")))?;
    let props = doc
        .get("Resources")
        .and_then(|r| r.get(resource))
        .and_then(|r| r.get("Properties"))
        .ok_or_else(|| bad("no such resource with Properties"))?;
    let string = |v: &Value, field: &str| -> Result<String> {
        v.get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("missing string {field}")))
    };
    let list =
        |v: &Value, field: &str| -> Vec<Value> { v.get(field).and_then(Value::as_array).cloned().unwrap_or_default() };
    let keys = |v: &Value| -> Result<Vec<(String, String)>> {
        let items = list(v, "KeySchema");
        if items.is_empty() {
            return Err(bad("empty KeySchema"));
        }
        items
            .iter()
            .map(|k| Ok((string(k, "AttributeName")?, string(k, "KeyType")?)))
            .collect()
    };
    let attributes = list(props, "AttributeDefinitions")
        .iter()
        .map(|a| Ok((string(a, "AttributeName")?, string(a, "AttributeType")?)))
        .collect::<Result<Vec<_>>>()?;
    let global_indexes = list(props, "GlobalSecondaryIndexes")
        .iter()
        .map(|g| {
            let projection = g.get("Projection").ok_or_else(|| bad("GSI without Projection"))?;
            Ok(IndexSchema {
                name: string(g, "IndexName")?,
                key_schema: keys(g)?,
                projection_type: string(projection, "ProjectionType")?,
                non_key_attributes: list(projection, "NonKeyAttributes")
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TableSchema {
        attributes,
        key_schema: keys(props)?,
        global_indexes,
        stream_view_type: props
            .get("StreamSpecification")
            .and_then(|s| s.get("StreamViewType"))
            .and_then(Value::as_str)
            .map(str::to_string),
        ttl_attribute: props
            .get("TimeToLiveSpecification")
            .and_then(|s| s.get("AttributeName"))
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// Creates the audit, permissions and windows tables if absent, with exactly the key schema,
/// attribute definitions, GSIs, stream and TTL attribute of the template. For the demo and tests
/// only (production tables come from CloudFormation). An existing table is left as it is.
pub async fn ensure_local_tables(client: &Client, tables: TableNames<'_>) -> Result<()> {
    for (name, resource) in [
        (tables.audit, AUDIT_RESOURCE),
        (tables.permissions, PERMISSIONS_RESOURCE),
        (tables.windows, WINDOWS_RESOURCE),
    ] {
        let schema = table_schema(resource)?;
        create_table(client, name, &schema).await?;
    }
    Ok(())
}

async fn create_table(client: &Client, name: &str, schema: &TableSchema) -> Result<()> {
    let key = |(attr, kind): &(String, String)| {
        KeySchemaElement::builder()
            .attribute_name(attr)
            .key_type(KeyType::from(kind.as_str()))
            .build()
            .map_err(Error::dynamo_source)
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(schema.key_schema.iter().map(key).collect::<Result<_>>()?));
    for (attr, kind) in &schema.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::from(kind.as_str()))
                .build()
                .map_err(Error::dynamo_source)?,
        );
    }
    for index in &schema.global_indexes {
        let mut projection =
            Projection::builder().projection_type(ProjectionType::from(index.projection_type.as_str()));
        for attr in &index.non_key_attributes {
            projection = projection.non_key_attributes(attr);
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.name)
                .set_key_schema(Some(index.key_schema.iter().map(key).collect::<Result<_>>()?))
                .projection(projection.build())
                .build()
                .map_err(Error::dynamo_source)?,
        );
    }
    if let Some(view) = &schema.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(Error::dynamo_source)?,
        );
    }
    match request.send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(sdk_error(&format!("CreateTable {name}"), e)),
    }
    if let Some(attr) = &schema.ttl_attribute {
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(attr)
            .enabled(true)
            .build()
            .map_err(Error::dynamo_source)?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("UpdateTimeToLive {name}"), e))?;
    }
    Ok(())
}

/// A one-line description of an SDK error: the operation, the service's error code and message,
/// or what went wrong on the way (timeout, connection).
pub(crate) fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    Error::dynamo_from(format!("{operation}: {}", describe(&err)), err)
}

pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match (e.code(), e.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                _ => e.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "timed out".to_string(),
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_io() {
                "I/O error"
            } else if d.is_timeout() {
                "timed out"
            } else {
                "request not sent"
            };
            let mut msg = format!("{kind}: {err}");
            let mut source = std::error::Error::source(err);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            msg
        }
        other => other.to_string(),
    }
}

/// Whether trying the same request again may succeed: throttling, 5xx, timeouts, connection
/// failures. Validation errors, missing tables and access denials are not retryable.
pub(crate) fn is_retryable<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            matches!(
                code,
                "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "LimitExceededException"
            ) || code.starts_with("Throttl")
        }
        _ => false,
    }
}

/// The DynamoDB type of a value, for messages about an item that does not read (never the value
/// itself: it may be huge).
pub(crate) fn type_name(v: &aws_sdk_dynamodb::types::AttributeValue) -> &'static str {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    match v {
        V::S(_) => "a string",
        V::N(_) => "a number",
        V::Bool(_) => "a boolean",
        V::Null(_) => "null",
        V::L(_) => "a list",
        V::M(_) => "a map",
        V::Ss(_) | V::Ns(_) | V::Bs(_) => "a set",
        V::B(_) => "binary",
        _ => "an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_schema_is_the_one_of_spec_section_6() {
        let s = table_schema(AUDIT_RESOURCE).unwrap();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            s.key_schema,
            vec![pair("namespace_name", "HASH"), pair("timestamp_start", "RANGE")]
        );
        let names: Vec<_> = s.global_indexes.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cost-center-timestamp-index",
                "operation-type-timestamp-index",
                "cluster-timestamp-index",
                "requested-by-timestamp-index"
            ]
        );
        for g in &s.global_indexes {
            assert_eq!(g.projection_type, "ALL");
            assert_eq!(g.key_schema[1], pair("timestamp_start", "RANGE"));
        }
        assert!(s.attributes.contains(&pair("timestamp_start", "N")));
        assert_eq!(s.ttl_attribute.as_deref(), Some(crate::audit::TTL_ATTRIBUTE));
    }

    #[test]
    fn permissions_schema_is_the_one_of_spec_section_5() {
        let s = table_schema(PERMISSIONS_RESOURCE).unwrap();
        assert_eq!(s.key_schema, vec![("cost_center".to_string(), "HASH".to_string())]);
        assert_eq!(s.attributes, vec![("cost_center".to_string(), "S".to_string())]);
        assert!(s.global_indexes.is_empty());
    }

    #[test]
    fn windows_schema_is_the_one_of_the_fleet_windows() {
        let s = table_schema(WINDOWS_RESOURCE).unwrap();
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            s.key_schema,
            vec![
                pair(crate::fleet::record::PARTITION_KEY, "HASH"),
                pair(crate::fleet::record::SORT_KEY, "RANGE")
            ]
        );
        assert_eq!(s.global_indexes.len(), 1);
        let index = &s.global_indexes[0];
        assert_eq!(index.name, crate::fleet::record::CLUSTER_INDEX);
        assert_eq!(
            index.key_schema,
            vec![pair("cluster", "HASH"), pair("namespace", "RANGE")]
        );
        assert_eq!(index.projection_type, "ALL");
        assert_eq!(s.ttl_attribute.as_deref(), Some(crate::fleet::record::TTL_ATTRIBUTE));
        assert_eq!(s.stream_view_type, None);
    }
}
