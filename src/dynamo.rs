//! DynamoDB client construction (real AWS or `DYNAMODB_ENDPOINT_URL`) and local table creation
//! from `infrastructure/dynamodb-tables.yaml`.
//! OWNER: DynamoDB engineer.
