//! The tailer as a [`Source`] of the pipeline.

use std::path::PathBuf;
use std::time::Duration;

use authstat_core::source::{Settled, Source, SourceEvent, SourceProblem, SourceStatus};
use authstat_core::store::SourcePosition;

use super::Tailer;
use super::position::{PositionError, StreamPosition};

impl Source for Tailer {
    fn name(&self) -> &str {
        &self.source
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    fn watch_dirs(&self) -> Vec<PathBuf> {
        Tailer::watch_dirs(self)
    }

    fn inputs(&self) -> Vec<String> {
        self.paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    fn poll(&mut self) -> Vec<SourceProblem> {
        self.scan().into_iter().map(SourceProblem::from).collect()
    }

    fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceProblem>) {
        let (n, errors) = Tailer::read(self, budget, on_event);
        (n, errors.into_iter().map(SourceProblem::from).collect())
    }

    fn read_parallel(
        &mut self,
        budget: usize,
        sinks: &mut [&mut (dyn FnMut(SourceEvent<'_>) + Send)],
    ) -> (usize, Vec<SourceProblem>) {
        let (n, errors) = Tailer::read_parallel(self, budget, sinks);
        (n, errors.into_iter().map(SourceProblem::from).collect())
    }

    fn positions(&self) -> Vec<SourcePosition> {
        Tailer::positions(self)
    }

    fn unclaimed(&self) -> Vec<String> {
        Tailer::unclaimed(self)
    }

    fn take_regrown(&mut self) -> Vec<String> {
        Tailer::take_regrown(self)
    }

    fn settle(&mut self, key: &str, decision: Settled) -> Vec<String> {
        Tailer::settle(self, key, decision)
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            open: self.files() as u64,
            lag: self.lag_bytes(),
        }
    }
}

/// The offset stored in a file position (another node's, to continue where it stopped).
pub(crate) fn position_offset(position: &SourcePosition) -> Result<u64, PositionError> {
    Ok(StreamPosition::decode(position)?.offset)
}
