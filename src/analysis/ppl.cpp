#include "analysis/ppl.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/log.h"
#include "core/progress.h"
#include "eval/provenance.h"
#include "model/model.h"
#include "model/tokenizer.h"
#include "train/sft_data.h"
#include "train/trainer.h"

namespace metamath::analysis {

namespace fs = std::filesystem;

std::vector<double> example_nll_sums(const model::Model& model, const train::SftData& data,
                                     int64_t batch_tokens, int64_t pad_id, Progress* progress) {
  if (batch_tokens <= 0) fail("--batch-tokens must be positive (got {})", batch_tokens);
  c10::InferenceMode guard;
  const int64_t n = data.size();
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return data.length(a) > data.length(b); });
  std::vector<double> sums(static_cast<std::size_t>(n), 0.0);
  for (std::size_t s = 0; s < order.size();) {
    const int64_t longest = data.length(order[s]);  // rows are sorted: the first is the longest
    const auto rows = static_cast<std::size_t>(std::max<int64_t>(1, batch_tokens / longest));
    const std::vector<int64_t> batch(
        order.begin() + static_cast<std::ptrdiff_t>(s),
        order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), s + rows)));
    const train::Batch b = train::make_batch(data, batch, pad_id);
    // Each label position b * T + t belongs to row b: add its loss to that example.
    at::Tensor losses = train::batch_token_losses(model, b).to(at::kCPU).to(at::kDouble);
    at::Tensor row = at::div(b.label_index, b.input_ids.size(1), "floor");
    at::Tensor per_row = at::zeros({b.input_ids.size(0)}, at::kDouble).index_add_(0, row, losses);
    const double* p = per_row.data_ptr<double>();
    for (std::size_t k = 0; k < batch.size(); ++k) sums[static_cast<std::size_t>(batch[k])] = p[k];
    if (progress) progress->tick(batch.size());
    s += batch.size();
  }
  return sums;
}

void summarize_ppl(PplResult& r) {
  auto finish = [](PplGroup& g, double nll_sum, double example_nll_sum, double example_ppl_sum) {
    if (g.examples == 0) return;
    g.mean_nll = nll_sum / static_cast<double>(g.tokens);
    g.ppl = std::exp(g.mean_nll);
    g.mean_example_nll = example_nll_sum / static_cast<double>(g.examples);
    g.mean_example_ppl = example_ppl_sum / static_cast<double>(g.examples);
  };
  struct Acc {
    PplGroup g;
    double nll = 0, ex_nll = 0, ex_ppl = 0;
    void add(const PplRow& row) {
      ++g.examples;
      g.tokens += row.tokens;
      nll += row.nll * static_cast<double>(row.tokens);
      ex_nll += row.nll;
      ex_ppl += std::exp(row.nll);
    }
  };
  Acc all;
  std::vector<Acc> groups;
  std::unordered_map<std::string, std::size_t> group_of;
  r.dropped = r.truncated = 0;
  for (const PplRow& row : r.rows) {
    if (row.truncated) ++r.truncated;
    if (row.tokens == 0) {
      ++r.dropped;
      continue;
    }
    all.add(row);
    auto [it, fresh] = group_of.emplace(row.type, groups.size());
    if (fresh) {
      groups.emplace_back();
      groups.back().g.type = row.type;
    }
    groups[it->second].add(row);
  }
  finish(all.g, all.nll, all.ex_nll, all.ex_ppl);
  r.overall = all.g;
  r.by_type.clear();
  const bool typed = groups.size() > 1 || (groups.size() == 1 && !groups[0].g.type.empty());
  if (!typed) return;
  for (Acc& a : groups) {
    finish(a.g, a.nll, a.ex_nll, a.ex_ppl);
    r.by_type.push_back(a.g);
  }
}

