use super::Context;
use crate::cli::UpArgs;
use crate::error::{Exit, Result};

pub async fn execute(_ctx: &Context, _args: UpArgs) -> Result<Exit> {
    super::not_yet("up")
}
