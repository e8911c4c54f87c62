//! WASI has no terminal to draw on (and no threads to tick a spinner): this
//! stands in for the few parts of `indicatif` the CLI uses, and draws
//! nothing. `wants_progress` is always false there, so none of it runs.

use std::borrow::Cow;
use std::time::Duration;

pub struct ProgressBar;

impl ProgressBar {
    pub fn new_spinner() -> ProgressBar {
        ProgressBar
    }
    pub fn with_message(self, _: impl Into<Cow<'static, str>>) -> ProgressBar {
        self
    }
    pub fn enable_steady_tick(&self, _: Duration) {}
    pub fn disable_steady_tick(&self) {}
    pub fn set_message(&self, _: impl Into<Cow<'static, str>>) {}
    pub fn set_length(&self, _: u64) {}
    pub fn set_style(&self, _: ProgressStyle) {}
    pub fn set_position(&self, _: u64) {}
    pub fn reset(&self) {}
    pub fn finish_and_clear(&self) {}
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

pub struct ProgressStyle;

impl ProgressStyle {
    pub fn with_template(_: &str) -> Result<ProgressStyle, std::convert::Infallible> {
        Ok(ProgressStyle)
    }
    pub fn progress_chars(self, _: &str) -> ProgressStyle {
        self
    }
}
