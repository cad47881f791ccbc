use super::Context;
use crate::cli::PopulateArgs;
use crate::error::{Exit, Result};

pub async fn execute(_ctx: &Context, _args: PopulateArgs) -> Result<Exit> {
    super::not_yet("populate")
}
