use super::Context;
use crate::cli::CheckArgs;
use crate::error::{Exit, Result};

pub fn execute(_ctx: &Context, _args: CheckArgs) -> Result<Exit> {
    super::not_yet("check")
}
