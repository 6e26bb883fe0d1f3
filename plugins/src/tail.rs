//! The file tailer (being built).
