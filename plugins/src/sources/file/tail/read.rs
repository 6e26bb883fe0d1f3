//! Reading the streams: from the longest file that carries each, after checking that files
//! which changed still carry it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use authstat_core::source::SourceEvent;

use super::index::StreamId;
use super::reader::Framing;
use super::{Claim, DETACHED_SCANS, FileKey, Physical, READ_SLICE, SourceError, Stream, Tailer};

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
        let ids = self.readable_streams();
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

    /// Like [`read`](Tailer::read), on one thread per sink, about `budget` bytes in all: each
    /// stream is read in order, a slice at a time, by one thread at a time; its records go to
    /// the sink of the thread that read them.
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
        // Check and choose each stream's file on this thread (that changes the tailer's maps).
        let (readers, mut errors) = self.choose_readers();
        // Read the chosen streams, the threads sharing the parser. The streams wait in a queue;
        // a thread takes one, reads a slice of it, and puts it back at the end if it has more.
        // So a stream is read in order by one thread at a time, and no thread waits for
        // another for longer than a slice: the threads stay busy until the budget is spent or
        // every stream is at its end.
        let parser = self.parser.as_ref();
        let max = self.max_record_bytes;
        let files = &self.files;
        let mut streams: Vec<(&StreamId, &mut Stream)> = self.streams.iter_mut().collect();
        streams.sort_unstable_by_key(|(sid, _)| **sid);
        let queue: VecDeque<(&mut Stream, FileKey)> = streams
            .into_iter()
            .filter_map(|(sid, stream)| {
                let best = *readers.get(sid)?;
                (files[&best].max_len > stream.state.read_pos).then_some((stream, best))
            })
            .collect();
        let threads = sinks.len().min(queue.len());
        let queue: ReadQueue<'_> = Mutex::new(queue);
        let spent = AtomicUsize::new(0);
        let results: Vec<(usize, Vec<SourceError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = sinks
                .iter_mut()
                .take(threads)
                .map(|sink| {
                    let (queue, spent) = (&queue, &spent);
                    let framing = Framing { parser, max };
                    scope.spawn(move || drain(queue, spent, budget, files, &framing, &mut **sink))
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

    /// The streams that may be read (confirmed, carried by a file), in order.
    fn readable_streams(&self) -> Vec<StreamId> {
        let mut ids: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| !s.carriers.is_empty() && s.claim == Claim::Confirmed)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The file to read of every confirmed stream that has one, and the files that could not
    /// be checked.
    fn choose_readers(&mut self) -> (HashMap<StreamId, FileKey>, Vec<SourceError>) {
        let ids = self.readable_streams();
        let (mut readers, mut errors) = (HashMap::new(), Vec::new());
        for sid in ids {
            match self.choose_reader(sid) {
                Ok(Some(best)) => {
                    readers.insert(sid, best);
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        (readers, errors)
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

/// The streams waiting to be read, each with the file to read it from.
type ReadQueue<'a> = Mutex<VecDeque<(&'a mut Stream, FileKey)>>;

/// One reading thread: takes a stream from the queue, reads a slice of it into `sink`, puts it
/// back at the end if it has more, until the queue is empty or `spent` reaches `budget`.
fn drain(
    queue: &ReadQueue<'_>,
    spent: &AtomicUsize,
    budget: usize,
    files: &HashMap<FileKey, Physical>,
    framing: &Framing<'_>,
    sink: &mut (dyn FnMut(SourceEvent<'_>) + Send),
) -> (usize, Vec<SourceError>) {
    let mut chunk = vec![0; super::READ_CHUNK];
    let (mut total, mut errors) = (0, Vec::new());
    while spent.load(Ordering::Relaxed) < budget {
        let next = queue.lock().expect("the read queue").pop_front();
        let Some((stream, key)) = next else { break };
        let p = &files[&key];
        let read = framing.read(
            &mut stream.state,
            &p.file,
            &p.path,
            &mut chunk,
            READ_SLICE,
            sink,
        );
        match read {
            Ok(n) => {
                total += n;
                spent.fetch_add(n, Ordering::Relaxed);
                // Less than a slice: the stream is at its end for now.
                if n >= READ_SLICE {
                    queue
                        .lock()
                        .expect("the read queue")
                        .push_back((stream, key));
                }
            }
            Err(error) => errors.push(SourceError {
                path: p.path.clone(),
                error,
            }),
        }
    }
    (total, errors)
}
