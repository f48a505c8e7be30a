#pragma once
// What an eval run was made with, beyond its settings: the backend (kind, model, where it ran),
// the benchmark data files' SHA-256, and, when the model is a folder written by `metamath train`,
// that run's OUT/train_run.json (training-set size, record types, data hash: train/run_record.h).
// run_eval writes it as "provenance" into run{SFX}.json (summary.json stays a function of the
// samples alone), so `metamath report` can place the run on the accuracy-vs-data-size curve
// without being told. Unlike the settings, provenance is not compared when a run resumes (a moved
// folder is not a different run).
#include <filesystem>

#include "core/jsonl.h"
#include "llm/backend.h"

namespace metamath::eval {

// {"version", "backend": {"kind", "model", and for openai "base_url" (never the API key) and
// "chat", for local "model_dir" (absolute), "dtype", "device"}, "training": the model's
// train_run.json (local backend, when there is one)}. run_eval adds "data".
json backend_provenance(const llm::BackendOptions& o);

// The train_run.json of a model folder: DIR/train_run.json, or for a training checkpoint
// DIR = OUT/checkpoint-N the run's OUT/train_run.json; null when there is none.
json find_training_record(const std::filesystem::path& model_dir);

// {"path", "sha256", "bytes"} of a data file; a folder (MATH as per-problem files) gets its path
// only.
json data_file_provenance(const std::filesystem::path& file);

}  // namespace metamath::eval
