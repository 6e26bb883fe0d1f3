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

    /// Like [`read`](Tailer::read), with the streams spread over one thread per sink: each
    /// stream is read in order by one thread, into that thread's sink.
    pub fn read_parallel(
        &mut self,
        budget: usize,
        sinks: &mut [&mut (dyn FnMut(SourceEvent<'_>) + Send)],
    ) -> (usize, Vec<SourceError>) {
        if sinks.len() <= 1 {
            return match sinks.first_mut() {
                Some(sink) => self.read(budget, *sink),
                None => (0, Vec::new()),
            };
        }
        let mut errors = Vec::new();
        // Check and choose each stream's file on this thread (that changes the tailer's maps).
        let mut ids: Vec<StreamId> = Vec::new();
        for (sid, s) in &self.streams {
            if !s.carriers.is_empty() && s.claim == Claim::Confirmed {
                ids.push(*sid);
            }
        }
        ids.sort_unstable();
        let mut readers = std::collections::HashMap::new();
        for sid in ids {
            match self.choose_reader(sid) {
                Ok(Some(best)) => {
                    readers.insert(sid, best);
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        // Read the chosen streams, each on one thread, the threads sharing the parser.
        let parser = self.parser.as_ref();
        let max = self.max_record_bytes;
        let files = &self.files;
        let mut work: Vec<Vec<(&mut super::Stream, FileKey)>> =
            (0..sinks.len()).map(|_| Vec::new()).collect();
        let mut streams: Vec<(&StreamId, &mut super::Stream)> = self.streams.iter_mut().collect();
        streams.sort_unstable_by_key(|(sid, _)| **sid);
        let mut next = 0;
        for (sid, stream) in streams {
            if let Some(best) = readers.get(sid)
                && files[best].max_len > stream.state.read_pos
            {
                work[next % sinks.len()].push((stream, *best));
                next += 1;
            }
        }
        let results: Vec<(usize, Vec<SourceError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = work
                .into_iter()
                .zip(sinks.iter_mut())
                .filter(|(items, _)| !items.is_empty())
                .map(|(items, sink)| {
                    scope.spawn(move || {
                        let framing = Framing { parser, max };
                        let mut chunk = vec![0; super::READ_CHUNK];
                        let (mut total, mut errors) = (0, Vec::new());
                        for (stream, key) in items {
                            if total >= budget {
                                break;
                            }
                            let p = &files[&key];
                            let read = framing.read(
                                &mut stream.state,
                                &p.file,
                                &p.path,
                                &mut chunk,
                                budget - total,
                                &mut **sink,
                            );
                            match read {
                                Ok(n) => total += n,
                                Err(error) => errors.push(SourceError {
                                    path: p.path.clone(),
                                    error,
                                }),
                            }
                        }
                        (total, errors)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a reading thread panicked"))
                .collect()
        });
        let mut total = 0;
        for (n, e) in results {
            total += n;
            errors.extend(e);
        }
        for sid in readers.into_keys() {
            self.let_go_of_read_files(sid);
        }
        (total, errors)
    }

    /// Checks the carriers of stream `sid` that changed (before trusting their new bytes) and
    /// makes the longest its reader: the file to read, if any.
    fn choose_reader(&mut self, sid: StreamId) -> Result<Option<FileKey>, SourceError> {
        for c in self.streams[&sid].carriers.clone() {
            self.check(c).map_err(|error| SourceError {
                path: self.files[&c].path.clone(),
                error,
            })?;
        }
        let Some(s) = self.streams.get_mut(&sid) else {
            return Ok(None);
        };
        let files = &self.files;
        let Some(best) = s
            .carriers
            .iter()
            .copied()
            .max_by_key(|k| (files[k].max_len, Some(*k) == s.reader))
        else {
            return Ok(None);
        };
        if s.reader != Some(best) {
            s.reader = Some(best);
            s.state.rewind();
            s.path = files[&best].path.display().to_string();
        }
        Ok(Some(best))
    }

    /// Files no configured path names any more are let go once nothing in them is unread.
    fn let_go_of_read_files(&mut self, sid: StreamId) {
        let Some(s) = self.streams.get(&sid) else {
            return;
        };
        let files = &self.files;
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
    }

    fn read_stream(
        &mut self,
        sid: StreamId,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> Result<usize, SourceError> {
        let Some(best) = self.choose_reader(sid)? else {
            return Ok(0);
        };
        let s = self
            .streams
            .get_mut(&sid)
            .expect("choose_reader found the stream");
        let files = &self.files;
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
        self.let_go_of_read_files(sid);
        Ok(n)
    }
}
