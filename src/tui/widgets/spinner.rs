//! A braille spinner: one frame per tick, shared by every probing row so they turn in step.

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The frame for the `tick`-th animation tick.
pub fn spinner_frame(tick: u64) -> &'static str {
    let i = (tick % FRAMES.len() as u64) as usize;
    FRAMES.get(i).copied().unwrap_or("⠋")
}
