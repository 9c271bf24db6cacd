//! Sentence embeddings with ONNX Runtime: tokenise, run the BERT encoder, mean-pool over the
//! attention mask and L2-normalise — the same vectors sentence-transformers gives.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use tokenizers::{Tokenizer, TruncationParams};

use crate::assets::AssetPaths;
use crate::config::EmbeddingConfig;
use crate::error::{Error, Result};

/// Most padded tokens in one inference batch (e.g. 8 texts of 256 tokens, or 32 of 64).
const TOKEN_BUDGET: usize = 1024;

/// Which of the model's sessions a call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Ingest and repair batches.
    Ingest,
    /// A search query: the ingest session when no batch holds it (every core), else the query
    /// session of its own; a query never waits for an ingest batch.
    Query,
    /// A query embedded while its search's keyword half runs beside it (hybrid): the query
    /// session only, whose threads (one by default) leave the other cores to that half.
    QueryBeside,
}

impl Lane {
    pub fn as_str(&self) -> &'static str {
        match self {
            Lane::Ingest => "ingest",
            Lane::Query | Lane::QueryBeside => "query",
        }
    }
}

pub struct Embedder {
    // `Session::run` takes `&mut self`; one session already uses every core through its
    // intra-op thread pool, so a lock costs nothing in ingest throughput. Queries get a second
    // session (the model's weights once more in memory) because behind the ingest lock a
    // one-line query would wait for a whole batch of long chunks; a query alone borrows the
    // ingest session's cores when no batch holds it.
    session: Mutex<Session>,
    /// Built the first time a query needs it, so commands that only ingest do not hold the
    /// model twice; `serve` builds it as it starts ([`Embedder::prepare_query_session`]).
    query_session: OnceLock<Mutex<Session>>,
    /// Held while the query session is built, so two first queries build it once.
    building_query_session: Mutex<()>,
    query_threads: usize,
    environment: ort::environment::Environment,
    model_file: PathBuf,
    tokenizer: Tokenizer,
    dimensions: usize,
    batch_size: usize,
    model_name: String,
    model_dir: PathBuf,
    io: ModelIo,
}

/// How to talk to the loaded model: which inputs it takes and which output holds the vectors.
type ModelInputs = Vec<(
    std::borrow::Cow<'static, str>,
    ort::session::SessionInputValue<'static>,
)>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelIo {
    /// BERT-style models take token types; some exports (DistilBERT, MPNet) do not.
    token_type_ids: bool,
    output: String,
    /// Token vectors to mean-pool (`[batch, seq, dims]`), or one pooled vector per text.
    pooled: bool,
}

/// An input or output of the model: its name and its rank (`None` when not a tensor).
type Port<'a> = (&'a str, Option<usize>);

