use super::Context;
use crate::cli::CalendarArgs;
use crate::error::{Exit, Result};

pub fn execute(_ctx: &Context, _args: CalendarArgs) -> Result<Exit> {
    super::not_yet("calendar")
}
