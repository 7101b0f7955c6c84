// `tessera train MODEL --data SPEC --loss L --optimizer O ...`: trains a SavedModel's variables
// with the whole-step Trainer (train/trainer.h) on an input pipeline built from the --data
// spec (train/data_flags.h), driven by train/train_loop.h. See docs/training.md.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <set>

#include "ir/printer.h"
#include "runtime/model.h"
#include "support/error.h"
#include "support/file.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"
#include "tools/cli.h"
#include "train/data_flags.h"
#include "train/mpi_communicator.h"
#include "train/train_loop.h"

namespace tessera::cli {
namespace {

using namespace tessera::train;

const char* kUsage =
    "usage: tessera train MODEL --data SPEC --loss LOSS (--steps N | --epochs E) [options]\n"
    "\n"
    "data:\n"
    "  --data SPEC                 mnist:IMAGES,LABELS[:START-END] | npz:FILE[:x=KEY,y=KEY] | npy:X.npy,Y.npy\n"
    "                              | csv:FILE:label=COL | tfrecord:GLOB:NAME:DTYPE:SHAPE,...:label=NAME[:gzip]\n"
    "  --take-indices P.npy:S:E    train on rows perm[S:E] (or S:E) of the data\n"
    "  --validation-data SPEC      evaluated at the end (and every --eval-every steps)\n"
    "  --validation-take-indices P.npy:S:E\n"
    "  --normalize X               features / X as float32 (default 255 for mnist, else none)\n"
    "  --shuffle BUF               shuffle buffer (default 10000; 0 = off)   --on-corrupt stop|skip\n"
    "  --batch N (256)             global batch; the last partial batch of an epoch is dropped\n"
    "  --parallel P (2)            map (normalise) threads   --prefetch K (2) batches ready ahead\n"
    "model and loss:\n"
    "  --endpoint NAME             training forward (default: train_forward, tessera_training_forward,\n"
    "                              serving_default); --eval-endpoint NAME (default serving_default)\n"
    "  --loss sparse_categorical_crossentropy|categorical_crossentropy|binary_crossentropy|mse|mae\n"
    "  --from-logits  --output NAME (the endpoint output the loss reads)\n"
    "optimizer:\n"
    "  --optimizer sgd|adam|adamw|rmsprop (adam)  --lr X (0.001)  --beta1 --beta2 --epsilon --rho\n"
    "  --momentum X  --nesterov  --weight-decay X  --clipnorm X  --global-clipnorm X\n"
    "  --schedule constant|exponential|cosine  --decay-steps N --decay-rate X --staircase --alpha X\n"
    "  --warmup-steps N\n"
    "run:\n"
    "  --steps N | --epochs E      --seed S (0)  --replicas N (1)  --sync-batch-norm\n"
    "  --target cpu|reference|rdu (cpu)  --threads T\n"
    "  --logdir DIR                TensorBoard scalars and graph\n"
    "  --checkpoint-dir DIR  --checkpoint-every STEPS  --keep N (5)  --resume\n"
    "  --export DIR                the trained model as a SavedModel\n"
    "  --eval-every STEPS  --log-every STEPS (100, when stderr is not a terminal)  --quiet\n"
    "  --stats-json FILE           steps, losses, eval metrics, samples/s, input wait, peak RSS\n"
    "  --stats-warmup N (5)        steps left out of the samples/s median\n"
    "  --dump-ir FILE              the compiled step graph as IR text\n"
    "SIGINT/SIGTERM: finish the step, checkpoint, write stats and export, exit 128+signal.\n"
    "Under `mpirun -np N`, every process reads the data and trains its slice of each batch;\n"
    "rank 0 writes logs, checkpoints and the export.\n";

const std::vector<std::string> kValueFlags = {
    "--data", "--take-indices", "--validation-data", "--validation-take-indices", "--normalize", "--shuffle",
    "--on-corrupt", "--batch", "--endpoint", "--eval-endpoint", "--loss", "--output", "--optimizer", "--lr",
    "--beta1", "--beta2", "--epsilon", "--rho", "--momentum", "--weight-decay", "--clipnorm", "--global-clipnorm",
    "--schedule", "--decay-steps", "--decay-rate", "--alpha", "--warmup-steps", "--steps", "--epochs", "--seed",
    "--replicas", "--target", "--threads", "--logdir", "--checkpoint-dir", "--checkpoint-every", "--keep",
    "--export", "--eval-every", "--log-every", "--stats-json", "--tags", "--parallel", "--prefetch",
    "--stats-warmup", "--dump-ir"};
const std::set<std::string> kSwitches = {"--from-logits", "--nesterov", "--staircase", "--sync-batch-norm",
                                         "--resume", "--quiet", "--help"};

double num(const Args& a, const std::string& flag, double fallback) {
  if (!a.has(flag)) return fallback;
  const std::string v = a.get(flag);
  size_t used = 0;
  double d = 0;
  try {
    d = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TS_CHECK(used == v.size() && !v.empty(), flag, ": '", v, "' is not a number");
  return d;
}

int64_t integer(const Args& a, const std::string& flag, int64_t fallback) {
  double d = num(a, flag, static_cast<double>(fallback));
  TS_CHECK(d == static_cast<double>(static_cast<int64_t>(d)), flag, ": expected an integer");
  return static_cast<int64_t>(d);
}

// The training endpoint, by the shared discovery order (docs/training.md).
std::string pick_endpoint(const Model& model, const std::string& flag) {
  if (!flag.empty()) {
    model.signature(flag);  // fails listing the available ones
    return flag;
  }
  for (const char* name : {"train_forward", "tessera_training_forward", "serving_default", "serve"})
    if (model.signatures().count(name)) return name;
  std::string names;
  for (const auto& [k, s] : model.signatures()) names += (names.empty() ? "" : ", ") + k;
  fail("no training endpoint found (looked for train_forward, tessera_training_forward, serving_default); "
       "pass --endpoint (signatures: ", names, ")");
}

// The per-example input shape (dims after the batch), when the signature knows it fully.
Shape example_shape(const Signature& sig) {
  if (sig.inputs.empty() || sig.inputs[0].shape.rank() < 1) return {};
  Shape s;
  for (int64_t i = 1; i < sig.inputs[0].shape.rank(); ++i) {
    int64_t d = sig.inputs[0].shape.dims.at(static_cast<size_t>(i));
    if (d < 0) return {};
    s.push_back(d);
  }
  return s;
}

// The SavedModel's GraphDef (functions included) for TensorBoard's graph tab; "" if none.
std::string model_graph_def(const std::string& dir) {
  const std::string pb = join_path(dir, "saved_model.pb");
  if (!file_exists(pb)) return "";
  tensorflow::SavedModel sm;
  if (!sm.ParseFromString(read_file(pb)) || sm.meta_graphs_size() == 0) return "";
  std::string out;
  sm.meta_graphs(0).graph_def().SerializeToString(&out);
  return out;
}

DataOptions data_options(const Args& a, const DataSpec& spec, const std::string& take_flag, bool training) {
  DataOptions d;
  d.batch = integer(a, "--batch", 256);
  TS_CHECK(d.batch > 0, "--batch must be positive");
  d.seed = static_cast<uint64_t>(integer(a, "--seed", 0));
  d.normalize = static_cast<float>(num(a, "--normalize", spec.kind == "mnist" ? 255.0 : 0.0));
  d.map_parallelism = static_cast<int>(integer(a, "--parallel", 2));
  d.prefetch = static_cast<size_t>(integer(a, "--prefetch", 2));
  if (a.has(take_flag)) d.take = parse_take_indices(a.get(take_flag));
  const std::string oc = a.get("--on-corrupt", "stop");
  TS_CHECK(oc == "stop" || oc == "skip", "--on-corrupt must be stop or skip, not '", oc, "'");
  d.on_corrupt = oc == "skip" ? OnCorrupt::kSkip : OnCorrupt::kStop;
  if (training) {
    d.shuffle_buffer = static_cast<size_t>(integer(a, "--shuffle", 10000));
  } else {  // one ordered pass, every example
    d.drop_remainder = false;
    d.repeat = 1;
  }
  return d;
}

TrainOptions train_options(const Args& a, const std::string& endpoint) {
  TrainOptions t;
  t.endpoint = endpoint;
  t.eval_endpoint = a.get("--eval-endpoint");
  t.loss.name = a.get("--loss", "sparse_categorical_crossentropy");
  static const std::set<std::string> losses = {"sparse_categorical_crossentropy", "categorical_crossentropy",
                                               "binary_crossentropy", "mse", "mae"};
  TS_CHECK(losses.count(t.loss.name), "--loss '", t.loss.name,
           "' is not one of sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy, mse, mae");
  t.loss.from_logits = a.has("--from-logits");
  t.loss.output = a.get("--output");
  OptimizerSpec& o = t.optimizer;
  o.name = a.get("--optimizer", "adam");
  TS_CHECK(o.name == "sgd" || o.name == "adam" || o.name == "adamw" || o.name == "rmsprop", "--optimizer '", o.name,
           "' is not one of sgd, adam, adamw, rmsprop");
  o.learning_rate = num(a, "--lr", o.name == "sgd" ? 0.01 : 0.001);  // Keras 3 defaults
  o.beta_1 = num(a, "--beta1", o.beta_1);
  o.beta_2 = num(a, "--beta2", o.beta_2);
  o.epsilon = num(a, "--epsilon", o.epsilon);
  o.weight_decay = num(a, "--weight-decay", o.name == "adamw" ? 0.004 : 0.0);
  o.momentum = num(a, "--momentum", 0.0);
  o.nesterov = a.has("--nesterov");
  o.rho = num(a, "--rho", o.rho);
  o.clipnorm = num(a, "--clipnorm", 0.0);
  o.global_clipnorm = num(a, "--global-clipnorm", 0.0);
  ScheduleSpec& s = t.schedule;
  s.name = a.get("--schedule", "constant");
  TS_CHECK(s.name == "constant" || s.name == "exponential" || s.name == "cosine", "--schedule '", s.name,
           "' is not one of constant, exponential, cosine");
  s.decay_steps = integer(a, "--decay-steps", 0);
  s.decay_rate = num(a, "--decay-rate", 0.0);
  s.staircase = a.has("--staircase");
  s.alpha = num(a, "--alpha", 0.0);
  s.warmup_steps = integer(a, "--warmup-steps", 0);
  TS_CHECK(s.name == "constant" || s.decay_steps > 0, "--schedule ", s.name, " needs --decay-steps");
  t.target = a.get("--target", "cpu");
  TS_CHECK(t.target == "cpu" || t.target == "reference" || t.target == "rdu", "--target must be cpu, reference or rdu");
  t.threads = static_cast<int>(integer(a, "--threads", 0));
  t.replicas = static_cast<int>(integer(a, "--replicas", 1));
  TS_CHECK(t.replicas >= 1, "--replicas must be at least 1");
  t.batch = integer(a, "--batch", 256);  // the step is compiled for it (a partial batch gets its own)
  t.sync_batch_norm = a.has("--sync-batch-norm");
  t.seed = static_cast<uint64_t>(integer(a, "--seed", 0));
  return t;
}

std::atomic<int> g_stop{0};

// SIGINT/SIGTERM: finish the current step, checkpoint, write stats and export, then exit
// 128 + signal. A second signal kills at once (default action restored).
void on_stop_signal(int sig) {
  g_stop.store(sig);
  std::signal(sig, SIG_DFL);
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Args a = parse_args(argc, argv, kValueFlags);
  if (a.has("--help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  for (const std::string& s : a.switches)
    TS_CHECK(kSwitches.count(s), "unknown option '", s, "' (see tessera train --help)");
  if (a.positional.size() != 1 || !a.has("--data")) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  TS_CHECK(a.has("--steps") != a.has("--epochs"), "give exactly one of --steps and --epochs");
  const std::string model_path = a.positional[0];

  // Under mpirun: one process per rank, joined by the MPI communicator.
  std::unique_ptr<Communicator> comm;
  if (launched_by_mpirun()) {
    comm = make_mpi_communicator();
    if (!comm) fail("started by mpirun, but this tessera was built without MPI (install libopenmpi-dev and rebuild)");
  }
  const bool leader = !comm || comm->rank() == 0;

  LoadOptions load;
  load.target = "reference";      // the Trainer compiles the step itself
  load.training_signature = true;  // tf_keras: import the training-mode call (tessera_training_forward)
  apply_tags_flag(a, load);
  auto model = Model::load(model_path, load);
  const std::string endpoint = pick_endpoint(*model, a.get("--endpoint"));
  const Signature& sig = model->signature(endpoint);
  TrainOptions topt = train_options(a, endpoint);
  topt.comm = comm.get();

  // Input pipelines.
  const DataSpec spec = parse_data_spec(a.get("--data"));
  DataOptions dopt = data_options(a, spec, "--take-indices", true);
  dopt.feature_shape = example_shape(sig);
  if (spec.kind == "tfrecord") dopt.feature_shape.clear();  // Example specs give the shape
  int64_t steps = 0;
  if (a.has("--steps")) {
    steps = integer(a, "--steps", 0);
    TS_CHECK(steps > 0, "--steps must be positive");
  } else {
    const int64_t epochs = integer(a, "--epochs", 1);
    TS_CHECK(epochs > 0, "--epochs must be positive");
    if (spec.kind == "tfrecord") {
      dopt.repeat = epochs;  // size unknown until read: run until the data ends
      steps = -1;
    } else {
      const int64_t rows = load_data_arrays(spec, dopt.take)[0].dim(0);
      steps = epochs * (rows / dopt.batch);
      TS_CHECK(steps > 0, "--batch ", dopt.batch, " is larger than the ", rows, " training examples");
    }
  }
  DatasetPtr train_ds = make_dataset(spec, dopt);
  DatasetPtr val_ds;
  if (a.has("--validation-data")) {
    const DataSpec vspec = parse_data_spec(a.get("--validation-data"));
    DataOptions vopt = data_options(a, vspec, "--validation-take-indices", false);
    vopt.feature_shape = vspec.kind == "tfrecord" ? Shape{} : dopt.feature_shape;
    val_ds = make_dataset(vspec, vopt);
  }

  LoopOptions lopt;
  lopt.steps = steps;
  lopt.num_features = spec.kind == "tfrecord" ? spec.features.size() - 1 : 1;
  TS_CHECK(lopt.num_features == sig.inputs.size(), "endpoint '", endpoint, "' takes ", sig.inputs.size(),
           " input(s); the data gives ", lopt.num_features);
  lopt.eval_every = integer(a, "--eval-every", 0);
  lopt.checkpoint_dir = a.get("--checkpoint-dir");
  lopt.checkpoint_every = integer(a, "--checkpoint-every", 0);
  lopt.keep = static_cast<int>(integer(a, "--keep", 5));
  lopt.resume = a.has("--resume");
  lopt.logdir = a.get("--logdir");
  lopt.export_dir = a.get("--export");
  const bool is_dir = is_directory(model_path);
  if (is_dir) lopt.model_dir = model_path;
  TS_CHECK(lopt.export_dir.empty() || is_dir, "--export needs the model to be a SavedModel directory");
  if (is_dir && (!lopt.checkpoint_dir.empty() || !lopt.export_dir.empty())) lopt.layout = read_model_layout(model_path);
  if (leader && !lopt.logdir.empty()) lopt.graph_def = is_dir ? model_graph_def(model_path) : read_file(model_path);
  lopt.quiet = a.has("--quiet");
  lopt.tty = ::isatty(2) != 0;
  lopt.log_every = integer(a, "--log-every", 100);
  lopt.stats_json = a.get("--stats-json");
  lopt.stats_warmup = integer(a, "--stats-warmup", 5);
  lopt.run_description = str_cat(model_path, " endpoint=", endpoint, " loss=", topt.loss.name,
                                 " optimizer=", topt.optimizer.name, " batch=", dopt.batch,
                                 " replicas=", topt.replicas, " target=", topt.target);

  lopt.stop = &g_stop;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  auto trainer = Trainer::create(model, topt);
  if (leader && !lopt.quiet)
    std::fprintf(stderr, "training '%s' (endpoint %s, %zu trainable variables) on %s%s\n", model_path.c_str(),
                 endpoint.c_str(), trainer->trainable_keys().size(), topt.target.c_str(),
                 comm ? str_cat(", ", comm->size(), " MPI processes").c_str() : "");
  if (leader && a.has("--dump-ir")) write_file(a.get("--dump-ir"), print_graph(trainer->step_graph(), {}));
  LoopResult r = run_training(*trainer, train_ds, val_ds, lopt, comm.get());
  if (leader && !lopt.quiet) {
    std::fprintf(stderr, "done: %lld steps, final loss %.6g, %.0f samples/s (median), input wait %.1f%%\n",
                 static_cast<long long>(r.last_step), r.stats.losses().empty() ? 0.0 : r.stats.losses().back(),
                 r.stats.samples_per_second(lopt.stats_warmup), 100 * r.stats.input_wait_fraction());
    if (trainer->simulated_step_seconds() > 0)
      std::fprintf(stderr, "rdu: simulated step time %.6g s\n", trainer->simulated_step_seconds());
  }
  return r.stopped_by ? 128 + r.stopped_by : 0;
}

}  // namespace tessera::cli