/// Picks the model's inputs and output by name, or says what the model has instead: a
/// sentence-transformers export names its token vectors `last_hidden_state` or
/// `token_embeddings`, and may add an already pooled `sentence_embedding`.
fn model_io(model: &str, inputs: &[Port<'_>], outputs: &[Port<'_>]) -> Result<ModelIo> {
    let names = |ports: &[Port<'_>]| {
        ports
            .iter()
            .map(|(n, _)| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for required in ["input_ids", "attention_mask"] {
        if !inputs.iter().any(|(n, _)| *n == required) {
            return Err(Error::ModelUnavailable(format!(
                "model {model} has no `{required}` input (its inputs: {}); use a BERT-style sentence-embedding export",
                names(inputs)
            )));
        }
    }
    let find = |name: &str| outputs.iter().find(|(n, _)| *n == name);
    let chosen = find("last_hidden_state")
        .or_else(|| find("token_embeddings"))
        .map(|(n, _)| (n.to_string(), false))
        .or_else(|| find("sentence_embedding").map(|(n, _)| (n.to_string(), true)))
        .or_else(|| {
            // An unnamed export: its first output is the token vectors if it has their rank.
            outputs
                .first()
                .filter(|(_, rank)| *rank == Some(3))
                .map(|(n, _)| (n.to_string(), false))
        });
    let Some((output, pooled)) = chosen else {
        return Err(Error::ModelUnavailable(format!(
            "model {model} has no token-embedding output (`last_hidden_state` or `token_embeddings`) nor `sentence_embedding`; its outputs: {}",
            names(outputs)
        )));
    };
    Ok(ModelIo {
        token_type_ids: inputs.iter().any(|(n, _)| *n == "token_type_ids"),
        output,
        pooled,
    })
}

fn model_err(context: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::ModelUnavailable(format!("{context}: {e}"))
}

/// One ONNX Runtime session of `model` on `threads` intra-op threads.
fn build_session(
    environment: &ort::environment::Environment,
    model: &Path,
    threads: usize,
) -> Result<Session> {
    Session::builder(environment)
        .map_err(|e| model_err("session builder")(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| model_err("optimization level")(e.to_string()))?
        .with_intra_threads(threads)
        .map_err(|e| model_err("thread count")(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| model_err("thread count")(e.to_string()))?
        // Threads spin between the operators of a run, as by default, but not after
        // it: a spinning worker would take a core from the search work that follows.
        .with_config_entry("session.force_spinning_stop", "1")
        .map_err(|e| model_err("thread spinning")(e.to_string()))?
        // ONNX Runtime 1.31's fused SkipLayerNormalization kernel is slower here than the
        // Add and LayerNormalization it replaces: with the fusion the int8 model took 13-16 %
        // longer on a batch of 32 x 180 tokens (it does not fire on the fp32 graph).
        .with_config_entry(
            "optimization.disable_specified_optimizers",
            "SkipLayerNormFusion",
        )
        .map_err(|e| model_err("optimizer selection")(e.to_string()))?
        // Shapes vary with every batch, so a per-shape memory pattern is useless. The
        // arena stays on: the token budget bounds the largest batch, so the arena's size
        // is bounded too, while plain malloc fragments over a long ingest.
        .with_memory_pattern(false)
        .map_err(|e| model_err("memory pattern")(e.to_string()))?
        .commit_from_file(model)
        .map_err(|e| model_err(&format!("cannot load {}", model.display()))(e.to_string()))
}

impl Embedder {
    pub fn load(cfg: &EmbeddingConfig, assets: &AssetPaths) -> Result<Embedder> {
        assets.check_present()?;
        let environment = crate::assets::init_onnxruntime(&assets.onnxruntime)?;
        let cores = crate::sysres::cores();
        // 0 in either setting means one thread per core.
        let or_cores = |n: usize| if n == 0 { cores } else { n };
        let (threads, query_threads) = (or_cores(cfg.threads), or_cores(cfg.query_threads));
        let model = assets.model_file();
        let session = build_session(&environment, &model, threads)?;
        let rank = |o: &ort::value::Outlet| o.dtype().tensor_shape().map(|s| s.len());
        let io = {
            let inputs: Vec<Port<'_>> = session
                .inputs()
                .iter()
                .map(|o| (o.name(), rank(o)))
                .collect();
            let outputs: Vec<Port<'_>> = session
                .outputs()
                .iter()
                .map(|o| (o.name(), rank(o)))
                .collect();
            model_io(
                &format!("{} ({})", cfg.model, model.display()),
                &inputs,
                &outputs,
            )?
        };
        let dimensions = session
            .outputs()
            .iter()
            .find(|o| o.name() == io.output)
            .and_then(|o| o.dtype().tensor_shape().and_then(|s| s.last().copied()))
            .filter(|d| *d > 0)
            .map(|d| d as usize)
            .unwrap_or(384);
        let tokenizer = load_tokenizer(&assets.tokenizer_file(), cfg.max_sequence_length)?;
        Ok(Embedder {
            session: Mutex::new(session),
            query_session: OnceLock::new(),
            building_query_session: Mutex::new(()),
            query_threads,
            environment,
            model_file: model,
            tokenizer,
            dimensions,
            batch_size: cfg.batch_size,
            model_name: cfg.model.clone(),
            model_dir: assets.model_dir.clone(),
            io,
        })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    /// Intra-op threads of the query session.
    pub fn query_threads(&self) -> usize {
        self.query_threads
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Embeds texts; each vector is unit length. Texts are tokenised once, sorted by length and
    /// grouped into batches of at most `batch_size` texts and `TOKEN_BUDGET` padded tokens:
    /// attention memory grows with batch × length², so long texts go in smaller batches and
    /// short ones in full batches, which keeps both padding and peak memory low.
    // Debug level: one span per batch is too many for INFO logs, but shows in traces on demand.
    #[tracing::instrument(name = "embed_batch", level = "debug", skip_all, fields(texts = texts.len()))]
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.embed_on(Lane::Ingest, texts)
    }

    /// [`Embedder::embed`] on the session of `lane`.
    pub fn embed_on(&self, lane: Lane, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let (encodings, batches) = self.plan(texts)?;
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for members in batches {
            let batch: Vec<&tokenizers::Encoding> =
                members.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.run_batch(lane, &batch)?;
            for (&i, v) in members.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Seconds ONNX Runtime alone spends on `texts`, tokenised and batched exactly as `embed`
    /// does but with only `Session::run` timed: the benchmark's baseline for the pipeline.
    pub fn inference_only_seconds(&self, texts: &[&str]) -> Result<f64> {
        let (encodings, batches) = self.plan(texts)?;
        let mut seconds = 0.0;
        for members in batches {
            let batch: Vec<&tokenizers::Encoding> =
                members.iter().map(|&i| &encodings[i]).collect();
            let (inputs, _, _) = self.inputs(&batch)?;
            let mut session = self.session(Lane::Ingest)?;
            let started = std::time::Instant::now();
            session
                .run(inputs)
                .map_err(|e| Error::Inference(e.to_string()))?;
            seconds += started.elapsed().as_secs_f64();
        }
        Ok(seconds)
    }

    /// Tokenises `texts` once and groups them, by length, into batches of at most `batch_size`
    /// texts and `TOKEN_BUDGET` padded tokens (indices into `texts`).
    fn plan(&self, texts: &[&str]) -> Result<(Vec<tokenizers::Encoding>, Vec<Vec<usize>>)> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| Error::ModelUnavailable(format!("tokenizer failed: {e}")))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut batches = vec![];
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len()
                && end - start < self.batch_size
                && (end - start + 1) * encodings[order[end]].len() <= TOKEN_BUDGET
            {
                end += 1;
            }
            batches.push(order[start..end].to_vec());
            start = end;
        }
        Ok((encodings, batches))
    }

    fn session(&self, lane: Lane) -> Result<std::sync::MutexGuard<'_, Session>> {
        let poisoned = || Error::Internal("embedding session lock poisoned".into());
        match lane {
            Lane::Ingest => self.session.lock().map_err(|_| poisoned()),
            Lane::Query => match self.session.try_lock() {
                Ok(idle) => Ok(idle),
                Err(std::sync::TryLockError::WouldBlock) => {
                    self.query_session()?.lock().map_err(|_| poisoned())
                }
                Err(std::sync::TryLockError::Poisoned(_)) => Err(poisoned()),
            },
            Lane::QueryBeside => self.query_session()?.lock().map_err(|_| poisoned()),
        }
    }

    /// The query session, built now if no query has needed it yet (the model's weights once
    /// more in memory).
    fn query_session(&self) -> Result<&Mutex<Session>> {
        if let Some(built) = self.query_session.get() {
            return Ok(built);
        }
        let _building = self
            .building_query_session
            .lock()
            .map_err(|_| Error::Internal("query session build lock poisoned".into()))?;
        if self.query_session.get().is_none() {
            let built = build_session(&self.environment, &self.model_file, self.query_threads)?;
            let _ = self.query_session.set(Mutex::new(built));
        }
        self.query_session
            .get()
            .ok_or_else(|| Error::Internal("the query session was not kept".into()))
    }

    /// Builds the query session ahead of the first query, so that a query arriving during an
    /// ingest does not wait for it to be built; `serve` calls it as it starts.
    pub fn prepare_query_session(&self) -> Result<()> {
        self.query_session().map(|_| ())
    }

    /// Whether the query session has been built.
    pub fn has_query_session(&self) -> bool {
        self.query_session.get().is_some()
    }

    /// Holds the session of `lane` as a running batch does, until the guard drops: what an
    /// ingest batch does to other callers of its session, for tests of who waits behind whom.
    pub fn hold_session(&self, lane: Lane) -> Result<impl Drop + '_> {
        self.session(lane)
    }

    /// The model's input tensors for one batch, padded to its longest text, with the
    /// attention mask (for pooling) and the padded length.
    fn inputs(
        &self,
        encodings: &[&tokenizers::Encoding],
    ) -> Result<(ModelInputs, Vec<i64>, usize)> {
        let batch = encodings.len();
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        let mut types = Vec::with_capacity(batch * seq);
        for enc in encodings {
            let pad = seq - enc.len();
            ids.extend(enc.get_ids().iter().map(|&x| i64::from(x)));
            ids.extend(std::iter::repeat_n(0, pad));
            mask.extend(enc.get_attention_mask().iter().map(|&x| i64::from(x)));
            mask.extend(std::iter::repeat_n(0, pad));
            types.extend(enc.get_type_ids().iter().map(|&x| i64::from(x)));
            types.extend(std::iter::repeat_n(0, pad));
        }
        let shape = [batch, seq];
        let tensor = |data: Vec<i64>| {
            Tensor::from_array((shape, data)).map_err(|e| model_err("input tensor")(e.to_string()))
        };
        let mut inputs = ort::inputs![
            "input_ids" => tensor(ids)?,
            "attention_mask" => tensor(mask.clone())?,
        ];
        if self.io.token_type_ids {
            inputs.push(("token_type_ids".into(), tensor(types)?.into()));
        }
        Ok((inputs, mask, seq))
    }

    fn run_batch(&self, lane: Lane, encodings: &[&tokenizers::Encoding]) -> Result<Vec<Vec<f32>>> {
        if encodings.is_empty() {
            return Ok(vec![]);
        }
        let batch = encodings.len();
        let (inputs, mask, seq) = self.inputs(encodings)?;
        let mut session = self.session(lane)?;
        let outputs = session
            .run(inputs)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let output = outputs.get(&self.io.output).ok_or_else(|| {
            Error::ModelUnavailable(format!(
                "model {} returned no `{}` output",
                self.model_name, self.io.output
            ))
        })?;
        let (out_shape, hidden) = output
            .try_extract_tensor::<f32>()
            .map_err(|e| model_err("unexpected model output")(e.to_string()))?;
        let dims = out_shape.last().copied().unwrap_or(0) as usize;
        if self.io.pooled {
            if dims == 0 || hidden.len() != batch * dims {
                return Err(Error::ModelUnavailable(format!(
                    "model output `{}` has shape {out_shape:?}, expected [{batch}, dims]",
                    self.io.output
                )));
            }
            return Ok(hidden
                .chunks_exact(dims)
                .map(|v| {
                    let mut v = v.to_vec();
                    normalize(&mut v);
                    v
                })
                .collect());
        }
        if dims == 0 || hidden.len() != batch * seq * dims {
            return Err(Error::ModelUnavailable(format!(
                "model output `{}` has shape {out_shape:?}, expected [{batch}, {seq}, hidden]",
                self.io.output
            )));
        }
        Ok((0..batch)
            .map(|b| {
                mean_pool(
                    &hidden[b * seq * dims..(b + 1) * seq * dims],
                    &mask[b * seq..(b + 1) * seq],
                    dims,
                )
            })
            .collect())
    }
}

/// Mean of the token vectors where the attention mask is 1, then L2 normalisation.
fn mean_pool(hidden: &[f32], mask: &[i64], dims: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dims];
    let mut count = 0f32;
    for (token, &m) in hidden.chunks_exact(dims).zip(mask) {
        if m != 0 {
            for (s, x) in sum.iter_mut().zip(token) {
                *s += x;
            }
            count += 1.0;
        }
    }
    let count = count.max(1e-9);
    sum.iter_mut().for_each(|s| *s /= count);
    normalize(&mut sum);
    sum
}

pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
}

