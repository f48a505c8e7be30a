#include "model/recompute.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <memory>
#include <mutex>
#include <utility>

#include "core/error.h"

namespace metamath::model {

namespace {

namespace ag = torch::autograd;

at::Tensor generator_state(const at::Generator& gen) {
  std::lock_guard<std::mutex> lock(const_cast<at::Generator&>(gen).mutex());
  return gen.get_state();
}

void set_generator_state(at::Generator& gen, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

// libtorch's C++ custom Function keeps only IValues in its context and cannot hold the block's
// closure, so the recomputation is its own autograd node.
class RecomputeNode : public ag::Node {
 public:
  RecomputeNode(Block block, at::Tensor input, bool input_grad, at::Generator gen, at::Tensor rng)
      : block_(std::move(block)),
        input_(std::move(input)),
        input_grad_(input_grad),
        gen_(std::move(gen)),
        rng_(std::move(rng)) {}

  std::string name() const override { return "metamath::CheckpointBackward"; }

  ag::variable_list apply(ag::variable_list&& grads) override {
    if (!block_) fail("activation checkpoint: backward ran twice through the same block");
    at::Tensor x = input_.detach().requires_grad_(input_grad_);
    at::Tensor y;
    {
      // Replay the generator, then put back whatever state it had reached.
      at::Tensor now = generator_state(gen_);
      set_generator_state(gen_, rng_);
      at::AutoGradMode on(true);
      y = block_(x);
      set_generator_state(gen_, now);
    }
    if (y.requires_grad()) ag::backward({y}, {grads[0]});
    at::Tensor gx = x.requires_grad() ? x.grad() : at::Tensor();
    release_variables();
    return {gx};
  }

  void release_variables() override {
    block_ = nullptr;
    input_.reset();
    rng_.reset();
  }

 private:
  Block block_;
  at::Tensor input_;
  bool input_grad_;
  at::Generator gen_;
  at::Tensor rng_;
};

}  // namespace

at::Tensor recomputed(Block block, const at::Tensor& x, c10::Device device) {
  if (!at::GradMode::is_enabled()) return block(x);
  at::Generator gen = at::globalContext().defaultGenerator(device);
  at::Tensor rng = generator_state(gen);
  at::Tensor saved = x.detach();
  std::shared_ptr<RecomputeNode> node(new RecomputeNode(block, saved, x.requires_grad(), gen, rng),
                                      ag::deleteNode);
  node->set_next_edges(ag::collect_next_edges(x));
  at::Tensor y;
  {
    at::NoGradGuard off;
    y = block(saved);
  }
  // The output always gets the node, even when x needs no gradient: the block's own parameters
  // may (e.g. the first layer of a LoRA run, whose input is a frozen embedding).
  ag::set_history(y, node);
  return y;
}

}  // namespace metamath::model
