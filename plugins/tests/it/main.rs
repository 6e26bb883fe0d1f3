//! Integration tests of authstat-plugins.

mod derive;
mod parse;
