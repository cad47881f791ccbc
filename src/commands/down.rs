use super::Context;
use crate::cli::DownArgs;
use crate::error::{Exit, Result};

pub async fn execute(_ctx: &Context, _args: DownArgs) -> Result<Exit> {
    super::not_yet("down")
}
