#include "train/optimizers.h"

#include <cmath>

namespace tessera::train {

void check_optimizer(const OptimizerSpec& o) {
  TS_CHECK(o.name == "sgd" || o.name == "adam" || o.name == "adamw" || o.name == "rmsprop", "unknown optimizer '",
           o.name, "' (sgd, adam, adamw, rmsprop)");
  TS_CHECK(o.learning_rate >= 0, "learning rate must be >= 0, got ", o.learning_rate);
  TS_CHECK(o.momentum >= 0, "momentum must be >= 0, got ", o.momentum);
  TS_CHECK(!(o.clipnorm > 0 && o.global_clipnorm > 0), "set clipnorm or global_clipnorm, not both");
}

std::vector<std::string> slot_names(const OptimizerSpec& o) {
  if (o.name == "adam" || o.name == "adamw") return {"m", "v"};
  if (o.name == "sgd") return o.momentum > 0 ? std::vector<std::string>{"momentum"} : std::vector<std::string>{};
  if (o.momentum > 0) return {"velocity", "momentum"};
  return {"velocity"};
}

std::string slot_key(const std::string& var_key, const std::string& slot) {
  return "/tessera/slots/" + slot + (var_key.starts_with("/") ? "" : "/") + var_key;
}

std::vector<std::string> hyper_names(const OptimizerSpec& o) {
  if (o.name == "adam" || o.name == "adamw") return {"lr", "alpha"};
  return {"lr"};
}

std::map<std::string, double> hyper_values(const OptimizerSpec& o, double lr, int64_t iterations) {
  std::map<std::string, double> h = {{"lr", lr}};
  if (o.name == "adam" || o.name == "adamw") {
    // Keras computes these in float32 from local_step = iterations + 1.
    float t = static_cast<float>(iterations + 1);
    float b1 = std::pow(static_cast<float>(o.beta_1), t), b2 = std::pow(static_cast<float>(o.beta_2), t);
    h["alpha"] = static_cast<float>(lr) * std::sqrt(1.0f - b2) / (1.0f - b1);
  }
  return h;
}

void emit_clipping(GraphBuilder& b, const OptimizerSpec& o, std::vector<UpdateVar>& vars) {
  if (o.clipnorm > 0) {
    // tf.clip_by_norm: g * c / max(||g||, c), with ||g|| taken as 0 for an all-zero g.
    for (UpdateVar& v : vars) {
      Value l2sum = b.sum_all(b.square(v.grad));
      Value pos = b.op("Greater", {l2sum, b.scalar(0.0)});
      Value safe = b.op("SelectV2", {pos, l2sum, b.scalar(1.0)});
      Value norm = b.op("SelectV2", {pos, b.sqrt(safe), l2sum});
      Value c = b.scalar(o.clipnorm);
      v.grad = b.div(b.mul(v.grad, c), b.op("Maximum", {norm, c}));
    }
  } else if (o.global_clipnorm > 0 && !vars.empty()) {
    Value total;
    for (size_t i = 0; i < vars.size(); ++i) {
      Value s = b.sum_all(b.square(vars[i].grad));
      total = i == 0 ? s : b.add(total, s);
    }
    Value norm = b.sqrt(total);
    Value c = b.scalar(o.global_clipnorm);
    // c * min(1/norm, 1/c) + (norm - norm): NaN for a non-finite norm, as Keras.
    Value scale = b.add(b.mul(c, b.op("Minimum", {b.div(b.scalar(1.0), norm), b.scalar(1.0 / o.global_clipnorm)})),
                        b.sub(norm, norm));
    for (UpdateVar& v : vars) v.grad = b.mul(v.grad, scale);
  }
}

void emit_update(GraphBuilder& b, const OptimizerSpec& o, const std::vector<UpdateVar>& vars,
                 const std::map<std::string, Value>& hypers) {
  Value lr = hypers.at("lr");
  double wd = o.weight_decay;
  for (const UpdateVar& v : vars) {
    Value h = b.handle(v.key, v.dtype, v.shape);
    Value var = b.read(h, v.dtype);
    auto slot = [&](const std::string& name) {
      Value sh = b.handle(slot_key(v.key, name), v.dtype, v.shape);
      return std::pair<Value, Value>{sh, b.read(sh, v.dtype)};
    };
    // Keras applies weight decay to the variable before the update step.
    if (wd > 0) var = b.sub(var, b.mul(b.mul(var, b.scalar(wd)), lr));
    const Value& g = v.grad;
    Value next;
    if (o.name == "adam" || o.name == "adamw") {
      auto [mh, m] = slot("m");
      auto [vh, vv] = slot("v");
      Value m1 = b.add(m, b.mul(b.sub(g, m), b.scalar(1.0 - o.beta_1)));
      Value v1 = b.add(vv, b.mul(b.sub(b.square(g), vv), b.scalar(1.0 - o.beta_2)));
      b.assign(mh, m1, v.dtype);
      b.assign(vh, v1, v.dtype);
      next = b.sub(var, b.div(b.mul(m1, hypers.at("alpha")), b.add(b.sqrt(v1), b.scalar(o.epsilon))));
    } else if (o.name == "sgd") {
      if (o.momentum > 0) {
        auto [mh, m] = slot("momentum");
        Value mom = b.scalar(o.momentum);
        Value m1 = b.sub(b.mul(m, mom), b.mul(g, lr));
        b.assign(mh, m1, v.dtype);
        next = o.nesterov ? b.add(var, b.sub(b.mul(m1, mom), b.mul(g, lr))) : b.add(var, m1);
      } else {
        next = b.sub(var, b.mul(g, lr));
      }
    } else {  // rmsprop, centered=False
      auto [vh, vel] = slot("velocity");
      Value vel1 = b.add(b.mul(b.scalar(o.rho), vel), b.mul(b.scalar(1.0 - o.rho), b.square(g)));
      b.assign(vh, vel1, v.dtype);
      Value inc = b.div(b.mul(lr, g), b.sqrt(b.add(vel1, b.scalar(o.epsilon))));
      if (o.momentum > 0) {
        auto [mh, m] = slot("momentum");
        Value m1 = b.add(b.mul(b.scalar(o.momentum), m), inc);
        b.assign(mh, m1, v.dtype);
        next = b.sub(var, m1);
      } else {
        next = b.sub(var, inc);
      }
    }
    std::vector<Node*> after = v.after;
    after.push_back(var.node);
    b.assign(h, next, v.dtype, after);
  }
}

}  // namespace tessera::train
