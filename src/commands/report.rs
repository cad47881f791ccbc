use super::Context;
use crate::cli::ReportArgs;
use crate::error::{Exit, Result};

pub async fn execute(_ctx: &Context, _args: ReportArgs) -> Result<Exit> {
    super::not_yet("report")
}
