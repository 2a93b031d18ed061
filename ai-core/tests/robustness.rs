//! Random and mutated inputs: the CSV parser and the model decoder return
//! errors and never panic.

mod common;

use ai_core::dataset::parse_csv;
use ai_core::generate::DatasetKind;
use ai_core::model_file::{decode, encode};
use ai_core::train::{train, TrainOptions};
use common::generated;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes that CSV parsing treats specially, to make random files hit the
/// interesting paths.
const CSV_ALPHABET: &[u8] = b"0123456789.,;\t\"\r\n -eEaNinf\xef\xbb\xbf";

#[test]
fn random_csv_bytes_never_panic() {
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..3000 {
        let length = rng.gen_range(0..200);
        let bytes: Vec<u8> = (0..length)
            .map(|_| CSV_ALPHABET[rng.gen_range(0..CSV_ALPHABET.len())])
            .collect();
        if let Ok(data) = parse_csv(&bytes) {
            assert!(data.rows() > 0);
            assert!(data.feature_count() > 0);
            assert_eq!(data.features.len(), data.rows() * data.feature_count());
            assert!(data.features.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn mutated_model_files_are_rejected_without_panic() {
    let data = generated(DatasetKind::Xor);
    let options = TrainOptions {
        epochs: Some(2),
        threads: 1,
        hidden: vec![4],
        ..TrainOptions::default()
    };
    let model = train(&data, &options, &mut |_| {}).unwrap().model;
    let bytes = encode(&model);
    let mut rng = StdRng::seed_from_u64(12);

    for _ in 0..3000 {
        let mut mutated = bytes.clone();
        match rng.gen_range(0..3) {
            0 => {
                let at = rng.gen_range(0..mutated.len());
                mutated[at] ^= 1 << rng.gen_range(0..8);
            }
            1 => mutated.truncate(rng.gen_range(0..mutated.len())),
            _ => {
                let at = rng.gen_range(0..mutated.len());
                mutated.insert(at, rng.gen());
            }
        }
        assert!(decode(&mutated).is_err(), "a mutated file was accepted");
    }
}
