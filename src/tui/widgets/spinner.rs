//! A braille spinner driven by the clock, so every probing row turns in step and no state is kept.

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// One frame per 100 ms of `elapsed_ms`.
pub fn spinner_frame(elapsed_ms: u64) -> &'static str {
    let i = (elapsed_ms / 100) as usize % FRAMES.len();
    FRAMES.get(i).copied().unwrap_or("⠋")
}
