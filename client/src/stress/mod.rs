//! Load generator: trains the model it predicts with, then sends a seeded mix of TRAIN and
//! PREDICT requests from a fixed number of concurrent workers, and summarizes latencies.

pub mod data;
pub mod stats;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::net::{Client, ClientError};
use crate::wire::TrainOptions;
use stats::Summary;

/// Settings of one stress run.
#[derive(Clone, Debug)]
pub struct StressConfig {
    /// Number of requests in the mix, not counting the setup training.
    pub requests: usize,
    /// Number of workers, each with one request in flight.
    pub concurrency: usize,
    /// Fraction of the mix that are TRAIN requests, in [0, 1]; the rest are PREDICT.
    pub train_fraction: f64,
    /// Seed of the mix, the prediction inputs and the generated datasets.
    pub seed: u64,
    /// Model that PREDICT requests use; trained first. TRAIN requests in the mix train
    /// `<model>-t<N>`.
    pub model: String,
    /// Rows and epochs of the setup model.
    pub setup_rows: usize,
    pub setup_epochs: u32,
    /// Rows and epochs of each TRAIN request in the mix, kept small so a run stays short.
    pub mix_rows: usize,
    pub mix_epochs: u32,
    /// No request starts after this much time; requests in flight then still finish,
    /// each bounded by its own timeout.
    pub max_duration: Duration,
}

impl Default for StressConfig {
    fn default() -> StressConfig {
        StressConfig {
            requests: 1000,
            concurrency: 1,
            train_fraction: 0.05,
            seed: 42,
            model: "stress-circles".into(),
            setup_rows: 500,
            setup_epochs: 20,
            mix_rows: 100,
            mix_epochs: 3,
            max_duration: Duration::from_secs(600),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Train,
    Predict,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Train => "TRAIN",
            Kind::Predict => "PREDICT",
        }
    }
}

/// One request of the mix, derived from the seed and its index alone, so that a seed
/// replays the same mix at any concurrency without holding the whole plan in memory.
#[derive(Clone, Debug)]
enum Planned {
    Train { model: String, csv: String },
    Predict { input: Vec<f64> },
}

/// Outcome of one request of the mix.
#[derive(Clone, Debug)]
struct Sample {
    kind: Kind,
    latency: Duration,
    error: Option<String>,
}

/// Totals of a run, printed to the terminal and written with `--report`.
#[derive(Clone, Debug, Serialize)]
pub struct StressReport {
    pub model: String,
    pub seed: u64,
    pub concurrency: usize,
    pub train_fraction: f64,
    /// Requests planned, sent, and left unsent because the time limit passed.
    pub planned: usize,
    pub total: usize,
    pub not_sent: usize,
    pub successes: usize,
    pub failures: usize,
    pub elapsed_seconds: f64,
    pub requests_per_second: f64,
    /// Time the setup training took, in seconds.
    pub setup_seconds: f64,
    pub by_type: BTreeMap<Kind, Summary>,
    /// Error messages of failed requests with their counts, most frequent first.
    pub errors: Vec<(String, usize)>,
}

/// Failure to start a run.
#[derive(Debug, thiserror::Error)]
pub enum StressError {
    #[error("invalid stress settings: {0}")]
    InvalidConfig(String),
    #[error("could not train the model {model} used for predictions: {source}")]
    Setup { model: String, source: ClientError },
}

impl StressConfig {
    pub fn validate(&self) -> Result<(), StressError> {
        let invalid = |m: String| Err(StressError::InvalidConfig(m));
        if self.concurrency == 0 {
            return invalid("concurrency must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.train_fraction) {
            return invalid(format!("the train fraction must be between 0 and 1, got {}", self.train_fraction));
        }
        crate::wire::validate_name("model name", &self.model).map_err(|e| StressError::InvalidConfig(e.message))?;
        // Mix models are named `<model>-t<N>`, which must also be valid names.
        let longest = format!("{}-t{}", self.model, self.requests);
        crate::wire::validate_name("model name", &longest).map_err(|e| StressError::InvalidConfig(e.message))
    }
}

/// Trains the setup model, runs the mix and returns the report.
pub async fn run(client: &Client, config: &StressConfig) -> Result<StressReport, StressError> {
    config.validate()?;
    let setup_started = Instant::now();
    prepare_model(client, config).await?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();

    let started = Instant::now();
    let samples = run_workers(client, config, started + config.max_duration).await;
    let elapsed = started.elapsed();

    Ok(summarize(config, config.requests, samples, elapsed, setup_seconds))
}

/// Trains the model that predictions use, on a generated 2-feature CSV, so that every
/// prediction vector has the size the model expects.
async fn prepare_model(client: &Client, config: &StressConfig) -> Result<(), StressError> {
    let csv = data::circles(config.setup_rows, config.seed);
    let options = TrainOptions { epochs: Some(config.setup_epochs), seed: Some(config.seed), ..TrainOptions::default() };
    log::info!("training setup model {} on {} rows", config.model, config.setup_rows);
    client
        .train(&config.model, csv.as_bytes(), &options)
        .await
        .map(|_| ())
        .map_err(|source| StressError::Setup { model: config.model.clone(), source })
}

fn planned(config: &StressConfig, index: usize) -> Planned {
    // Spread the seeds of neighboring indexes apart (multiplier from SplitMix64).
    let request_seed = config.seed.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut rng = StdRng::seed_from_u64(request_seed);
    if rng.gen_bool(config.train_fraction) {
        let model = format!("{}-t{index}", config.model);
        Planned::Train { model, csv: data::circles(config.mix_rows, request_seed) }
    } else {
        Planned::Predict { input: data::circles_point(&mut rng) }
    }
}

async fn run_workers(client: &Client, config: &StressConfig, deadline: Instant) -> Vec<Sample> {
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mix_options = TrainOptions { epochs: Some(config.mix_epochs), seed: Some(config.seed), ..TrainOptions::default() };

    let mut workers = Vec::new();
    for _ in 0..config.concurrency.min(config.requests.max(1)) {
        let (client, config, next, samples) = (client.clone(), config.clone(), next.clone(), samples.clone());
        let options = mix_options.clone();
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= config.requests {
                    break;
                }
                let sample = send_one(&client, &config.model, &options, &planned(&config, index)).await;
                samples.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
            }
        }));
    }
    for worker in workers {
        if let Err(error) = worker.await {
            log::error!("stress worker panicked: {error}");
        }
    }
    let mut guard = samples.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *guard)
}

