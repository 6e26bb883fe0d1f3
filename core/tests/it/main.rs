//! Integration tests of authstat-core, one module per area.

mod support;

mod hash_known_answers;
mod hll_accuracy;
mod hll_estimator;
mod hll_janssen_known_answers;
mod hll_js_test_data;
mod hll_promotion;
mod hll_properties;
mod hll_union;
