//! Weekly active-hours report from the audit table (SPEC §1 `report`).
//! OWNER: DynamoDB engineer.