async fn send_one(client: &Client, model: &str, options: &TrainOptions, planned: &Planned) -> Sample {
    let started = Instant::now();
    let (kind, result) = match planned {
        Planned::Train { model, csv } => (Kind::Train, client.train(model, csv.as_bytes(), options).await.map(|_| ())),
        Planned::Predict { input } => (Kind::Predict, client.predict(model, input).await.map(|_| ())),
    };
    let latency = started.elapsed();
    if let Err(error) = &result {
        log::debug!("{} request failed after {latency:?}: {error}", kind.as_str());
    }
    Sample { kind, latency, error: result.err().map(|e| e.to_string()) }
}

fn summarize(config: &StressConfig, planned: usize, samples: Vec<Sample>, elapsed: Duration, setup_seconds: f64) -> StressReport {
    let mut by_type: BTreeMap<Kind, Vec<(Duration, bool)>> = BTreeMap::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for sample in &samples {
        by_type.entry(sample.kind).or_default().push((sample.latency, sample.error.is_none()));
        if let Some(error) = &sample.error {
            *errors.entry(error.clone()).or_default() += 1;
        }
    }
    let mut errors: Vec<(String, usize)> = errors.into_iter().collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    let successes = samples.iter().filter(|s| s.error.is_none()).count();
    let seconds = elapsed.as_secs_f64();
    StressReport {
        model: config.model.clone(),
        seed: config.seed,
        concurrency: config.concurrency,
        train_fraction: config.train_fraction,
        planned,
        total: samples.len(),
        not_sent: planned - samples.len(),
        successes,
        failures: samples.len() - successes,
        elapsed_seconds: seconds,
        requests_per_second: if seconds > 0.0 { samples.len() as f64 / seconds } else { 0.0 },
        setup_seconds,
        by_type: by_type.into_iter().map(|(kind, s)| (kind, Summary::from_samples(&s))).collect(),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(config: &StressConfig) -> Vec<Planned> {
        (0..config.requests).map(|index| planned(config, index)).collect()
    }

    #[test]
    fn plan_repeats_for_same_seed() {
        let config = StressConfig { requests: 200, ..StressConfig::default() };
        let inputs = |plan: Vec<Planned>| {
            plan.into_iter()
                .map(|p| match p {
                    Planned::Train { model, .. } => model,
                    Planned::Predict { input } => format!("{input:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(inputs(plan(&config)), inputs(plan(&config)));
        let other = StressConfig { seed: 7, ..config.clone() };
        assert_ne!(inputs(plan(&config)), inputs(plan(&other)));
    }

    #[test]
    fn plan_follows_train_fraction() {
        let config = StressConfig { requests: 2000, train_fraction: 0.1, ..StressConfig::default() };
        let trains = plan(&config).iter().filter(|p| matches!(p, Planned::Train { .. })).count();
        assert!((150..=250).contains(&trains), "{trains} trains in 2000 at fraction 0.1");
    }

    #[test]
    fn plan_vectors_match_feature_count() {
        let config = StressConfig { requests: 100, train_fraction: 0.0, ..StressConfig::default() };
        for planned in plan(&config) {
            let Planned::Predict { input } = planned else { panic!("fraction 0 planned a TRAIN") };
            assert_eq!(input.len(), data::CIRCLES_FEATURES);
        }
    }

    #[test]
    fn summary_counts_failures_by_message() {
        let sample = |kind, ms, error: Option<&str>| Sample {
            kind,
            latency: Duration::from_millis(ms),
            error: error.map(str::to_string),
        };
        let samples = vec![
            sample(Kind::Predict, 5, None),
            sample(Kind::Predict, 7, Some("boom")),
            sample(Kind::Train, 50, Some("boom")),
            sample(Kind::Predict, 6, Some("other")),
        ];
        let report = summarize(&StressConfig::default(), 6, samples, Duration::from_secs(2), 0.5);
        assert_eq!(report.total, 4);
        assert_eq!(report.not_sent, 2);
        assert_eq!(report.failures, 3);
        assert_eq!(report.requests_per_second, 2.0);
        assert_eq!(report.errors[0], ("boom".to_string(), 2));
        assert_eq!(report.by_type[&Kind::Predict].requests, 3);
        assert_eq!(report.by_type[&Kind::Train].failures, 1);
    }

    #[test]
    fn invalid_fraction_rejected() {
        let config = StressConfig { train_fraction: 1.5, ..StressConfig::default() };
        assert!(config.validate().is_err());
    }
}
