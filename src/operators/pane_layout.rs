//! `PaneLayout`: the window arithmetic of TUMBLE, HOP and CUMULATE, aligned to the epoch as
//! Flink's. Event time is cut into panes (slices) so that every window start and end is a pane
//! boundary; a window aggregate keeps one partial state per pane and combines a window's panes when
//! it fires, so a row costs one update however many windows hold it.
//!
//! - Sliding (TUMBLE, HOP): windows start at multiples of the slide and are `size` long; panes are
//!   `gcd(size, slide)` long.
//! - Cumulating (CUMULATE): each `max`-long window (starting at a multiple of `max`) is emitted
//!   after every `step`: `[S, S + step)`, `[S, S + 2 step)`, ..., `[S, S + max)`, all with window
//!   start S; panes are `step` long.
//!
//! Either way the windows holding one instant, or one pane, form an arithmetic progression
//! (`WindowRun`).

use crate::error::{Error, Result};
use crate::graph::WindowKind;

#[derive(Debug, Clone, Copy)]
pub struct PaneLayout {
    /// Length of a pane; every window is a whole number of panes.
    pub pane: i64,
    shape: Shape,
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Sliding { size: i64, slide: i64 },
    Cumulating { step: i64, max: i64 },
}

/// `count` windows; the i-th is `[start + i * start_step, end + i * end_step)`.
#[derive(Debug, Clone, Copy)]
struct WindowRun {
    start: i128,
    end: i128,
    start_step: i128,
    end_step: i128,
    count: usize,
}

impl WindowRun {
    fn windows(self) -> impl Iterator<Item = (i64, i64)> {
        (0..self.count).map(move |i| {
            let i = i as i128;
            (saturate(self.start + i * self.start_step), saturate(self.end + i * self.end_step))
        })
    }

    fn last_end(self) -> i64 {
        saturate(self.end + (self.count as i128 - 1) * self.end_step)
    }
}

impl PaneLayout {
    pub fn new(window: WindowKind) -> Result<Self> {
        let shape = match window {
            WindowKind::Tumble { size } => Shape::Sliding { size, slide: size },
            WindowKind::Hop { slide, size } => Shape::Sliding { size, slide },
            WindowKind::Cumulate { step, max_size } => Shape::Cumulating { step, max: max_size },
            // One nanosecond windows: a row at `end - 1` is in the window ending at `end`.
            WindowKind::Attached => Shape::Sliding { size: 1, slide: 1 },
            WindowKind::Session { .. } => {
                return Err(Error::internal("session windows have no panes"));
            }
        };
        let pane = match shape {
            Shape::Sliding { size, slide } => {
                if size <= 0 || slide <= 0 {
                    return Err(Error::invalid("window size and slide must be positive"));
                }
                if slide > size {
                    return Err(Error::invalid("HOP slide must not be larger than its size"));
                }
                gcd(size, slide)
            }
            Shape::Cumulating { step, max } => {
                if step <= 0 || max <= 0 {
                    return Err(Error::invalid("CUMULATE step and max size must be positive"));
                }
                if max % step != 0 {
                    return Err(Error::invalid(
                        "CUMULATE max size must be a whole multiple of its step (CUMULATE(source, time, step, max_size))",
                    ));
                }
                step
            }
        };
        Ok(PaneLayout { pane, shape })
    }

    /// End of the pane holding event time `t`.
    pub fn pane_end(&self, t: i64) -> i64 {
        saturate(floor_to(i128::from(t), self.pane) + i128::from(self.pane))
    }

    /// End of the last window that contains event time `t`; once the watermark reaches it the row is late.
    pub fn last_window_end(&self, t: i64) -> i64 {
        self.windows_holding(t).last_end()
    }

    /// The windows `(start, end)` that contain event time `t`, by ascending end.
    pub fn windows_of(&self, t: i64) -> impl Iterator<Item = (i64, i64)> + use<> {
        self.windows_holding(t).windows()
    }

    /// Ends of the windows that contain the pane ending at `pane_end`, ascending (a pane is in a
    /// window exactly when the pane's first instant is).
    pub fn windows_of_pane(&self, pane_end: i64) -> impl Iterator<Item = i64> + use<> {
        self.windows_holding(pane_end.saturating_sub(self.pane))
            .windows()
            .map(|(_, end)| end)
    }

    /// The end of the last window that needs this pane.
    pub fn pane_retired_at(&self, pane_end: i64) -> i64 {
        self.last_window_end(pane_end.saturating_sub(self.pane))
    }

    /// The start of the window ending at `window_end`.
    pub fn window_start(&self, window_end: i64) -> i64 {
        let end = i128::from(window_end);
        saturate(match self.shape {
            Shape::Sliding { size, .. } => end - i128::from(size),
            Shape::Cumulating { step, max } => floor_to(end - i128::from(step), max),
        })
    }

    /// Pane ends covered by the window ending at `window_end`: `[start + pane, window_end]`.
    pub fn panes_of_window(&self, window_end: i64) -> (i64, i64) {
        (
            saturate(i128::from(self.window_start(window_end)) + i128::from(self.pane)),
            window_end,
        )
    }