fn load_tokenizer(path: &Path, truncate_at: usize) -> Result<Tokenizer> {
    let mut tok = Tokenizer::from_file(path).map_err(|e| {
        Error::ModelUnavailable(format!("cannot load tokenizer {}: {e}", path.display()))
    })?;
    // The packaged tokenizer pads and truncates at 128; sentence-transformers pads to the batch's
    // longest text and truncates at max_seq_length.
    tok.with_truncation(Some(TruncationParams {
        max_length: truncate_at,
        ..Default::default()
    }))
    .map_err(|e| Error::ModelUnavailable(format!("tokenizer truncation: {e}")))?;
    // Padding is done per batch in `run_batch`, after grouping by length.
    tok.with_padding(None);
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERT_INPUTS: &[Port<'static>] = &[
        ("input_ids", Some(2)),
        ("attention_mask", Some(2)),
        ("token_type_ids", Some(2)),
    ];

    #[test]
    fn token_vectors_are_found_by_either_sentence_transformers_name_or_as_the_only_rank_3_output() {
        for outputs in [
            &[("last_hidden_state", Some(3)), ("pooler_output", Some(2))][..],
            &[("pooler_output", Some(2)), ("token_embeddings", Some(3))][..],
            &[("hidden", Some(3))][..],
        ] {
            let io = model_io("m", BERT_INPUTS, outputs).unwrap();
            assert!(!io.pooled && io.token_type_ids, "{outputs:?}");
            assert_eq!(
                io.output,
                outputs.iter().find(|o| o.1 == Some(3)).unwrap().0
            );
        }
        let io = model_io("m", &BERT_INPUTS[..2], &[("sentence_embedding", Some(2))]).unwrap();
        assert!(io.pooled && !io.token_type_ids);
    }

    #[test]
    fn a_model_without_usable_inputs_or_outputs_is_refused_naming_what_it_has() {
        let err = model_io("tiny (/m/model.onnx)", BERT_INPUTS, &[("logits", Some(2))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tiny (/m/model.onnx)") && err.contains("`logits`"),
            "{err}"
        );
        let err = model_io("tiny", &[("pixel_values", Some(4))], &[("x", Some(3))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("input_ids") && err.contains("`pixel_values`"),
            "{err}"
        );
    }

    #[test]
    fn mean_pool_ignores_masked_tokens_and_normalises() {
        let hidden = [1.0, 0.0, 3.0, 0.0, 100.0, 100.0];
        let v = mean_pool(&hidden, &[1, 1, 0], 2);
        assert!((v[0] - 1.0).abs() < 1e-6 && v[1].abs() < 1e-6, "{v:?}");
    }
}
