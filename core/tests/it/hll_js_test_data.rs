//! Every row of js-hll's published test data (log2m 9, regwidth 5, cutoff 0x47).

use authstat_core::hll::{ExplicitThreshold, Hll, HllType};

use crate::support::{data_file, from_pg_hex, hll_of, raw_for};

struct Row {
    bytes: Vec<u8>,
    registers: Vec<i64>,
    cardinality: u64,
}

fn rows() -> Vec<Row> {
    let text = data_file("test_data_v1.csv");
    let rows: Vec<Row> = text
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut cols = line.split('|');
            let bytes = from_pg_hex(cols.next().unwrap());
            let registers: Vec<i64> = serde_json::from_str(cols.next().unwrap()).unwrap();
            let cardinality = cols.next().unwrap().parse().unwrap();
            Row {
                bytes,
                registers,
                cardinality,
            }
        })
        .collect();
    assert_eq!(rows.len(), 45);
    rows
}

#[test]
fn every_row_decodes_to_its_registers_and_cardinality_and_reencodes_identically() {
    let mut seen = std::collections::BTreeMap::new();
    for (i, row) in rows().iter().enumerate() {
        let h = Hll::from_bytes(&row.bytes).unwrap_or_else(|e| panic!("row {i}: {e}"));
        *seen.entry(h.hll_type()).or_insert(0) += 1;
        assert_eq!(h.params().log2m(), 9);
        assert_eq!(h.params().regwidth(), 5);
        assert_eq!(h.params().explicit(), ExplicitThreshold::Values(64));
        assert!(h.params().sparse());
        match h.hll_type() {
            HllType::Explicit => {
                assert_eq!(h.explicit_values().unwrap(), &row.registers[..], "row {i}")
            }
            HllType::Sparse | HllType::Full => {
                let regs: Vec<i64> = h.registers().unwrap().into_iter().map(i64::from).collect();
                assert_eq!(regs, row.registers, "row {i}");
            }
            other => panic!("row {i}: unexpected {other}"),
        }
        assert_eq!(h.cardinality(), Some(row.cardinality), "row {i}");
        assert_eq!(
            h.to_bytes().unwrap(),
            row.bytes,
            "row {i}: to_bytes(from_bytes(b)) != b"
        );
    }
    let expected: std::collections::BTreeMap<HllType, i32> = [
        (HllType::Explicit, 15),
        (HllType::Sparse, 15),
        (HllType::Full, 15),
    ]
    .into();
    assert_eq!(seen, expected);
}

/// Rebuilding each row through `add_raw` alone (explicit values as they are; for SPARSE and FULL
/// one raw value per non-zero register that sets exactly that value) gives the same bytes: the
/// promotions EXPLICIT → SPARSE (above 64 values) and SPARSE → FULL (above 128 registers)
/// land on the row's own representation.
#[test]
fn rows_rebuilt_with_add_raw_serialize_identically() {
    for (i, row) in rows().iter().enumerate() {
        let decoded = Hll::from_bytes(&row.bytes).unwrap();
        let params = *decoded.params();
        let values: Vec<i64> = match decoded.hll_type() {
            HllType::Explicit => row.registers.clone(),
            _ => row
                .registers
                .iter()
                .enumerate()
                .filter(|&(_, &r)| r != 0)
                .map(|(j, &r)| raw_for(&params, j as u64, r as u32))
                .collect(),
        };
        let h = hll_of(params, values);
        assert_eq!(h.hll_type(), decoded.hll_type(), "row {i}");
        assert_eq!(h.to_bytes().unwrap(), row.bytes, "row {i}");
    }
}
