//! Hidden `local-tables`: creates the audit, permissions and windows tables on a local DynamoDB
//! with the schema of `infrastructure/dynamodb-tables.yaml`, for the demo and for manual testing.

use super::Context;
use crate::error::{Error, Exit, Result};

pub async fn execute(ctx: &Context) -> Result<Exit> {
    let Some(endpoint) = ctx.config.dynamodb_endpoint.as_deref() else {
        return Err(Error::Usage(
            "local-tables only works with DYNAMODB_ENDPOINT_URL (a local DynamoDB); in AWS deploy infrastructure/dynamodb-tables.yaml".into(),
        ));
    };
    let client = crate::dynamo::client(&ctx.config).await;
    let tables = crate::dynamo::TableNames::of(&ctx.config);
    crate::dynamo::ensure_local_tables(&client, tables).await?;
    println!(
        "tables {}, {} and {} ready on {endpoint}",
        tables.audit, tables.permissions, tables.windows
    );
    Ok(Exit::Ok)
}
