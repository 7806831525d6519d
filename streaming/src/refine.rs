//! Exact at rest: which parts of a viewer's screen to send again, losslessly, once they stop
//! changing.
//!
//! Video is lossy (4:2:0 chroma, quantised text edges), so a viewer also keeps a transparent
//! *refinement layer* above the video: lossless patches of the screen as it is. A change clears the
//! layer where it happened (the lossy video shows through while the region moves) and marks those
//! tiles unrefined; once a tile has not changed for [`REST_MS`], its exact pixels are sent again.
//! Content that keeps changing (a spinner, a progress bar) holds back only its own tiles.
//!
//! Pure bookkeeping on a grid of [`TILE`]-pixel tiles; the driver passes damage in and asks which
//! settled regions to send. No clock, no I/O.
//!
//! ```
//! use airlock_streaming::refine::Tiles;
//! use airlock_streaming::Rect;
//!
//! let mut unrefined = Tiles::new(1280, 800);
//! unrefined.mark(Rect { x: 70, y: 10, width: 8, height: 14 }); // a typed character
//! let busy = Tiles::new(1280, 800); // nothing changed lately
//! assert_eq!(unrefined.take_settled(&busy), vec![Rect { x: 64, y: 0, width: 64, height: 64 }]);
//! assert!(unrefined.is_empty());
//! ```

use crate::Rect;

/// Tile edge in pixels: the unit in which rest is tracked and patches are cut.
pub const TILE: u16 = 64;

/// How long (ms) a tile must stay unchanged before its exact pixels are sent.
pub const REST_MS: u64 = 100;

/// A set of tiles of a `width` x `height` screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiles {
    width: u16,
    height: u16,
    cols: usize,
    rows: usize,
    set: Vec<bool>,
}

impl Tiles {
    /// No tile of a `width` x `height` screen.
    pub fn new(width: u16, height: u16) -> Tiles {
        let cols = usize::from(width.div_ceil(TILE));
        let rows = usize::from(height.div_ceil(TILE));
        Tiles {
            width,
            height,
            cols,
            rows,
            set: vec![false; cols * rows],
        }
    }

    /// Every tile.
    pub fn all(width: u16, height: u16) -> Tiles {
        let mut t = Tiles::new(width, height);
        t.set.fill(true);
        t
    }

    /// Whether no tile is in the set.
    pub fn is_empty(&self) -> bool {
        !self.set.contains(&true)
    }

    /// Adds the tiles `rect` touches (clipped to the screen; an empty rectangle adds none).
    pub fn mark(&mut self, rect: Rect) {
        if rect.width == 0 || rect.height == 0 || rect.x >= self.width || rect.y >= self.height {
            return;
        }
        let x1 = (u32::from(rect.x) + u32::from(rect.width)).min(u32::from(self.width));
        let y1 = (u32::from(rect.y) + u32::from(rect.height)).min(u32::from(self.height));
        let tile = u32::from(TILE);
        let (c0, c1) = ((u32::from(rect.x) / tile) as usize, x1.div_ceil(tile) as usize);
        let (r0, r1) = ((u32::from(rect.y) / tile) as usize, y1.div_ceil(tile) as usize);
        for row in r0..r1.min(self.rows) {
            for col in c0..c1.min(self.cols) {
                self.set[row * self.cols + col] = true;
            }
        }
    }

    /// Adds every tile.
    pub fn mark_all(&mut self) {
        self.set.fill(true);
    }

    /// Removes every tile.
    pub fn clear(&mut self) {
        self.set.fill(false);
    }

    /// Takes the tiles of this set that are not `busy` out of it and returns them as few
    /// rectangles (runs along rows, merged with identical runs of the rows below), clipped to the
    /// screen, top to bottom.
    pub fn take_settled(&mut self, busy: &Tiles) -> Vec<Rect> {
        let mut settled = vec![false; self.set.len()];
        for (i, s) in settled.iter_mut().enumerate() {
            let is_busy = busy.set.get(i).copied().unwrap_or(true);
            if self.set[i] && !is_busy {
                *s = true;
                self.set[i] = false;
            }
        }
        // Runs per row: (col0, col1) half-open.
        let mut open: Vec<(usize, usize, usize, usize)> = Vec::new(); // (c0, c1, row0, rows)
        let mut done = Vec::new();
        for row in 0..self.rows {
            let mut runs = Vec::new();
            let mut col = 0;
            while col < self.cols {
                if settled[row * self.cols + col] {
                    let start = col;
                    while col < self.cols && settled[row * self.cols + col] {
                        col += 1;
                    }
                    runs.push((start, col));
                } else {
                    col += 1;
                }
            }
            let mut next_open = Vec::new();
            for run in &runs {
                match open.iter().position(|o| (o.0, o.1) == *run) {
                    Some(i) => {
                        let mut o = open.swap_remove(i);
                        o.3 += 1;
                        next_open.push(o);
                    }
                    None => next_open.push((run.0, run.1, row, 1)),
                }
            }
            done.append(&mut open);
            open = next_open;
        }
        done.append(&mut open);
        done.sort_by_key(|&(c0, _, r0, _)| (r0, c0));
        done.into_iter()
            .map(|(c0, c1, r0, rows)| self.rect_of(c0, c1, r0, rows))
            .collect()
    }