namespace {

struct Record {
  json id;
  std::string type, query, response;
};

std::vector<Record> read_records(const PplOptions& o) {
  std::vector<Record> recs;
  JsonlReader reader(o.data);
  json j;
  while ((o.limit <= 0 || static_cast<int64_t>(recs.size()) < o.limit) && reader.next(j)) {
    const std::string where = reader.where();
    Record r;
    r.query = require_string(j, o.query_field.c_str(), where);
    r.response = require_string(j, o.response_field.c_str(), where);
    if (auto it = j.find(o.id_field); it != j.end()) r.id = *it;
    if (auto it = j.find(o.type_field); it != j.end() && !it->is_null())
      r.type = it->is_string() ? it->get<std::string>() : it->dump();
    recs.push_back(std::move(r));
  }
  if (recs.empty()) fail("{}: no records", o.data.string());
  return recs;
}

// The training prompt style and where it came from: the flag, the model's training record, or the
// default (see ppl.h).
struct ResolvedStyle {
  data::PromptStyle style = data::PromptStyle::Official;
  std::string from = "default";
};

ResolvedStyle resolve_prompt_style(const PplOptions& o, const json& training) {
  if (!o.prompt_style.empty()) return {data::parse_prompt_style(o.prompt_style), "flag"};
  if (training.is_object() && training.contains("options")) {
    // A record written before the setting existed trained with the plain prompt.
    const json& opts = training["options"];
    const std::string name = opts.value("prompt_style", std::string("plain"));
    return {data::parse_prompt_style(name), "train_run.json"};
  }
  return {};
}

// Tokenises every record as training does; rows[i] gets its truncation flag, and example k of the
// returned data is record example_of[k] (records whose prompt fills max_len have no example).
train::SftData tokenize_records(const std::vector<Record>& recs, const model::Tokenizer& tok,
                                const PplOptions& o, data::PromptStyle style,
                                std::vector<PplRow>& rows, std::vector<std::size_t>& example_of) {
  std::vector<train::TokenizedExample> ex(recs.size());
  std::unique_ptr<Progress> bar;
  if (o.progress) bar = std::make_unique<Progress>("tokenize", recs.size());
  at::parallel_for(0, static_cast<int64_t>(recs.size()), 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      ex[i] = train::tokenize_example(tok, recs[i].query, recs[i].response, o.max_len, style);
      if (bar) bar->tick();
    }
  });
  if (bar) bar->finish();
  train::SftData data;
  for (std::size_t i = 0; i < recs.size(); ++i) {
    rows[i].truncated = ex[i].truncated;
    if (ex[i].prompt_len >= static_cast<int32_t>(ex[i].ids.size())) continue;  // dropped
    data.add(ex[i].ids, ex[i].prompt_len);
    example_of.push_back(i);
  }
  return data;
}

json group_json(const PplGroup& g) {
  return {{"examples", g.examples},
          {"tokens", g.tokens},
          {"mean_nll", g.mean_nll},
          {"ppl", g.ppl},
          {"mean_example_nll", g.mean_example_nll},
          {"mean_example_ppl", g.mean_example_ppl}};
}

json report_json(const PplOptions& o, const PplResult& r, const fs::path& tokenizer,
                 const json& training, const ResolvedStyle& style) {
  json by_type = json::object();
  for (const auto& g : r.by_type) by_type[g.type] = group_json(g);
  json data = eval::data_file_provenance(o.data);
  data["records"] = r.rows.size();
  return {{"kind", "ppl"},
          {"overall", group_json(r.overall)},
          {"by_type", by_type},
          {"dropped", r.dropped},
          {"truncated", r.truncated},
          {"model",
           {{"path", fs::absolute(o.model).lexically_normal().string()},
            {"name", fs::absolute(o.model).lexically_normal().filename().string()},
            {"tokenizer", fs::absolute(tokenizer).lexically_normal().string()},
            {"training", training}}},
          {"backend", {{"kind", "local"}, {"dtype", o.dtype}, {"device", o.device}}},
          {"data", data},
          {"options",
           {{"query_field", o.query_field},
            {"response_field", o.response_field},
            {"type_field", o.type_field},
            {"max_len", o.max_len},
            {"limit", o.limit},
            {"prompt", "alpaca (training prompt, response tokens + EOS)"},
            {"prompt_style", data::prompt_style_name(style.style)},
            {"prompt_style_from", style.from}}},
          {"metamath_version", "0.1.0"}};
}

