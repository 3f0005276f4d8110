//! The app's ranking of the current query: made off the UI thread one at a time (the newest
//! request next), shown when it is the current query's and newer than the one on screen.

use super::query::Ranking;
use super::App;

impl App {
    /// No query, no results (a ranking still being made for the last one is dropped).
    pub(crate) fn clear_query(&mut self) {
        self.query = None;
        // the next query shows every year
        self.table.year = None;
        self.clear_ranking();
    }

    pub(super) fn clear_ranking(&mut self) {
        self.ranking = Ranking::default();
        self.rank_seq += 1;
        self.ranked_seq = self.rank_seq;
        self.rank_floor = self.rank_seq + 1;
        self.rank_again = false;
    }

    /// Ranks the library for the query again, off the UI thread (a million photos take longer
    /// than a frame); until the new ranking comes the last one stays on screen
    /// ([`App::ranking_pending`]).
    pub(super) fn rerank(&mut self) {
        if self.folder.is_none() || self.query.is_none() {
            self.clear_ranking();
            return;
        }
        self.rank_seq += 1;
        if self.rank_busy {
            self.rank_again = true;
        } else {
            self.start_ranking();
        }
    }

    /// Asks the worker for ranking `rank_seq`.
    pub(super) fn start_ranking(&mut self) {
        if let (Some(f), Some((q, _))) = (&self.folder, &self.query) {
            self.rank_busy = true;
            self.out.rank(f.lib.clone(), q.clone(), self.threshold, self.rank_seq);
        } else {
            // nothing to rank any more: nothing is waited for
            self.ranked_seq = self.rank_seq;
        }
    }

    /// A ranking came (`None`: it failed): shown when it is the current query's and newer than
    /// the one on screen; the newest request still waiting is started.
    pub(super) fn ranked(&mut self, seq: u64, ranking: Option<Box<Ranking>>) {
        self.rank_busy = false;
        let current = seq >= self.rank_floor && seq > self.ranked_seq;
        match ranking {
            Some(r) if current => {
                self.ranking = *r;
                self.ranked_seq = seq;
            }
            None if current => {
                self.error("the search could not be ranked (the log says why)".to_string());
                // the threshold moving below the last ranking does not ask again and again
                self.ranking.exact_from = f32::NEG_INFINITY;
                self.ranking.left_out_at = None;
                if !self.rank_again {
                    self.ranked_seq = self.rank_seq;
                }
            }
            _ => {}
        }
        if std::mem::take(&mut self.rank_again) {
            self.start_ranking();
        }
    }

    /// A ranking is being made (the one shown is older).
    pub fn ranking_pending(&self) -> bool {
        self.ranked_seq != self.rank_seq
    }
}
