//! Learning quality with default options, determinism, and the parallel
//! reduction.

mod common;

use ai_core::generate::DatasetKind;
use ai_core::labels::Task;
use ai_core::model_file::encode;
use ai_core::optimizer::OptimizerKind;
use ai_core::train::{train, TrainOptions};
use common::{generated, train_default};

#[test]
fn circles_reach_095_accuracy() {
    let model = train_default(&generated(DatasetKind::Circles))
        .unwrap()
        .model;
    let accuracy = model.header.training.accuracy.unwrap();
    assert!(accuracy > 0.95, "training accuracy {accuracy}");
    let validation = model.header.training.validation_accuracy.unwrap();
    assert!(validation > 0.95, "validation accuracy {validation}");
}

#[test]
fn xor_gets_all_four_points() {
    let model = train_default(&generated(DatasetKind::Xor)).unwrap().model;
    let inputs = vec![
        vec![0.0, 0.0],
        vec![0.0, 1.0],
        vec![1.0, 0.0],
        vec![1.0, 1.0],
    ];
    let labels: Vec<String> = model
        .predict("xor", &inputs)
        .unwrap()
        .into_iter()
        .map(|p| p.label.unwrap())
        .collect();
    assert_eq!(labels, vec!["0", "1", "1", "0"]);
}

#[test]
fn spiral_trains_multiclass() {
    let model = train_default(&generated(DatasetKind::Spiral))
        .unwrap()
        .model;
    assert_eq!(model.header.task, Task::Multiclass);
    assert_eq!(model.network.output_count(), 3);
    let accuracy = model.header.training.accuracy.unwrap();
    assert!(accuracy > 0.9, "training accuracy {accuracy}");
}

#[test]
fn iris_returns_species_names() {
    let model = train_default(&generated(DatasetKind::Iris)).unwrap().model;
    let accuracy = model.header.training.accuracy.unwrap();
    assert!(accuracy > 0.9, "training accuracy {accuracy}");
    let prediction = &model.predict("iris", &[vec![5.0, 3.4, 1.5, 0.2]]).unwrap()[0];
    assert_eq!(prediction.label.as_deref(), Some("setosa"));
    let total: f64 = prediction.outputs.iter().sum();
    assert!((total - 1.0).abs() < 1e-5, "probabilities sum to {total}");
}

#[test]
fn linear_regression_in_label_units() {
    let model = train_default(&generated(DatasetKind::Linear))
        .unwrap()
        .model;
    let info = &model.header.training;
    assert!(info.r2.unwrap() > 0.98, "r2 {:?}", info.r2);
    let rmse = info.rmse.unwrap();
    assert!(rmse < 0.8, "rmse {rmse} with label noise sigma 0.5");
    for x in [1.0, 5.0, 9.0] {
        let value = model.predict("lin", &[vec![x]]).unwrap()[0].value.unwrap();
        let expected = 2.0 * x + 1.0;
        assert!(
            (value - expected).abs() < 0.6,
            "x {x}: predicted {value}, expected {expected}"
        );
    }
}

#[test]
fn large_dataset_reaches_099_in_20_epochs() {
    let data = generated(DatasetKind::Large);
    let options = TrainOptions {
        epochs: Some(20),
        validation: Some(0.0),
        threads: 2,
        ..TrainOptions::default()
    };
    let model = train(&data, &options, &mut |_| {}).unwrap().model;
    let accuracy = model.header.training.accuracy.unwrap();
    assert!(accuracy >= 0.99, "training accuracy {accuracy}");
}

fn circles_options(seed: u64, threads: usize) -> TrainOptions {
    TrainOptions {
        epochs: Some(15),
        seed,
        threads,
        date_unix: 1_700_000_000,
        ..TrainOptions::default()
    }
}

#[test]
fn same_seed_and_threads_give_identical_bytes() {
    let data = generated(DatasetKind::Circles);
    for threads in [1, 2, 3] {
        let first = train(&data, &circles_options(7, threads), &mut |_| {}).unwrap();
        let second = train(&data, &circles_options(7, threads), &mut |_| {}).unwrap();
        assert_eq!(
            encode(&first.model),
            encode(&second.model),
            "threads {threads}"
        );
    }
}

#[test]
fn different_seed_gives_different_model() {
    let data = generated(DatasetKind::Circles);
    let first = train(&data, &circles_options(7, 2), &mut |_| {}).unwrap();
    let second = train(&data, &circles_options(8, 2), &mut |_| {}).unwrap();
    assert_ne!(encode(&first.model), encode(&second.model));
}

#[test]
fn thread_count_changes_only_rounding() {
    let data = generated(DatasetKind::Circles);
    let options = |threads| TrainOptions {
        epochs: Some(1),
        optimizer: OptimizerKind::Sgd,
        validation: Some(0.0),
        threads,
        ..TrainOptions::default()
    };
    let one_thread = train(&data, &options(1), &mut |_| {}).unwrap().model;
    let two_threads = train(&data, &options(2), &mut |_| {}).unwrap().model;
    for (a, b) in one_thread
        .network
        .layers
        .iter()
        .zip(&two_threads.network.layers)
    {
        let difference = (&a.weights - &b.weights)
            .mapv(f32::abs)
            .fold(0.0f32, |m, &v| m.max(v));
        assert!(difference < 1e-4, "weights differ by up to {difference}");
    }
}

#[test]
fn early_stopping_ends_before_epoch_limit() {
    let data = generated(DatasetKind::Circles);
    let options = TrainOptions {
        epochs: Some(5000),
        patience: 3,
        threads: 2,
        ..TrainOptions::default()
    };
    let mut losses = Vec::new();
    let model = train(&data, &options, &mut |report| {
        losses.push(report.validation_loss.unwrap())
    })
    .unwrap()
    .model;
    assert!(model.header.training.epochs < 5000);
    assert_eq!(losses.len(), model.header.training.epochs);

    // The saved weights are those of the epoch with the lowest validation
    // loss, not those of the last epoch.
    let best = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let saved = model.header.training.validation_loss.unwrap();
    assert_eq!(
        saved, best,
        "saved validation loss {saved}, best epoch {best}"
    );
    assert_ne!(saved, *losses.last().unwrap());
}

#[test]
fn oversized_network_is_rejected_before_training() {
    let data = generated(DatasetKind::Xor);
    let options = TrainOptions {
        hidden: vec![70_000],
        threads: 1,
        ..TrainOptions::default()
    };
    let error = train(&data, &options, &mut |_| {}).err().expect("rejected");
    assert_eq!(error.code(), "INVALID_PAYLOAD");
    assert!(error.to_string().contains("70000"), "{error}");
}