void write_outputs(const fs::path& dir, const PplResult& r) {
  fs::create_directories(dir);
  JsonlWriter w(dir / "ppl.jsonl");
  for (const PplRow& row : r.rows) {
    json j = {{"i", row.index}};
    if (!row.id.is_null()) j["id"] = row.id;
    j["type"] = row.type;
    j["tokens"] = row.tokens;
    j["nll"] = row.tokens > 0 ? json(row.nll) : json(nullptr);
    j["ppl"] = row.tokens > 0 ? json(std::exp(row.nll)) : json(nullptr);
    j["truncated"] = row.truncated;
    w.write(j);
  }
  w.commit();
  std::string csv = "type,examples,tokens,mean_nll,ppl,mean_example_ppl\n";
  auto line = [&csv](const std::string& type, const PplGroup& g) {
    csv += fmt::format("{},{},{},{:.9g},{:.9g},{:.9g}\n", type, g.examples, g.tokens, g.mean_nll,
                       g.ppl, g.mean_example_ppl);
  };
  for (const PplGroup& g : r.by_type) line(g.type, g);
  line("(all)", r.overall);
  write_file_atomic(dir / "by_type.csv", csv);
  write_file_atomic(dir / "ppl.json", r.report.dump(2) + "\n");
}

}  // namespace

PplResult run_ppl(const PplOptions& o) {
  if (o.model.empty()) fail("ppl: give --model DIR");
  if (o.data.empty()) fail("ppl: give --data FILE.jsonl");
  if (o.out.empty()) fail("ppl: give --out DIR");
  if (o.max_len < 2) fail("--max-len must be at least 2 (got {})", o.max_len);
  const fs::path tok_dir = o.tokenizer.empty() ? o.model : o.tokenizer;
  std::unique_ptr<model::Tokenizer> tok = model::Tokenizer::load(tok_dir);
  const std::vector<Record> recs = read_records(o);
  PplResult r;
  r.rows.resize(recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) {
    r.rows[i].index = static_cast<int64_t>(i);
    r.rows[i].id = recs[i].id;
    r.rows[i].type = recs[i].type;
  }
  const json training = eval::find_training_record(o.model);
  const ResolvedStyle style = resolve_prompt_style(o, training);
  log::info("ppl: {} training prompt ({})", data::prompt_style_name(style.style), style.from);
  std::vector<std::size_t> example_of;
  const train::SftData data = tokenize_records(recs, *tok, o, style.style, r.rows, example_of);

  model::Model m =
      model::Model::load(o.model, model::parse_dtype(o.dtype), model::parse_device(o.device));
  std::unique_ptr<Progress> bar;
  if (o.progress) bar = std::make_unique<Progress>("ppl", static_cast<uint64_t>(data.size()));
  const std::vector<double> sums =
      data.size() > 0 ? example_nll_sums(m, data, o.batch_tokens, tok->pad_id(), bar.get())
                      : std::vector<double>{};
  if (bar) bar->finish();
  for (int64_t k = 0; k < data.size(); ++k) {
    PplRow& row = r.rows[example_of[static_cast<std::size_t>(k)]];
    row.tokens = data.label_tokens(k);
    row.nll = sums[static_cast<std::size_t>(k)] / static_cast<double>(row.tokens);
  }
  summarize_ppl(r);
  r.report = report_json(o, r, tok_dir, training, style);
  write_outputs(o.out, r);
  log::info("ppl {:.4f} (mean NLL {:.4f}) over {} examples, {} tokens; {} dropped, {} truncated",
            r.overall.ppl, r.overall.mean_nll, r.overall.examples, r.overall.tokens, r.dropped,
            r.truncated);
  return r;
}

}  // namespace metamath::analysis