    fn windows_holding(&self, t: i64) -> WindowRun {
        let t = i128::from(t);
        match self.shape {
            // Those starting at a multiple of the slide within `(t - size, t]`.
            Shape::Sliding { size, slide } => {
                let (size, slide) = (i128::from(size), i128::from(slide));
                let last = floor_to(t, slide as i64);
                let first = last - (size - 1) / slide * slide;
                // Starts before `t - size + 1` end at or before `t`.
                let first = if first + size > t { first } else { first + slide };
                WindowRun {
                    start: first,
                    end: first + size,
                    start_step: slide,
                    end_step: slide,
                    count: ((last - first) / slide + 1) as usize,
                }
            }
            // The max window holding `t`, from the step that holds `t` to its end.
            Shape::Cumulating { step, max } => {
                let start = floor_to(t, max);
                let first_end = floor_to(t, step) + i128::from(step);
                WindowRun {
                    start,
                    end: first_end,
                    start_step: 0,
                    end_step: i128::from(step),
                    count: ((start + i128::from(max) - first_end) / i128::from(step) + 1) as usize,
                }
            }
        }
    }
}

/// The largest multiple of `unit` at or below `t`.
fn floor_to(t: i128, unit: i64) -> i128 {
    t.div_euclid(i128::from(unit)) * i128::from(unit)
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn saturate(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_panes_and_windows() {
        let hop = PaneLayout::new(WindowKind::Hop { slide: 5, size: 10 }).unwrap();
        assert_eq!(hop.pane, 5);
        assert_eq!(hop.pane_end(7), 10);
        assert_eq!(hop.pane_end(10), 15);
        assert_eq!(hop.last_window_end(7), 15);
        assert_eq!(hop.windows_of_pane(10).collect::<Vec<_>>(), vec![10, 15]);
        assert_eq!(hop.pane_retired_at(10), 15);
        assert_eq!(hop.panes_of_window(15), (10, 15));
        assert_eq!(hop.window_start(15), 5);
        assert_eq!(hop.windows_of(7).collect::<Vec<_>>(), vec![(0, 10), (5, 15)]);
        assert_eq!(hop.windows_of(10).collect::<Vec<_>>(), vec![(5, 15), (10, 20)]);
        let odd = PaneLayout::new(WindowKind::Hop { slide: 4, size: 10 }).unwrap();
        assert_eq!(odd.pane, 2);
        // Windows start at multiples of 4: pane [6, 8) lies in [0, 10) and [4, 14) (as Flink's
        // sliding windows assign), the last of which retires it.
        assert_eq!(odd.windows_of_pane(8).collect::<Vec<_>>(), vec![10, 14]);
        assert_eq!(odd.pane_retired_at(8), 14);
        assert_eq!(odd.last_window_end(7), 14);
        assert_eq!(odd.windows_of(7).collect::<Vec<_>>(), vec![(0, 10), (4, 14)]);
        assert_eq!(odd.windows_of(9).collect::<Vec<_>>(), vec![(0, 10), (4, 14), (8, 18)]);
        assert_eq!(odd.windows_of(-1).collect::<Vec<_>>(), vec![(-8, 2), (-4, 6)]);
        assert_eq!(odd.panes_of_window(14), (6, 14));
        let tumble = PaneLayout::new(WindowKind::Tumble { size: 10 }).unwrap();
        assert_eq!(tumble.pane_end(-1), 0);
        assert_eq!(tumble.windows_of(-1).collect::<Vec<_>>(), vec![(-10, 0)]);
        assert_eq!(tumble.windows_of_pane(0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(tumble.last_window_end(i64::MAX), i64::MAX);
    }

    #[test]
    fn cumulate_panes_and_windows() {
        // Flink's example: step 2 min, max 10 min over [0, 10): windows [0,2) [0,4) ... [0,10).
        let cumulate = PaneLayout::new(WindowKind::Cumulate { step: 2, max_size: 10 }).unwrap();
        assert_eq!(cumulate.pane, 2);
        assert_eq!(cumulate.windows_of(3).collect::<Vec<_>>(), vec![(0, 4), (0, 6), (0, 8), (0, 10)]);
        assert_eq!(cumulate.windows_of(9).collect::<Vec<_>>(), vec![(0, 10)]);
        assert_eq!(
            cumulate.windows_of(10).collect::<Vec<_>>(),
            vec![(10, 12), (10, 14), (10, 16), (10, 18), (10, 20)]
        );
        assert_eq!(cumulate.windows_of(-1).collect::<Vec<_>>(), vec![(-10, 0)]);
        assert_eq!(cumulate.last_window_end(3), 10);
        assert_eq!(cumulate.windows_of_pane(4).collect::<Vec<_>>(), vec![4, 6, 8, 10]);
        assert_eq!(cumulate.pane_retired_at(4), 10);
        assert_eq!(cumulate.window_start(10), 0);
        assert_eq!(cumulate.window_start(2), 0);
        assert_eq!(cumulate.window_start(12), 10);
        assert_eq!(cumulate.panes_of_window(8), (2, 8));
        assert_eq!(cumulate.panes_of_window(12), (12, 12));
        assert!(PaneLayout::new(WindowKind::Cumulate { step: 3, max_size: 10 }).is_err());
    }
}