    fn rect_of(&self, c0: usize, c1: usize, r0: usize, rows: usize) -> Rect {
        let tile = usize::from(TILE);
        let x = c0 * tile;
        let y = r0 * tile;
        let x1 = (c1 * tile).min(usize::from(self.width));
        let y1 = ((r0 + rows) * tile).min(usize::from(self.height));
        Rect {
            x: x as u16,
            y: y as u16,
            width: (x1 - x) as u16,
            height: (y1 - y) as u16,
        }
    }
}

/// When each recent frame appeared, to find the frame that was current [`REST_MS`] ago. Bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeLog {
    /// (frame, when it appeared, ms), oldest first.
    entries: std::collections::VecDeque<(u64, u64)>,
}

/// Frames remembered by a [`ChangeLog`].
const CHANGE_LOG_LEN: usize = 256;

impl ChangeLog {
    /// Notes that `frame` appeared at `now_ms`.
    pub fn changed(&mut self, frame: u64, now_ms: u64) {
        if self.entries.back().is_some_and(|&(f, _)| f >= frame) {
            return;
        }
        self.entries.push_back((frame, now_ms));
        // Keep one entry at least REST_MS old (it names the frame current then), and the newer ones.
        while self.entries.len() > CHANGE_LOG_LEN
            || self
                .entries
                .get(1)
                .is_some_and(|&(_, t)| now_ms.saturating_sub(t) >= REST_MS)
        {
            self.entries.pop_front();
        }
    }

    /// When the newest frame appeared.
    pub fn last_change_ms(&self) -> Option<u64> {
        self.entries.back().map(|&(_, t)| t)
    }

    /// The newest frame that appeared at least [`REST_MS`] before `now_ms`: everything changed
    /// after it is still moving. `None` when no remembered frame is that old.
    pub fn rested_frame(&self, now_ms: u64) -> Option<u64> {
        self.entries
            .iter()
            .rev()
            .find(|&&(_, t)| now_ms.saturating_sub(t) >= REST_MS)
            .map(|&(f, _)| f)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u16, y: u16, width: u16, height: u16) -> Rect {
        Rect { x, y, width, height }
    }

    #[test]
    fn a_change_marks_every_tile_it_touches() {
        let mut t = Tiles::new(1280, 800);
        t.mark(rect(60, 60, 10, 10));
        let all = t.take_settled(&Tiles::new(1280, 800));
        assert_eq!(all, vec![rect(0, 0, 128, 128)]);
    }

    #[test]
    fn busy_tiles_stay_unrefined_and_the_rest_is_taken() {
        let mut t = Tiles::all(256, 128);
        let mut busy = Tiles::new(256, 128);
        busy.mark(rect(200, 10, 4, 4)); // a spinner in the top right tile
        let settled = t.take_settled(&busy);
        assert_eq!(settled, vec![rect(0, 0, 192, 64), rect(0, 64, 256, 64)]);
        assert_eq!(t.take_settled(&Tiles::new(256, 128)), vec![rect(192, 0, 64, 64)]);
        assert!(t.is_empty());
    }

    #[test]
    fn identical_runs_of_rows_merge_into_one_rectangle() {
        let mut t = Tiles::new(1280, 800);
        t.mark(rect(0, 0, 1280, 800));
        assert_eq!(
            t.take_settled(&Tiles::new(1280, 800)),
            vec![rect(0, 0, 1280, 800)]
        );
    }

    #[test]
    fn rectangles_are_clipped_to_a_screen_that_is_not_a_multiple_of_the_tile() {
        let mut t = Tiles::new(100, 70);
        t.mark(rect(90, 65, 50, 50));
        assert_eq!(t.take_settled(&Tiles::new(100, 70)), vec![rect(64, 64, 36, 6)]);
        t.mark(rect(200, 200, 5, 5)); // off screen: nothing
        t.mark(rect(10, 10, 0, 5)); // empty: nothing
        assert!(t.is_empty());
    }

    #[test]
    fn the_rested_frame_is_the_newest_one_at_least_the_rest_time_old() {
        let mut log = ChangeLog::default();
        assert_eq!(log.rested_frame(1_000), None);
        log.changed(5, 1_000);
        log.changed(6, 1_050);
        log.changed(7, 1_120);
        assert_eq!(log.rested_frame(1_110), Some(5));
        assert_eq!(log.rested_frame(1_150), Some(6));
        assert_eq!(log.rested_frame(1_220), Some(7));
        assert_eq!(log.last_change_ms(), Some(1_120));
    }

    #[test]
    fn the_change_log_stays_bounded_under_a_flood_of_frames() {
        let mut log = ChangeLog::default();
        for f in 1..10_000 {
            log.changed(f, f); // a frame every millisecond
        }
        assert!(log.entries.len() <= CHANGE_LOG_LEN);
        assert_eq!(log.rested_frame(9_999), Some(9_899));
    }
}
