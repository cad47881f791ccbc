//! Scaling engine (SPEC §4): discover → plan (plain data) → apply with rollback.
//! OWNER: scaling engineer.
