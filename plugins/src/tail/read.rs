//! Reading the streams: from the longest file that carries each, after checking that files
//! which changed still carry it.

use authstat_core::source::SourceEvent;

use super::index::StreamId;
use super::reader::Framing;
use super::{Claim, DETACHED_SCANS, FileKey, SourceError, Tailer};

impl Tailer {
    /// Reads what the streams hold, up to about `budget` bytes, calling `on_event` for each
    /// record. Returns the bytes read (0: every stream is at its end) and the files that could
    /// not be read.
    pub fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceError>) {
        let mut total = 0;
        let mut errors = Vec::new();
        let mut ids: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.carriers.is_empty() && s.claim == Claim::Confirmed)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for sid in ids {
            if total >= budget {
                break;
            }
            match self.read_stream(sid, budget - total, on_event) {
                Ok(n) => total += n,
                Err(e) => errors.push(e),
            }
        }
        (total, errors)
    }

    fn read_stream(
        &mut self,
        sid: StreamId,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> Result<usize, SourceError> {
        // Look again at carriers that changed (before trusting their new bytes), then read the
        // longest.
        for c in self.streams[&sid].carriers.clone() {
            self.check(c).map_err(|error| SourceError {
                path: self.files[&c].path.clone(),
                error,
            })?;
        }
        let Some(s) = self.streams.get_mut(&sid) else {
            return Ok(0);
        };
        let files = &self.files;
        let Some(best) = s
            .carriers
            .iter()
            .copied()
            .max_by_key(|k| (files[k].max_len, Some(*k) == s.reader))
        else {
            return Ok(0);
        };
        if s.reader != Some(best) {
            s.reader = Some(best);
            s.state.rewind();
            s.path = files[&best].path.display().to_string();
        }
        let p = &files[&best];
        let mut n = 0;
        if p.max_len > s.state.read_pos {
            let framing = Framing {
                parser: self.parser.as_ref(),
                max: self.max_record_bytes,
            };
            n = framing
                .read(
                    &mut s.state,
                    &p.file,
                    &p.path,
                    &mut self.chunk,
                    budget,
                    on_event,
                )
                .map_err(|error| SourceError {
                    path: p.path.clone(),
                    error,
                })?;
        }
        // Files no configured path names any more are let go once nothing in them is unread.
        let done: Vec<FileKey> = s
            .carriers
            .iter()
            .copied()
            .filter(|k| {
                let p = &files[k];
                p.detached >= DETACHED_SCANS && p.max_len <= s.state.read_pos
            })
            .collect();
        for key in done {
            self.detach(key);
            self.files.remove(&key);
        }
        Ok(n)
    }
}
