//! Pieces of one job handed out one at a time to whichever thread asks: threads started for the
//! job and a thread that joins in when its own work is done take from the same list, so no
//! thread waits while a piece is left, and none is run twice.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Result;

pub struct SharedWork<P, R> {
    pieces: Vec<(P, OnceLock<R>)>,
    next: AtomicUsize,
}

impl<P, R> SharedWork<P, R> {
    pub fn new(pieces: impl IntoIterator<Item = P>) -> Self {
        SharedWork {
            pieces: pieces.into_iter().map(|p| (p, OnceLock::new())).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Runs `run` on pieces nobody has taken yet until none is left; stops at its first error.
    pub fn help(&self, run: impl Fn(&P) -> Result<R>) -> Result<()> {
        while let Some((piece, result)) = self.pieces.get(self.next.fetch_add(1, Ordering::Relaxed))
        {
            let value = run(piece)?;
            // Each index is handed out once, so the cell is still empty.
            let _ = result.set(value);
        }
        Ok(())
    }

    /// Every piece's result in the pieces' order; `None` when a piece was not run (a helper
    /// failed on it).
    pub fn results(self) -> Option<Vec<R>> {
        self.pieces
            .into_iter()
            .map(|(_, r)| r.into_inner())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn threads_joining_at_different_times_run_every_piece_once_in_order() {
        let runs = AtomicUsize::new(0);
        let work = SharedWork::new(0..100u32);
        let run = |&p: &u32| {
            runs.fetch_add(1, Ordering::Relaxed);
            Ok(p * 2)
        };
        std::thread::scope(|s| {
            let early: Vec<_> = (0..3).map(|_| s.spawn(|| work.help(run))).collect();
            std::thread::sleep(std::time::Duration::from_millis(1));
            work.help(run).unwrap();
            for h in early {
                h.join().unwrap().unwrap();
            }
        });
        assert_eq!(runs.load(Ordering::Relaxed), 100);
        assert_eq!(
            work.results().unwrap(),
            (0..100).map(|p| p * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_late_thread_runs_the_pieces_left_and_a_failed_piece_leaves_no_result() {
        let work = SharedWork::new([1, 2, 3]);
        // No helper took anything: the late thread alone runs all three.
        work.help(|&p| Ok(p)).unwrap();
        assert_eq!(work.results(), Some(vec![1, 2, 3]));

        let work = SharedWork::new([1, 2, 3]);
        let err = work
            .help(|&p| {
                if p == 2 {
                    Err(Error::Internal("no".into()))
                } else {
                    Ok(p)
                }
            })
            .unwrap_err();
        assert!(err.to_string().contains("no"), "{err}");
        assert_eq!(work.results(), None);
    }
}
