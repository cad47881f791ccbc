use super::Context;
use crate::cli::RunArgs;
use crate::error::{Exit, Result};

pub async fn execute(_ctx: &Context, _args: RunArgs) -> Result<Exit> {
    super::not_yet("run")
}
